//! Shared by the integration tests (and, by `#[path]`, the benchmarks):
//! the one copy of each helper. A real Mosquitto on a free port, a real
//! X server, the aggregator binary, an MQTT publisher and subscriber, a
//! seeded random generator; [`board`] for the kiosk core, `ui` (feature
//! `kiosk`) for the Slint window and `fit` for whether its texts fit, [`po`]
//! for the translation catalogues.
//!
//! Every test of `tests/it` runs in one process, two at a time by default:
//! nothing here is global but [`free_port`]'s record of the ports it gave
//! (so that two tests never get the same one), and an X display is picked
//! by Xvfb itself. Each test keeps its files in a temporary directory of
//! its own; none changes the environment or the working directory.
#![allow(dead_code)]

pub mod board;
#[cfg(feature = "kiosk")]
pub mod fit;
pub mod po;
#[cfg(feature = "kiosk")]
pub mod ui;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Finds a program on PATH (and in /usr/sbin, where Debian puts mosquitto),
/// or fails with the command that installs it.
pub fn require(tool: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} is missing: run `tests/setup`, or install it with `apt-get install -y {package}` (this test needs the real thing)"))
}

/// A free TCP port on loopback, never the same twice in this process: the
/// tests share one process, and a port handed to one test and released
/// (bound, then closed) could otherwise come back to another.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Waits until something accepts on the port.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A real Mosquitto started by the test on a free loopback port, without
/// persistence, with its default queue limits (`max_queued_messages`
/// 1000) and TCP_NODELAY. Killed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts one.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with("")
    }

    /// Starts one with extra configuration lines.
    pub fn start_with(extra: &str) -> Mosquitto {
        require("mosquitto", "mosquitto");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n\
                 log_dest none\n{extra}\n"
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            child: None,
            port,
            conf,
            _dir: dir,
        };
        m.restart();
        m
    }

    /// The broker's process id (benchmarks read its CPU time).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL): everything it held in memory is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (after [`Mosquitto::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let bin = require("mosquitto", "mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let child = Command::new(&bin)
                .arg("-c")
                .arg(&self.conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mosquitto");
            self.child = Some(child);
            if wait_port(self.port, Duration::from_secs(3)) {
                return;
            }
            // The port may still be in TIME_WAIT after a kill: try again.
            self.kill();
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {}",
                self.port
            );
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends SIGKILL to a child and reaps it.
pub fn sigkill(child: &mut Child) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// Subscribes with `mosquitto_sub` and collects what it prints.
pub struct Sub {
    child: Child,
    out: PathBuf,
}

impl Sub {
    /// `mosquitto_sub -v -t TOPIC` into a file.
    pub fn start(port: u16, topic: &str, dir: &Path) -> Sub {
        let bin = require("mosquitto_sub", "mosquitto-clients");
        let out = dir.join(format!("sub-{}.txt", free_port()));
        let file = std::fs::File::create(&out).unwrap();
        let child = Command::new(bin)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-v",
                "-q",
                "1",
                "-t",
                topic,
            ])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        Sub { child, out }
    }

    /// Everything received so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The payloads received so far that parse as `T` (`mosquitto_sub -v`
    /// prints one `topic payload` line per message), oldest first.
    pub fn payloads<T: serde::de::DeserializeOwned>(&self) -> Vec<T> {
        self.text()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(_, p)| serde_json::from_str(p).ok())
            .collect()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Xvfb server on a free display, stopped on drop.
pub struct Xvfb {
    child: Child,
    /// The DISPLAY value, e.g. `:101`.
    pub display: String,
}

