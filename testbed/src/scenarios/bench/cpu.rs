//! CPU time spent while a path is measured: the whole machine's (every
//! process and the kernel's softirq work on the veths; /proc/stat) and
//! our daemons' own (user + system time of their processes,
//! /proc/PID/stat). Divided by the octets moved it gives CPU seconds per
//! gigabyte, the cost of a path (issue: 2 cores here, so the ratio between
//! paths says more than the absolute figure).

/// Clock ticks per second of /proc figures (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Busy CPU seconds of the whole machine since boot (all CPUs): user,
/// nice, system, irq, softirq and steal time of the `cpu` line.
pub fn machine_busy_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    machine_busy_from(&text).map(|t| t / ticks_per_s())
}

fn machine_busy_from(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    (v.len() >= 4).then(|| at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// User + system CPU seconds of process `pid` (its threads included).
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    process_cpu_from(&text).map(|t| t / ticks_per_s())
}

fn process_cpu_from(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses: fields start
    // after the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A reading of both clocks.
#[derive(Debug, Clone)]
pub struct Sample {
    machine: Option<f64>,
    daemons: Vec<Option<f64>>,
}

impl Sample {
    /// Reads the clocks now, for the daemons `pids`.
    pub fn take(pids: &[u32]) -> Sample {
        Sample {
            machine: machine_busy_s(),
            daemons: pids.iter().map(|p| process_cpu_s(*p)).collect(),
        }
    }

    /// CPU seconds between `self` (earlier) and `later`: (machine,
    /// daemons summed).
    pub fn since(&self, later: &Sample) -> (Option<f64>, Option<f64>) {
        let machine = match (self.machine, later.machine) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let mut daemons = 0.0;
        let mut any = false;
        for (a, b) in self.daemons.iter().zip(&later.daemons) {
            if let (Some(a), Some(b)) = (a, b) {
                daemons += (b - a).max(0.0);
                any = true;
            }
        }
        (machine, any.then_some(daemons))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_time() {
        let s = "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 50 2 25 500 3 1 1 0 0 0\n";
        assert_eq!(machine_busy_from(s), Some(161.0));
        assert_eq!(machine_busy_from("intr 1 2 3\n"), None);
    }

    #[test]
    fn process_stat_with_odd_name() {
        let s = "1234 (a) b (c)) S 1 1 1 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 99 0 0";
        assert_eq!(process_cpu_from(s), Some(325.0));
        assert_eq!(process_cpu_from("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_clock() {
        assert!(process_cpu_s(std::process::id()).is_some());
    }
}
