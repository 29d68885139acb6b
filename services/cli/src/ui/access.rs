//! Who may open the dashboard: anyone on this machine when it listens on
//! loopback; only holders of the token on any other address. A pure
//! `judge` of the flags, then a pure check of each request.
//!
//! The token arrives once as `?token=` (a link people can share in an
//! incident channel) and then lives in an HttpOnly, SameSite=Strict
//! cookie; scripts may send `Authorization: Bearer`. Actions (POSTs) also
//! carry a per-process form token, so another site cannot make a
//! logged-in browser cancel a job.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap};

/// The cookie the token lives in.
pub const COOKIE: &str = "jetflow_ui";

/// Whether the dashboard may listen as asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Loopback and no token: open to this machine.
    Open,
    /// Every request must carry the token.
    Token(String),
    /// Refused, with why.
    Refused(String),
}

/// Judges `--listen` and `--auth-token`.
pub fn judge(listen: SocketAddr, token: Option<&str>) -> Verdict {
    match token.map(str::trim) {
        Some(token) if token.len() < 16 => {
            Verdict::Refused("--auth-token: at least 16 characters, please".into())
        }
        Some(token) => Verdict::Token(token.to_string()),
        None if listen.ip().is_loopback() => Verdict::Open,
        None => Verdict::Refused(format!(
            "--listen {listen}: not a loopback address, so --auth-token (or JETFLOW_UI_TOKEN) is required"
        )),
    }
}

/// How a request proved it may look.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Allowed.
    In,
    /// Allowed, by a `?token=` to keep in a cookie.
    InSetCookie,
    /// Not allowed.
    Out,
}

/// Whether a request with these headers and query may look, given the
/// `expected` token (`None`: open).
pub fn check(expected: Option<&str>, headers: &HeaderMap, query: Option<&str>) -> Pass {
    let Some(expected) = expected else {
        return Pass::In;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value);
    if bearer.into_iter().chain(cookie).any(|t| same(t, expected)) {
        return Pass::In;
    }
    let in_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| percent_encoding::percent_decode_str(value).decode_utf8_lossy());
    match in_query {
        Some(token) if same(&token, expected) => Pass::InSetCookie,
        _ => Pass::Out,
    }
}

/// The cookie that keeps `token`.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
}

/// Compares without stopping at the first difference, so the time taken
/// tells nothing of how much of a guess was right.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn loopback_is_open_anything_else_needs_a_token() {
        assert_eq!(judge(addr("127.0.0.1:8233"), None), Verdict::Open);
        assert_eq!(judge(addr("[::1]:8233"), None), Verdict::Open);
        assert!(matches!(
            judge(addr("0.0.0.0:8233"), None),
            Verdict::Refused(why) if why.contains("--auth-token")
        ));
        assert_eq!(
            judge(addr("0.0.0.0:8233"), Some(TOKEN)),
            Verdict::Token(TOKEN.into())
        );
        assert!(matches!(
            judge(addr("0.0.0.0:8233"), Some("short")),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn a_request_passes_by_bearer_cookie_or_query() {
        let none = HeaderMap::new();
        assert_eq!(check(None, &none, None), Pass::In);
        assert_eq!(check(Some(TOKEN), &none, None), Pass::Out);
        assert_eq!(check(Some(TOKEN), &none, Some("token=wrong")), Pass::Out);
        assert_eq!(
            check(Some(TOKEN), &none, Some(&format!("page=2&token={TOKEN}"))),
            Pass::InSetCookie
        );
        let mut bearer = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("a header");
        bearer.insert(header::AUTHORIZATION, value);
        assert_eq!(check(Some(TOKEN), &bearer, None), Pass::In);
        let mut cookie = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("a=b; {COOKIE}={TOKEN}")).expect("a header");
        cookie.insert(header::COOKIE, value);
        assert_eq!(check(Some(TOKEN), &cookie, None), Pass::In);
        let mut wrong = HeaderMap::new();
        wrong.insert(header::COOKIE, HeaderValue::from_static("jetflow_ui=nope"));
        assert_eq!(check(Some(TOKEN), &wrong, None), Pass::Out);
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
