//! The agents the mock knows about.

use std::collections::BTreeMap;

use serde::Serialize;

/// Template every agent starts on.
pub(crate) const INITIAL_TEMPLATE: &str = "my-template:v1";

/// One agent as the API returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Agent {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub template: String,
}

/// Builds `agent-00001..agent-NNNNN`, keyed by id.
///
/// Ids are zero padded to one width (at least 5 digits), so their string
/// order is their numeric order and a `BTreeMap` range can serve cursors.
pub(crate) fn build(count: usize, organization: &str) -> BTreeMap<String, Agent> {
    let width = count.to_string().len().max(5);
    (1..=count)
        .map(|n| {
            let id = format!("agent-{n:0width$}");
            let agent = Agent {
                id: id.clone(),
                name: format!("Agent {n}"),
                organization_id: organization.to_owned(),
                template: INITIAL_TEMPLATE.to_owned(),
            };
            (id, agent)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_padded_and_ordered() {
        let agents = build(3, "org");
        let ids: Vec<&str> = agents.keys().map(String::as_str).collect();
        assert_eq!(ids, ["agent-00001", "agent-00002", "agent-00003"]);

        let many = build(123_456, "org");
        assert_eq!(many.keys().next().map(String::as_str), Some("agent-000001"));
        assert_eq!(many.keys().last().map(String::as_str), Some("agent-123456"));
    }
}
