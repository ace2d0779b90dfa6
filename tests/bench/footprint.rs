//! Benchmark: the kiosk's start to visible window, memory with the full
//! huddle screen, and idle CPU, under Xvfb with the software renderer.
//!
//! `cargo bench --bench footprint -- [--starts N] [--idle-seconds S]`
//!
//! - start: from spawning the release binary to its window being mapped
//!   and visible, polled with `xdotool search --onlyvisible` (a poll costs
//!   a few milliseconds, so figures are ±5 ms); median and p99 over N starts.
//! - memory: PSS and RSS from `/proc/PID/smaps_rollup` after a team leader
//!   and five members have tapped in (the attendance screen, 800x480).
//! - idle CPU: user+system time over S seconds on the idle screen.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../it/support/mod.rs"]
mod support;

const KIOSK: &str = env!("CARGO_BIN_EXE_huddle-kiosk");

fn visible(display: &str) -> bool {
    Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", "huddle-board"])
        .env("DISPLAY", display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("xdotool is missing: apt-get install -y xdotool")
        .success()
}

fn spawn(display: &str, config: &Path, data: &Path) -> Child {
    Command::new(KIOSK)
        .args(["--config", config.to_str().unwrap()])
        .env("DISPLAY", display)
        .env("HUDDLE_DATA_DIR", data)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn tap(fifo: &Path, n: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            f.write_all(format!("{n}\n").as_bytes()).unwrap();
            return;
        }
        assert!(Instant::now() < deadline, "the kiosk never opened its FIFO");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn field_kb(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn main() {
    let mut starts = 20usize;
    let mut idle_s = 60u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--starts" => {
                starts = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--starts N")
            }
            "--idle-seconds" => {
                idle_s = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--idle-seconds S")
            }
            _ => {}
        }
    }
    let xvfb = support::Xvfb::start();
    let display = xvfb.display.clone();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("badges");
    let c = CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let text = include_str!("../../config/kiosk.toml")
        .replace("source = \"keyboard\"", "source = \"simulated\"")
        .replace(
            "simulated_path = \"-\"",
            &format!("simulated_path = \"{}\"", fifo.display()),
        );
    let config = dir.path().join("kiosk.toml");
    std::fs::write(&config, text).unwrap();

    // Start to visible window, each start on a fresh data directory.
    let mut times = Vec::new();
    for i in 0..starts {
        let data = dir.path().join(format!("start-{i}"));
        let t = Instant::now();
        let child = spawn(&display, &config, &data);
        while !visible(&display) {
            assert!(t.elapsed() < Duration::from_secs(20), "no window");
        }
        times.push(t.elapsed());
        stop(child);
        while visible(&display) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "start -> window visible      n={starts}  p50={:.1} ms  p99={:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[((times.len() - 1) as f64 * 0.99).round() as usize])
    );

    // Idle CPU on the idle screen.
    let data = dir.path().join("idle");
    let child = spawn(&display, &config, &data);
    while !visible(&display) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(2));
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(idle_s));
    let used = (cpu_ticks(child.id()) - before) as f64 / hz;
    println!(
        "idle CPU over {idle_s} s            {:.3} % of a core ({used:.2} s)",
        used / idle_s as f64 * 100.0
    );

    // Memory with the attendance screen full.
    for n in ["1001", "1002", "1003", "1004", "1005", "1006"] {
        tap(&fifo, n);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", child.id())).unwrap();
    println!(
        "memory, attendance screen     PSS={:.1} MB  RSS={:.1} MB",
        field_kb(&rollup, "Pss:") as f64 / 1024.0,
        field_kb(&rollup, "Rss:") as f64 / 1024.0
    );
    stop(child);
    drop(xvfb);
}
