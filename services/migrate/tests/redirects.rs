//! An `http` handler answered with a redirect fails the item, saying where
//! it pointed, and the redirect is not followed (a POST must not turn into
//! a GET somewhere else).

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use jetflow_migrate::handler::{http, Call, HandlerError};
use jetflow_protocol::{job::HttpHandler, messages::Item};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// An HTTP server that answers every request with `302 Found` to
/// `/elsewhere` on itself, counting the requests it gets.
async fn redirecting_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let (seen, location) = (requests.clone(), format!("{base}/elsewhere"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (seen, location) = (seen.clone(), location.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                // One read holds this test's small request whole.
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, requests)
}

#[tokio::test]
async fn a_redirect_fails_the_item_naming_where_it_pointed_and_is_not_followed() {
    let (base, requests) = redirecting_server().await;
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
    assert!(error.contains(&format!("{base}/elsewhere")), "{error}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the redirect was followed"
    );
}
