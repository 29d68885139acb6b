//! The job that migrates this mock's agents: the README's example, pointed here.

use serde_json::{json, Value};

use super::MockAgents;

impl MockAgents {
    /// The README's example job against this mock (`organizationId=org-123`,
    /// `POST /agents/{id}/migrate` with an idempotency key), with the fields
    /// of `batch` merged over its batch settings.
    pub fn migration_job(&self, id: &str, batch: Value) -> Value {
        let mut settings = json!({
            "fetch_size": 50, "concurrency": 10, "max_retries": 3, "max_inflight_batches": 4
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut settings, batch) {
            base.extend(extra);
        }
        json!({
            "id": id,
            "kind": "migrate-agents",
            "source": {
                "type": "http", "url": self.agents_url(),
                "query": {"organizationId": "org-123"},
                "cursor_param": "cursor", "limit_param": "limit",
                "items_field": "agents", "id_field": "id", "next_cursor_field": "nextCursor"
            },
            "handler": {
                "type": "http", "method": "POST", "url": self.migrate_url_template(),
                "idempotency_header": "Idempotency-Key", "timeout": "10s"
            },
            "params": {"template": "my-template:v2", "preserveCoreMemories": true, "preserveToolVariables": false},
            "batch": settings,
            "failure_policy": "continue",
            "labels": {"workflow_id": "wf-9", "step_id": "migrate"}
        })
    }
}
