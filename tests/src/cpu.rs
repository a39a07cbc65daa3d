//! CPU time of processes and of their descendants, read from `/proc/<pid>/stat` (Linux), for
//! benches that bill a load to the processes that served it.

use std::collections::BTreeMap;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux's
/// architectures; `getconf CLK_TCK`).
pub const TICKS_PER_SEC: f64 = 100.0;

/// The fields of one `/proc/<pid>/stat` line that matter here, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime: the process's own threads.
    pub own: u64,
    /// cutime + cstime: its children that have exited and been waited for.
    pub reaped: u64,
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and `)`, so
/// fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let num = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(num(4)?).ok()?,
        own: num(14)? + num(15)?,
        reaped: num(16)? + num(17)?,
    })
}

/// The stat of process `pid`; None once it is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process now, by pid.
fn all() -> BTreeMap<u32, Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// The descendants of `pid` now (children, their children, ...).
pub fn descendants(pid: u32) -> Vec<u32> {
    descendants_in(&all(), pid)
}

fn descendants_in(procs: &BTreeMap<u32, Stat>, pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(parent) = stack.pop() {
        for (&child, s) in procs {
            if s.ppid == parent && child != pid {
                out.push(child);
                stack.push(child);
            }
        }
    }
    out
}

/// CPU ticks used so far by one process and, apart, by all its descendants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The process's own threads.
    pub own: u64,
    /// Its descendants, live or exited and waited for.
    pub descendants: u64,
}

impl Usage {
    /// Seconds of own CPU since `before`.
    pub fn own_secs_since(&self, before: &Usage) -> f64 {
        self.own.saturating_sub(before.own) as f64 / TICKS_PER_SEC
    }

    /// Seconds of the descendants' CPU since `before`.
    pub fn descendants_secs_since(&self, before: &Usage) -> f64 {
        self.descendants.saturating_sub(before.descendants) as f64 / TICKS_PER_SEC
    }
}

/// What `pid` and its descendants have used so far: the live descendants' own and reaped ticks
/// plus the ticks of the children `pid` has reaped, so a worker replaced between two readings is
/// still counted. None when `pid` is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let procs = all();
    let root = match procs.get(&pid) {
        Some(s) => *s,
        None => stat(pid)?,
    };
    let live: u64 = descendants_in(&procs, pid)
        .iter()
        .filter_map(|d| procs.get(d))
        .map(|s| s.own + s.reaped)
        .sum();
    Some(Usage {
        own: root.own,
        descendants: live + root.reaped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_after_the_last_parenthesis() {
        let line = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 1 0 0 0 \
                    250 30 7 5 20 0 3 0 100 1000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                own: 280,
                reaped: 12
            })
        );
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn own_time_grows_with_work_and_reaped_children_are_counted() {
        let me = std::process::id();
        let before = usage(me).expect("this process");
        assert_eq!(stat(me).map(|s| s.own), Some(before.own));
        // 50 ms of busy work in this thread: at least a few ticks.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        // A child that burns CPU and exits, waited for: its ticks land in `reaped`.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let after = usage(me).expect("this process");
        assert!(after.own_secs_since(&before) > 0.0, "{before:?} {after:?}");
        assert!(
            after.descendants_secs_since(&before) > 0.0,
            "{before:?} {after:?}"
        );
        assert!(usage(u32::MAX).is_none());
    }

    #[test]
    fn descendants_include_grandchildren() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 2 & wait"])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = Vec::new();
        while found.len() < 2 && std::time::Instant::now() < deadline {
            found = descendants(std::process::id());
            found.retain(|&d| d == pid || stat(d).is_some_and(|s| s.ppid == pid));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&pid), "{found:?}");
        assert_eq!(found.len(), 2, "the sh and its sleep: {found:?}");
    }
}
