//! Blocking probes of a server's client and monitoring ports.
//!
//! Plain `std::net` on purpose: the probes run from `Drop`-adjacent, blocking
//! code and must not pull an HTTP client or an async runtime into the crate.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long a single probe may take before it counts as "not ready yet".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// True when a TCP connection to `127.0.0.1:port` is accepted.
pub(crate) fn tcp_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), PROBE_TIMEOUT).is_ok()
}

/// Sends `GET path` over HTTP/1.0 to `127.0.0.1:port` and returns the status code.
///
/// HTTP/1.0 makes the server close the connection after the answer, so reading
/// to the end needs no parsing of lengths or chunks.
pub(crate) fn http_get_status(port: u16, path: &str) -> io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_status(&response)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP status line"))
}

/// Extracts the code from a status line such as `HTTP/1.0 200 OK`.
fn parse_status(response: &[u8]) -> Option<u16> {
    let line_end = response.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status(b"HTTP/1.0 200 OK\r\n\r\n{}"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"garbage\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.0 200 OK"), None);
    }
}
