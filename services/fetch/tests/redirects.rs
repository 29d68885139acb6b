//! An `http` source that answers with a redirect refuses the page, saying
//! where it pointed, and the redirect is not followed: the job names the url
//! it reads, as a migrate handler's does.

use jetflow_devkit::Redirector;
use jetflow_fetch::source::{http, SourceError};
use jetflow_protocol::job;
use serde_json::json;

#[tokio::test]
async fn a_redirect_refuses_the_page_naming_where_it_pointed_and_is_not_followed() {
    let target = Redirector::start().await.unwrap();
    let url = format!("{}/agents", target.base_url());
    let spec: job::HttpSource = serde_json::from_value(json!({ "url": url })).unwrap();
    let source = http::HttpSource::new(spec, http::client().unwrap());
    let result = source.page(None, 50).await;
    let Err(SourceError::Refused(reason)) = result else {
        panic!("a redirect must refuse the page, got {result:?}");
    };
    assert!(reason.contains("HTTP 302"), "{reason}");
    assert!(reason.contains(&target.location()), "{reason}");
    assert!(reason.contains("batch.fetch_size=50"), "{reason}");
    assert_eq!(target.requests(), 1, "the redirect was followed");
}
