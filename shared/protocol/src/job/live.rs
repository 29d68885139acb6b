//! Settings a running job can change: its `concurrency` (scale up or down),
//! its retry limit and its handler timeout.
//!
//! A change is a request on `<ns>.jobs.config.<job>` (JSON such as
//! `{"concurrency": 20}`), which fetch validates and appends to the job's
//! ledger. The reducer folds it into the job's state — so `nats kv get`
//! shows the settings in force — and applies the concurrency to the job's
//! task consumer (`max_ack_pending`, enforced by the server). Migrate
//! instances pick up the new state for the items they start next.

use serde::{Deserialize, Serialize};

use super::{
    spec::{HandlerSpec, JobSpec},
    validate::{self, Rejection},
};
use crate::duration::HumanDuration;

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
}

/// The names `jetflow config get|set` and the request body use.
pub const LIVE_SETTINGS: [&str; 3] = ["concurrency", "max_retries", "handler_timeout"];

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
    }

    /// The live settings of `spec`, as a change that would set them all.
    pub fn current(spec: &JobSpec) -> Self {
        let settings = spec.settings();
        ConfigChange {
            concurrency: Some(settings.concurrency),
            max_retries: Some(settings.max_retries),
            handler_timeout: spec.handler_timeout(),
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
        let zero = ConfigChange::from_pairs(["concurrency=0"]).unwrap();
        assert_eq!(zero.validate().unwrap_err().field, "concurrency");
    }

    #[test]
    fn unknown_fields_in_a_request_body_are_refused() {
        let err = serde_json::from_str::<ConfigChange>(r#"{"concurency": 3}"#).unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
    }
}
