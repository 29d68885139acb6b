//! Settings a running job can change: its `concurrency` (scale up or down),
//! its retry limit, its handler timeout and its handler's rate limit.
//!
//! A change is a request on `<ns>.jobs.config.<job>` (JSON such as
//! `{"concurrency": 20}`), which fetch validates and appends to the job's
//! ledger. The reducer folds it into the job's state — so `nats kv get`
//! shows the settings in force — and applies the concurrency to the job's
//! task consumer (`max_ack_pending`, enforced by the server). Migrate
//! instances pick up the new state for the items they start next.

use std::{fmt, str::FromStr};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::{
    spec::{HandlerSpec, JobSpec},
    validate::{self, Rejection},
};
use crate::{duration::HumanDuration, rate::RateLimit};

/// A change to a running job's settings; fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigChange {
    /// Items in flight at once, across all migrate instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Retries of a transient failure before an item fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// How long one handler call may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_timeout: Option<HumanDuration>,
    /// The handler's calls per period at most (`"20/s"`), or `"none"`; for
    /// `http` and `nats` handlers (a `steps` job's limits are per step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateSetting>,
}

/// A live rate limit: a limit, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSetting {
    /// At most this rate.
    Limit(RateLimit),
    /// No limit (`"none"`).
    Unlimited,
}

impl RateSetting {
    /// The limit, if there is one.
    pub fn limit(self) -> Option<RateLimit> {
        match self {
            RateSetting::Limit(limit) => Some(limit),
            RateSetting::Unlimited => None,
        }
    }
}

impl From<Option<RateLimit>> for RateSetting {
    fn from(limit: Option<RateLimit>) -> Self {
        limit.map_or(RateSetting::Unlimited, RateSetting::Limit)
    }
}

impl FromStr for RateSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "none" => Ok(RateSetting::Unlimited),
            other => other.parse().map(RateSetting::Limit),
        }
    }
}

impl fmt::Display for RateSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSetting::Limit(limit) => limit.fmt(f),
            RateSetting::Unlimited => f.write_str("none"),
        }
    }
}

impl Serialize for RateSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// The names `jetflow config get|set` and the request body use.
pub const LIVE_SETTINGS: [&str; 4] = [
    "concurrency",
    "max_retries",
    "handler_timeout",
    "rate_limit",
];

