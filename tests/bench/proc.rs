//! CPU time of processes and threads from `/proc`, for the benchmarks
//! that report what a run cost beside how long it took.

/// A process's user + system CPU time so far, from `/proc/PID/stat`: a
/// figure that other load on the machine does not inflate the way it
/// inflates wall time.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// CPU time so far per thread name of a process (threads of one name
/// summed), largest first.
pub fn thread_cpu(pid: u32) -> Vec<(String, f64)> {
    let mut by_name: std::collections::BTreeMap<String, f64> = Default::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if let Some(cpu) = stat_cpu(&dir.join("stat").to_string_lossy()) {
            *by_name.entry(name.trim().to_owned()).or_default() += cpu;
        }
    }
    let mut v: Vec<_> = by_name.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// User + system CPU seconds from a `stat` file of `/proc`.
fn stat_cpu(file: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(file).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}
