//! The mock's shared state and the rules it answers by, free of HTTP.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use super::catalog::{self, Agent};
use super::config::MockAgentsConfig;
use super::faults::{self, Faults, FaultsUpdate};
use super::stats::{bump, Counters, MockStats};

/// One page of `GET /agents`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    pub agents: Vec<Agent>,
    /// Id to pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// How a migrate call ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Migration {
    /// 200, the agent was migrated by this call.
    Migrated(Value),
    /// 200, the answer of an earlier call with the same idempotency key.
    Replayed(Value),
    /// 503.
    Unavailable,
    /// 429 with `Retry-After` of this many seconds.
    Throttled(u64),
    /// 404.
    NotFound,
    /// 422, the agent can never use the template.
    Incompatible { template: String },
    /// 400, with the reason.
    BadRequest(String),
}

/// What a migrate call may do after passing the cheap checks.
pub(crate) struct Admitted {
    /// How long to wait before deciding, outside the lock.
    pub latency: Duration,
}

/// Everything behind the mock's `Arc`.
#[derive(Debug)]
pub(crate) struct State {
    organization: String,
    page_limit: usize,
    page_overlap: usize,
    seed: u64,
    pub(crate) counters: Counters,
    /// Held only for short, synchronous sections; never across an `.await`.
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    agents: BTreeMap<String, Agent>,
    /// Migrated agents, with the idempotency key of their first success.
    migrated: HashMap<String, Option<String>>,
    /// Answers of successful calls, by agent id and idempotency key.
    ///
    /// Keys are scoped to the agent: the same key sent for two agents means
    /// two operations, not a replay of the first agent's answer.
    answers: HashMap<(String, String), Value>,
    faults: Faults,
    rng: StdRng,
}

