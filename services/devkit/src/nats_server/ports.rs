//! Picking free TCP ports on the loopback interface.

use std::net::TcpListener;

use anyhow::Context;

/// Returns `count` distinct ports that were free a moment ago.
///
/// The listeners are all held until every port is chosen, so the ports differ
/// from each other; they are released before returning, so another process
/// may grab one before nats-server binds it. Callers retry a failed start to
/// cover that race.
pub(crate) fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("reading a bound port")?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_nonzero() {
        let ports = free_ports(4).expect("ports");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 4);
        assert!(ports.iter().all(|&p| p != 0));
    }
}
