//! CPU time of a process, from `/proc/<pid>/stat`: with two shared cores,
//! where the CPU went during a job says more about what limits it than the
//! rate alone.

use anyhow::Context as _;

/// User plus system CPU time `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_ticks(&stat).with_context(|| format!("unexpected format of {path}"))?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(per_second > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(ticks as f64 / per_second as f64)
}

/// utime + stime, fields 14 and 15. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fields_after_the_command_name() {
        let stat =
            "4242 (jetflow (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 120 30 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_ticks(stat), Some(150));
        assert_eq!(parse_ticks("garbage"), None);
    }

    #[test]
    fn cpu_spent_by_this_process_shows_in_its_cpu_seconds() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).expect("own stat");
        // Burn CPU until the kernel's tick counter moves (10 ms at the usual
        // 100 Hz); the deadline only bounds a broken reading.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut x = 0u64;
        let mut after = before;
        while after <= before && std::time::Instant::now() < deadline {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i * i));
            }
            after = cpu_seconds(pid).expect("own stat");
        }
        assert!(
            after > before,
            "{after} s after burning CPU, {before} s before"
        );
    }

    #[test]
    fn a_process_that_does_not_exist_is_an_error() {
        // Above the kernel's pid_max (at most 2^22).
        let err = cpu_seconds(u32::MAX).unwrap_err();
        assert!(err.to_string().contains("/proc/4294967295/stat"), "{err}");
    }
}