impl State {
    pub(crate) fn new(config: &MockAgentsConfig) -> Self {
        Self {
            organization: config.organization.clone(),
            page_limit: config.page_limit,
            page_overlap: config.page_overlap,
            seed: config.seed,
            counters: Counters::default(),
            inner: Mutex::new(Inner {
                agents: catalog::build(config.agents, &config.organization),
                migrated: HashMap::new(),
                answers: HashMap::new(),
                faults: Faults::from_config(config),
                rng: StdRng::seed_from_u64(config.seed),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the data consistent enough
        // for a test double; keep serving rather than cascading the panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One page of agents after `cursor`, or the reason for a 400.
    pub(crate) fn page(
        &self,
        organization: Option<&str>,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Page, String> {
        let page = self.page_or_refusal(organization, cursor, limit);
        if page.is_err() {
            bump(&self.counters.refused_pages);
        }
        page
    }

    fn page_or_refusal(
        &self,
        organization: Option<&str>,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Page, String> {
        let organization = organization
            .filter(|org| !org.is_empty())
            .ok_or_else(|| "organizationId is required".to_owned())?;
        let limit = match limit.filter(|l| !l.is_empty()) {
            None => self.page_limit,
            Some(text) => match text.parse::<usize>() {
                Ok(0) | Err(_) => return Err("limit must be a positive integer".to_owned()),
                Ok(n) if n > self.page_limit => {
                    return Err(format!("limit must be at most {}", self.page_limit))
                }
                Ok(n) => n,
            },
        };
        bump(&self.counters.pages);
        if organization != self.organization {
            return Ok(Page {
                agents: Vec::new(),
                next_cursor: None,
            });
        }
        let start = match cursor.filter(|c| !c.is_empty()) {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let inner = self.lock();
        // Overlapping pages: the last agents up to the cursor again.
        let mut agents: Vec<Agent> = match cursor.filter(|c| !c.is_empty()) {
            Some(after) => {
                let repeat = self.page_overlap.min(limit - 1);
                let mut back: Vec<Agent> = inner
                    .agents
                    .range::<str, _>((Bound::Unbounded, Bound::Included(after)))
                    .rev()
                    .take(repeat)
                    .map(|(_, agent)| agent.clone())
                    .collect();
                back.reverse();
                back
            }
            None => Vec::new(),
        };
        let room = limit - agents.len();
        // One extra agent tells whether another page follows.
        let mut forward: Vec<Agent> = inner
            .agents
            .range::<str, _>((start, Bound::Unbounded))
            .take(room + 1)
            .map(|(_, agent)| agent.clone())
            .collect();
        let more = forward.len() > room;
        forward.truncate(room);
        agents.extend(forward);
        let next_cursor = if more {
            agents.last().map(|agent| agent.id.clone())
        } else {
            None
        };
        Ok(Page {
            agents,
            next_cursor,
        })
    }

    /// The agent with this id.
    pub(crate) fn agent(&self, id: &str) -> Option<Agent> {
        self.lock().agents.get(id).cloned()
    }

    /// Checks done before the injected latency: the switch, the id, replays.
    pub(crate) fn admit(&self, id: &str, key: Option<&str>) -> Result<Admitted, Migration> {
        let mut inner = self.lock();
        if inner.faults.down {
            return Err(Migration::Unavailable);
        }
        if inner.faults.throttle > 0 {
            inner.faults.throttle -= 1;
            return Err(Migration::Throttled(inner.faults.retry_after_s));
        }
        if !inner.agents.contains_key(id) {
            return Err(Migration::NotFound);
        }
        if let Some(answer) =
            key.and_then(|key| inner.answers.get(&(id.to_owned(), key.to_owned())))
        {
            return Err(Migration::Replayed(answer.clone()));
        }
        Ok(Admitted {
            latency: inner.faults.latency,
        })
    }

    /// Decides an admitted call: permanent failure, transient failure or
    /// success, which migrates the agent.
    pub(crate) fn decide(&self, id: &str, key: Option<&str>, template: &str) -> Migration {
        let mut inner = self.lock();
        if faults::is_permanent(self.seed, id, inner.faults.permanent_rate) {
            return Migration::Incompatible {
                template: template.to_owned(),
            };
        }
        let transient_rate = inner.faults.transient_rate;
        if inner.rng.gen::<f64>() < transient_rate {
            return Migration::Unavailable;
        }
        // A concurrent call with the same key may have succeeded while this
        // one slept; it must not migrate twice.
        let answer_key = key.map(|key| (id.to_owned(), key.to_owned()));
        if let Some(answer) = answer_key.as_ref().and_then(|k| inner.answers.get(k)) {
            return Migration::Replayed(answer.clone());
        }
        let answer = json!({ "id": id, "template": template, "migrated": true });
        if inner.migrated.contains_key(id) {
            bump(&self.counters.duplicate_successes);
        } else {
            inner.migrated.insert(id.to_owned(), key.map(str::to_owned));
        }
        if let Some(agent) = inner.agents.get_mut(id) {
            agent.template = template.to_owned();
        }
        if let Some(answer_key) = answer_key {
            inner.answers.insert(answer_key, answer.clone());
        }
        Migration::Migrated(answer)
    }

    /// Counts how a migrate call ended.
    pub(crate) fn record(&self, outcome: &Migration) {
        let c = &self.counters;
        match outcome {
            Migration::Migrated(_) => bump(&c.successes),
            Migration::Replayed(_) => {
                bump(&c.successes);
                bump(&c.idempotent_replays);
            }
            Migration::Unavailable | Migration::Throttled(_) => bump(&c.transient_errors),
            Migration::NotFound => bump(&c.not_found),
            Migration::Incompatible { .. } => bump(&c.permanent_errors),
            Migration::BadRequest(_) => bump(&c.bad_requests),
        }
    }

    pub(crate) fn stats(&self) -> MockStats {
        let migrated = u64::try_from(self.lock().migrated.len()).unwrap_or(u64::MAX);
        self.counters.snapshot(migrated)
    }

    /// Ids of migrated agents, sorted.
    pub(crate) fn migrated_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().migrated.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn is_permanent_failure(&self, id: &str) -> bool {
        let inner = self.lock();
        inner.agents.contains_key(id)
            && faults::is_permanent(self.seed, id, inner.faults.permanent_rate)
    }

    /// Ids of all agents that answer 422 at the current rate, sorted.
    pub(crate) fn permanent_failures(&self) -> Vec<String> {
        let inner = self.lock();
        let rate = inner.faults.permanent_rate;
        inner
            .agents
            .keys()
            .filter(|id| faults::is_permanent(self.seed, id, rate))
            .cloned()
            .collect()
    }

    /// Applies a fault update and returns the resulting settings.
    pub(crate) fn update_faults(&self, update: &FaultsUpdate) -> anyhow::Result<FaultsUpdate> {
        let mut inner = self.lock();
        inner.faults.apply(update)?;
        Ok(inner.faults.view())
    }

    pub(crate) fn faults(&self) -> FaultsUpdate {
        self.lock().faults.view()
    }
}