impl ConfigChange {
    /// Parses `name=value` pairs as `jetflow config set` takes them.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, Rejection> {
        let mut change = ConfigChange::default();
        for pair in pairs {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(Rejection::new(
                    pair,
                    format!(
                        "expected NAME=VALUE, NAME one of {}",
                        LIVE_SETTINGS.join(", ")
                    ),
                ));
            };
            let number = || {
                value
                    .parse::<u32>()
                    .map_err(|e| Rejection::new(name, format!("{value:?}: {e}")))
            };
            match name {
                "concurrency" => change.concurrency = Some(number()?),
                "max_retries" => change.max_retries = Some(number()?),
                "handler_timeout" => {
                    change.handler_timeout = Some(
                        value
                            .parse()
                            .map_err(|e| Rejection::new(name, format!("{value:?}: {e}")))?,
                    )
                }
                "rate_limit" => {
                    change.rate_limit = Some(value.parse().map_err(|e| Rejection::new(name, e))?)
                }
                other => {
                    return Err(Rejection::new(
                        other,
                        format!("not a live setting; one of {}", LIVE_SETTINGS.join(", ")),
                    ))
                }
            }
        }
        if change == ConfigChange::default() {
            return Err(Rejection::new("settings", "nothing to change"));
        }
        Ok(change)
    }

    /// Checks the values against the limits a submitted job has.
    pub fn validate(&self) -> Result<(), Rejection> {
        if let Some(c) = self.concurrency {
            validate::in_range("concurrency", c, 1, validate::MAX_CONCURRENCY)?;
        }
        if let Some(r) = self.max_retries {
            validate::in_range("max_retries", r, 0, validate::MAX_RETRIES)?;
        }
        if let Some(t) = self.handler_timeout {
            validate::positive("handler_timeout", t.get())?;
        }
        Ok(())
    }

    /// Checks that `spec`'s job has every setting the change sets: a
    /// `rate_limit` needs a one-call handler (`http` or `nats`).
    pub fn fits(&self, spec: &JobSpec) -> Result<(), Rejection> {
        if self.rate_limit.is_some() && spec.handler.target().is_none() {
            return Err(Rejection::new(
                "rate_limit",
                format!(
                    "a {} handler has no rate limit of its own; a steps job's limits are per step, in its spec",
                    spec.handler.type_name()
                ),
            ));
        }
        Ok(())
    }

    /// Writes the change into `spec`, which then says exactly what runs.
    pub fn apply(&self, spec: &mut JobSpec) {
        if let Some(c) = self.concurrency {
            spec.batch.concurrency = Some(c);
        }
        if let Some(r) = self.max_retries {
            spec.batch.max_retries = Some(r);
        }
        if let Some(t) = self.handler_timeout {
            match &mut spec.handler {
                HandlerSpec::Http(http) => http.timeout = t,
                HandlerSpec::Nats(nats) => nats.timeout = t,
                HandlerSpec::External(external) => external.ack_wait = t,
                // Each step has its own timeout.
                HandlerSpec::Steps { .. } => {}
            }
        }
        if let Some(rate) = self.rate_limit {
            match &mut spec.handler {
                HandlerSpec::Http(http) => http.rate_limit = rate.limit(),
                HandlerSpec::Nats(nats) => nats.rate_limit = rate.limit(),
                // Refused by `fits`: no handler-wide limit.
                HandlerSpec::External(_) | HandlerSpec::Steps { .. } => {}
            }
        }
    }

    /// The live settings of `spec`, as a change that would set them all.
    pub fn current(spec: &JobSpec) -> Self {
        let settings = spec.settings();
        ConfigChange {
            concurrency: Some(settings.concurrency),
            max_retries: Some(settings.max_retries),
            handler_timeout: spec.handler_timeout(),
            rate_limit: spec
                .handler
                .target()
                .map(|_| spec.handler.rate_limit().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_and_bad_ones_name_the_setting() {
        let change = ConfigChange::from_pairs(["concurrency=20", "handler_timeout=5s"]).unwrap();
        assert_eq!(change.concurrency, Some(20));
        assert_eq!(change.handler_timeout.map(|t| t.get().as_secs()), Some(5));
        assert_eq!(change.max_retries, None);
        let field = |pairs: &[&str]| {
            ConfigChange::from_pairs(pairs.iter().copied())
                .unwrap_err()
                .field
        };
        assert_eq!(field(&["fetch_size=3"]), "fetch_size");
        assert_eq!(field(&["concurrency=lots"]), "concurrency");
        assert_eq!(field(&["concurrency"]), "concurrency");
        assert_eq!(field(&[]), "settings");
        assert_eq!(field(&["rate_limit=fast"]), "rate_limit");
        let zero = ConfigChange::from_pairs(["concurrency=0"]).unwrap();
        assert_eq!(zero.validate().unwrap_err().field, "concurrency");
    }

    #[test]
    fn a_rate_limit_is_set_and_removed_on_one_call_handlers_only() {
        let mut spec: JobSpec = serde_json::from_value(serde_json::json!({
            "kind": "k",
            "source": {"type": "items", "items": [{"id": "a"}]},
            "handler": {"type": "http", "url": "http://api/{id}"},
        }))
        .unwrap();
        let set = ConfigChange::from_pairs(["rate_limit=20/s"]).unwrap();
        set.fits(&spec).unwrap();
        set.apply(&mut spec);
        assert_eq!(
            spec.handler.rate_limit().map(|r| r.to_string()).as_deref(),
            Some("20/s")
        );
        let live = ConfigChange::current(&spec);
        assert_eq!(serde_json::to_value(&live).unwrap()["rate_limit"], "20/s");
        ConfigChange::from_pairs(["rate_limit=none"])
            .unwrap()
            .apply(&mut spec);
        assert_eq!(spec.handler.rate_limit(), None);
        assert_eq!(
            serde_json::to_value(ConfigChange::current(&spec)).unwrap()["rate_limit"],
            "none"
        );

        spec.handler = serde_json::from_value(serde_json::json!({"type": "external"})).unwrap();
        assert_eq!(set.fits(&spec).unwrap_err().field, "rate_limit");
        assert_eq!(ConfigChange::current(&spec).rate_limit, None);
    }

    #[test]
    fn unknown_fields_in_a_request_body_are_refused() {
        let err = serde_json::from_str::<ConfigChange>(r#"{"concurency": 3}"#).unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
    }
}
