//! PostgreSQL faults: the database going away and coming back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketd::store::DatabaseUrl;

use crate::private_postgres::PrivateCluster;
use crate::process::Server;
use crate::provision;

/// How long a request may take to fail while the database is down.
const FAIL_FAST: Duration = Duration::from_secs(3);

struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: Value,
    took: Duration,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (status, retry_after, content_type) = (
        response.status(),
        header("retry-after"),
        header("content-type"),
    );
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        retry_after,
        content_type,
        body,
        took: started.elapsed(),
    }
}

fn assert_unavailable(what: &str, reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.body["code"], "service_unavailable",
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/problem+json"),
        "{what}"
    );
    assert!(reply.retry_after.is_some(), "{what}: no Retry-After");
    assert!(reply.took < FAIL_FAST, "{what} took {:?}", reply.took);
}

/// Stops the node's database under it: every request fails fast with a 503
/// problem and `Retry-After`, `/readyz` says not ready, and once the
/// database is back the same process serves again, with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_fast_503_and_the_node_recovers_by_itself() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.url();
    let fixture = {
        let store = ticketd::store::open(&DatabaseUrl::parse(&url).unwrap())
            .await
            .unwrap();
        provision(store.as_ref()).await
    };
    let logs = tempfile::tempdir().unwrap();
    let server = Server::start_on(&url, logs.path(), &[]).await;
    let client = reqwest::Client::new();
    let ticket = fixture.tickets[0];
    let thread = format!(
        "{}/api/v2/support/tickets/{ticket}/messages",
        server.base_url
    );
    let reply = |text: &str| {
        client
            .post(&thread)
            .bearer_auth(&fixture.staff_token)
            .json(&json!({ "message": text }))
    };

    assert_eq!(
        send(reply("before the outage")).await.status,
        StatusCode::CREATED
    );

    cluster.stop();
    assert_unavailable("a reply", &send(reply("during the outage")).await);
    assert_unavailable(
        "a read",
        &send(client.get(&thread).bearer_auth(&fixture.staff_token)).await,
    );
    assert_unavailable(
        "/readyz",
        &send(client.get(format!("{}/readyz", server.base_url))).await,
    );
    let live = send(client.get(format!("{}/healthz", server.base_url))).await;
    assert_eq!(
        live.status,
        StatusCode::OK,
        "the process itself stays alive"
    );

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = send(client.get(format!("{}/readyz", server.base_url))).await;
        if ready.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again: {:?}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        send(reply("after the outage")).await.status,
        StatusCode::CREATED
    );
    let thread_now = send(client.get(&thread).bearer_auth(&fixture.staff_token)).await;
    let bodies: Vec<&str> = thread_now.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["opening", "before the outage", "after the outage"],
        "the refused reply left no trace; the others are all there"
    );
}