impl Xvfb {
    /// Starts one on a display it picks itself (`-displayfd`): the X
    /// server takes the first free display number under its own lock, so
    /// that tests of this process, and of other processes on the machine,
    /// never race for one.
    pub fn start() -> Xvfb {
        use std::io::BufRead;
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;

        let bin = require("Xvfb", "xvfb");
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two new descriptors, owned below.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and ours alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wfd = write.as_raw_fd();
        let mut cmd = Command::new(bin);
        cmd.args([
            "-displayfd",
            &wfd.to_string(),
            "-noreset",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "1024x768x24",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: fcntl is async-signal-safe; it keeps the write end open
        // across exec in the child only (the pipe is close-on-exec, so no
        // other child of this process inherits it).
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(wfd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start Xvfb");
        drop(write);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(std::fs::File::from(read)).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.trim().parse::<u32>().is_ok() => Xvfb {
                child,
                display: format!(":{}", line.trim()),
            },
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("Xvfb did not say its display within 10 s: {other:?}");
            }
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The aggregator process, killed on drop; its log is kept for failures.
pub struct Aggregator {
    pub child: Child,
    log: PathBuf,
}

impl Aggregator {
    /// Starts `huddle-aggregator --config DIR/aggregator.toml` with its
    /// data in `DIR/data` and its log in a file of `DIR`.
    pub fn start(dir: &Path, broker: &str) -> Aggregator {
        Aggregator::start_bin(
            Path::new(env!("CARGO_BIN_EXE_huddle-aggregator")),
            dir,
            broker,
        )
    }

    /// The same with another binary (a copy taken at the test's start, so
    /// that a restart runs the same build even if the shared target
    /// directory is rebuilt meanwhile).
    pub fn start_bin(bin: &Path, dir: &Path, broker: &str) -> Aggregator {
        let log = dir.join(format!("aggregator-{}.log", free_port()));
        // A binary just copied can be "busy" (ETXTBSY) for a moment: a
        // process another test thread forked meanwhile still holds the
        // copy's write descriptor until it execs. Tried again, briefly.
        let mut tries = 0;
        let child = loop {
            let spawned = Command::new(bin)
                .arg("--config")
                .arg(dir.join("aggregator.toml"))
                .env("HUDDLE_DATA_DIR", dir.join("data"))
                .env("HUDDLE_MQTT_URL", broker)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn();
            match spawned {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.expect("start huddle-aggregator"),
            }
        };
        Aggregator { child, log }
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the aggregator exited ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes at QoS 1 as a kiosk does and waits for the broker's PUBACKs.
pub struct Publisher {
    client: rumqttc::Client,
    acks: std::sync::mpsc::Receiver<()>,
    sent: usize,
    acked: usize,
}

impl Publisher {
    /// Connects to the broker on loopback `port` (clean session).
    pub fn connect(port: u16) -> Publisher {
        let mut o =
            rumqttc::MqttOptions::new(format!("test-pub-{}", free_port()), "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = rumqttc::Client::new(o, 1000);
        let (tx, acks) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for ev in connection.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Publisher {
            client,
            acks,
            sent: 0,
            acked: 0,
        }
    }

    /// Queues one publication (QoS 1); [`Publisher::flush`] waits for it.
    pub fn publish(&mut self, topic: impl Into<String>, retain: bool, payload: Vec<u8>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
            .unwrap();
        self.sent += 1;
    }

    /// Waits until the broker has acknowledged everything published.
    pub fn flush(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.acked < self.sent {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                self.acks.recv_timeout(left).is_ok(),
                "the broker acknowledged {} of {} publications",
                self.acked,
                self.sent
            );
            self.acked += 1;
        }
    }
}

/// Publishes `payload` retained at QoS 1 on `topic` with `mosquitto_pub`.
pub fn publish_retained(port: u16, topic: &str, payload: &str) {
    let ok = Command::new(require("mosquitto_pub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-r"])
        .args(["-t", topic, "-m", payload])
        .status()
        .expect("run mosquitto_pub");
    assert!(ok.success(), "mosquitto_pub {topic}");
}

/// The payload retained on `topic` (empty when none within 3 s), read
/// with `mosquitto_sub --retained-only`.
pub fn retained(port: u16, topic: &str) -> String {
    let out = Command::new(require("mosquitto_sub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "3", "--retained-only"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `f` every 50 ms until it gives a value; fails naming `what`
/// after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// xorshift64*: small, seeded, good enough to spread test cases (the same
/// seed gives the same cases, so a failure can be replayed).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}
