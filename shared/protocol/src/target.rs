//! The targets jobs call — an HTTP host, a NATS subject — named the same
//! way by migrate (its breakers and limits), the CLI and the status, and
//! the limits a target carries for every job that calls it.
//!
//! A target's limits — a rate, and a concurrency (calls in flight at once)
//! — are a JSON record in the `<ns>_limits` bucket under the target's key
//! ([`key`]), set with `jetflow limits set` or `nats kv put`; every migrate
//! instance watches the bucket, so a change applies to the calls started
//! after it, in every job.

use serde::{Deserialize, Serialize};

use crate::{names::item_key, rate::RateLimit};

/// The target of HTTP calls to `url`: its authority (`host:port`, no
/// user info), lower-cased.
pub fn http(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_ascii_lowercase()
}

/// The target of NATS requests on `subject`.
pub fn nats(subject: &str) -> String {
    format!("nats:{subject}")
}

/// The target an operator means by `arg`: `nats:<subject>` as it is, a URL
/// or a bare `host[:port]` as the HTTP target it names.
pub fn parse(arg: &str) -> Result<String, String> {
    let arg = arg.trim();
    let target = match arg.strip_prefix("nats:") {
        Some(subject) if !subject.is_empty() && !subject.contains(char::is_whitespace) => {
            nats(subject)
        }
        Some(_) => return Err(format!("{arg:?}: a NATS target is nats:<subject>")),
        None => http(arg),
    };
    if target.is_empty() || target.contains(char::is_whitespace) {
        return Err(format!(
            "{arg:?} is not a target: give a URL, host[:port] or nats:<subject>"
        ));
    }
    Ok(target)
}

/// The target's key in the limits bucket and its token in rate subjects:
/// the target itself when it is a token, else its `=`-prefixed base64url
/// form (as item keys are made).
pub fn key(target: &str) -> String {
    item_key(target)
}

/// The limits a target carries for every job that calls it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetLimits {
    /// The target, as [`http`] or [`nats`] name it.
    pub target: String,
    /// Calls per period to the target, across every job and instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
    /// Calls in flight to the target at once, across every job and
    /// instance (each holds one of the target's slots, see `names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// The names `jetflow limits set` takes.
pub const LIMIT_NAMES: [&str; 2] = ["rate", "concurrency"];

/// The most calls a target's `concurrency` may allow at once: each is a
/// message in the slots stream and a place in the slot consumer's
/// `max_ack_pending`.
pub const MAX_CONCURRENCY: u32 = 10_000;

/// A target's `concurrency` as `jetflow limits set` gives it.
pub fn parse_concurrency(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "concurrency: {value:?} is not a whole number from 1 to {MAX_CONCURRENCY} (or none)"
        )),
    }
}

impl TargetLimits {
    /// `target`'s limits as `name=value` pairs set them over `self`
    /// (`rate=none` removes the rate).
    pub fn with_pairs<'a>(
        mut self,
        pairs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let mut any = false;
        for pair in pairs {
            any = true;
            let Some((name, value)) = pair.split_once('=') else {
                return Err(format!(
                    "{pair:?}: expected NAME=VALUE, NAME one of {}",
                    LIMIT_NAMES.join(", ")
                ));
            };
            match name {
                "rate" if value == "none" => self.rate = None,
                "rate" => self.rate = Some(value.parse().map_err(|e| format!("rate: {e}"))?),
                "concurrency" if value == "none" => self.concurrency = None,
                "concurrency" => self.concurrency = Some(parse_concurrency(value)?),
                other => {
                    return Err(format!(
                        "{other:?} is not a target limit (one of {})",
                        LIMIT_NAMES.join(", ")
                    ))
                }
            }
        }
        if !any {
            return Err(format!("nothing to set: give {}", LIMIT_NAMES.join(", ")));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_named_by_host_or_subject() {
        assert_eq!(
            http("https://User:pw@API.example.com:8443/v1/x?q"),
            "api.example.com:8443"
        );
        assert_eq!(
            parse("http://127.0.0.1:9000/agents/{id}").unwrap(),
            "127.0.0.1:9000"
        );
        assert_eq!(parse("api.example.com").unwrap(), "api.example.com");
        assert_eq!(parse("nats:agents.migrate").unwrap(), "nats:agents.migrate");
        assert!(parse("nats:").is_err());
        assert!(parse("  ").is_err());
        assert_eq!(key("api.example.com"), "=YXBpLmV4YW1wbGUuY29t");
        assert_eq!(key("localhost"), "localhost");
    }

    #[test]
    fn limits_are_set_by_pairs_and_bad_ones_say_why() {
        let limits = TargetLimits {
            target: "api".into(),
            ..Default::default()
        };
        let set = limits.clone().with_pairs(["rate=100/s"]).unwrap();
        assert_eq!(set.rate.map(|r| r.to_string()).as_deref(), Some("100/s"));
        let both = set.clone().with_pairs(["concurrency=20"]).unwrap();
        assert_eq!((both.rate, both.concurrency), (set.rate, Some(20)));
        assert_eq!(
            both.with_pairs(["concurrency=none"]).unwrap().concurrency,
            None
        );
        assert_eq!(set.with_pairs(["rate=none"]).unwrap().rate, None);
        for (pairs, why) in [
            (vec!["rate"], "NAME=VALUE"),
            (vec!["rate=fast"], "rate:"),
            (vec!["concurrency=0"], "concurrency:"),
            (vec!["concurrency=10001"], "1 to 10000"),
            (vec!["concurrency=-3"], "concurrency:"),
            (vec!["burst=3"], "not a target limit"),
            (vec![], "nothing to set"),
        ] {
            let err = limits.clone().with_pairs(pairs).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let json = r#"{"target":"api","rate":"20/s","concurrency":5}"#;
        let back: TargetLimits = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
