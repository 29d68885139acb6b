//! Peak resident memory of a process, as the kernel keeps it: `VmHWM` in
//! `/proc/<pid>/status`. A high-water mark rather than a sample, so a
//! short spike between two samples cannot hide.

use anyhow::Context as _;

/// The peak resident set size of `pid` so far, in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {path}"))
}

/// The `VmHWM:   12345 kB` line's number.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// KiB as MB (10^6 bytes), the unit the targets are stated in.
pub fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark() {
        let status = "Name:\tjetflow-fetch\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(20480));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_has_a_peak() {
        let kib = peak_rss_kib(std::process::id()).expect("own /proc status");
        assert!(kib > 0);
    }
}
