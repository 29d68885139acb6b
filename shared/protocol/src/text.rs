//! Small text helpers for error messages people read.

/// An error with its causes: `a: b: c`. Top-level messages of HTTP and IO
/// errors often hide the cause ("error sending request").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `body` trimmed and cut to `max` characters, with `…` when cut.
pub fn quote(body: &str, max: usize) -> String {
    let body = body.trim();
    match body.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_on_char_boundaries() {
        assert_eq!(super::quote("  ab  ", 5), "ab");
        assert_eq!(super::quote("ééé", 2), "éé…");
    }
}
