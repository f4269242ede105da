//! Reading a process's CPU time, parent and memory from /proc.

/// Clock ticks per second for /proc/PID/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of /proc/PID/stat the benchmark uses.
struct Stat {
    /// The parent's process id.
    ppid: u32,
    /// User plus system CPU seconds of the process itself.
    own: f64,
    /// User plus system CPU seconds of its exited children it has waited for.
    reaped_children: f64,
}

fn stat(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces):
    // state is the 3rd field of the whole line, ppid the 4th, utime, stime,
    // cutime and cstime the 14th to 17th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> Option<f64> { fields.get(index)?.parse().ok() };
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        own: (ticks(11)? + ticks(12)?) / TICKS_PER_SECOND,
        reaped_children: (ticks(13)? + ticks(14)?) / TICKS_PER_SECOND,
    })
}

/// User plus system CPU seconds the process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat(pid).map(|stat| stat.own)
}

/// The process's parent.
pub fn parent(pid: u32) -> Option<u32> {
    stat(pid).map(|stat| stat.ppid)
}

/// The process's command name (`/proc/PID/comm`).
pub fn command(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim().to_owned())
}

/// CPU seconds used by `root`, its live children and the children it has
/// already reaped. The difference of two readings is what the process and
/// its children used in between, children that came or went included: a
/// child's time moves into its parent's reaped-children total when it exits.
pub fn family_cpu_seconds(root: u32) -> Option<f64> {
    let parent = stat(root)?;
    let mut total = parent.own + parent.reaped_children;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(child) = stat(pid).filter(|child| child.ppid == root) {
            total += child.own;
        }
    }
    Some(total)
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in MiB.
pub fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
