//! An `http` handler answered with a redirect fails the item, saying where
//! it pointed, and the redirect is not followed (a POST must not turn into
//! a GET somewhere else).

use jetflow_devkit::Redirector;
use jetflow_migrate::handler::{http, Call, HandlerError};
use jetflow_protocol::{job::HttpHandler, messages::Item};
use serde_json::{json, Value};

#[tokio::test]
async fn a_redirect_fails_the_item_naming_where_it_pointed_and_is_not_followed() {
    let target = Redirector::start().await.unwrap();
    let base = target.base_url();
    let spec: HttpHandler =
        serde_json::from_value(json!({"url": format!("{base}/agents/{{id}}/migrate")})).unwrap();
    let item = Item {
        id: "agent-1".into(),
        data: Value::Null,
        priority: None,
    };
    let call = Call {
        job: "j",
        item: &item,
        params: &json!({"template": "v2"}),
        attempt: 1,
        step: None,
        input: &Value::Null,
    };
    let client = http::client().unwrap();
    let result = http::call(&client, &spec, &call).await;
    let Err(HandlerError::Permanent(error)) = result else {
        panic!("a redirect must fail the item for good, got {result:?}");
    };
    assert!(error.starts_with("HTTP 302"), "{error}");
    assert!(error.contains(&target.location()), "{error}");
    assert_eq!(target.requests(), 1, "the redirect was followed");
}
