//! Benchmark: the kiosk's start to visible window, memory with the full
//! huddle screen, and idle CPU, under Xvfb with the software renderer.
//!
//! `cargo bench --bench footprint -- [--starts N] [--idle-seconds S] [--lang LANG]`
//!
//! - start: from spawning the release binary to its window being mapped
//!   and visible, polled with `xdotool search --onlyvisible` (a poll costs
//!   a few milliseconds, so figures are ±5 ms); median and p99 over N starts.
//! - memory: PSS and RSS from `/proc/PID/smaps_rollup` after a team leader
//!   and five members have tapped in (the attendance screen, 800x480).
//! - idle CPU: user+system time over S seconds on the idle screen.
//!
//! With `--lang LANG` (e.g. `de`) it is an A/B of the bundled translations
//! instead, in one run: the board in English against the board in LANG
//! (`board.language`), N starts of each interleaved (en, LANG, LANG, en,
//! ...: drift in the machine's load hits both alike), then the attendance
//! screen's PSS of each, 5 kiosks each, interleaved; the medians and their
//! difference are printed. No idle CPU in this mode.

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

/// Start to visible window of one kiosk on a fresh data directory.
fn start_once(display: &str, config: &Path, data: &Path) -> Duration {
    let t = Instant::now();
    let child = spawn(display, config, data);
    while !visible(display) {
        assert!(t.elapsed() < Duration::from_secs(20), "no window");
    }
    let took = t.elapsed();
    stop(child);
    while visible(display) {
        std::thread::sleep(Duration::from_millis(5));
    }
    took
}

/// PSS (kB) of a kiosk with the attendance screen full.
fn attendance_pss(display: &str, config: &Path, data: &Path, fifo: &Path) -> u64 {
    let child = spawn(display, config, data);
    while !visible(display) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for n in ["1001", "1002", "1003", "1004", "1005", "1006"] {
        tap(fifo, n);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", child.id())).unwrap();
    stop(child);
    while visible(display) {
        std::thread::sleep(Duration::from_millis(5));
    }
    field_kb(&rollup, "Pss:")
}

fn median<T: Copy + Ord>(v: &mut [T]) -> T {
    v.sort();
    v[v.len() / 2]
}

/// The A/B of `--lang`: English (`a`) against the other language (`b`).
fn ab(display: &str, dir: &Path, fifo: &Path, langs: [(&str, &Path); 2], starts: usize) {
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for i in 0..starts {
        // en, de, de, en, ...: neither always goes first.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let data = dir.join(format!("start-{}-{i}", langs[k].0));
            times[k].push(start_once(display, langs[k].1, &data));
        }
    }
    let mut pss: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..5 {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let data = dir.join(format!("pss-{}-{i}", langs[k].0));
            pss[k].push(attendance_pss(display, langs[k].1, &data, fifo));
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut p50 = [0.0f64; 2];
    let mut mem = [0u64; 2];
    for k in 0..2 {
        let mut t = times[k].clone();
        p50[k] = ms(median(&mut t));
        let p99 = ms(t[((t.len() - 1) as f64 * 0.99).round() as usize]);
        mem[k] = median(&mut pss[k].clone());
        println!(
            "{:>2}: start -> window visible  n={starts}  p50={:.1} ms  p99={p99:.1} ms;  attendance screen PSS median={:.1} MB (of {:?} kB)",
            langs[k].0,
            p50[k],
            mem[k] as f64 / 1024.0,
            pss[k]
        );
    }
    println!(
        "{} - en: start p50 {:+.1} ms, PSS {:+.2} MB (targets: <= 10 ms, <= 1 MB)",
        langs[1].0,
        p50[1] - p50[0],
        (mem[1] as f64 - mem[0] as f64) / 1024.0
    );
}

fn main() {
    let mut starts = 20usize;
    let mut idle_s = 60u64;
    let mut lang: Option<String> = None;
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
            "--lang" => lang = Some(args.next().expect("--lang LANG")),
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
    std::fs::write(&config, &text).unwrap();
    if let Some(lang) = lang {
        assert!(
            text.contains("language = \"en\""),
            "config/kiosk.toml no longer says language = \"en\""
        );
        let other = dir.path().join(format!("kiosk-{lang}.toml"));
        let translated = text.replacen("language = \"en\"", &format!("language = \"{lang}\""), 1);
        std::fs::write(&other, translated).unwrap();
        ab(
            &display,
            dir.path(),
            &fifo,
            [("en", &config), (&lang, &other)],
            starts,
        );
        drop(xvfb);
        return;
    }

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
