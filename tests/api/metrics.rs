//! Prometheus metrics at `GET /metrics`: on the API listener only with
//! `metrics_token` (and that token), on `metrics_listen` to anyone, what
//! they count, and that no label carries an id, a token or a body.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::BACKEND;
use super::cli::{Scratch, text};

const TOKEN: &str = "scrape-token-0123456789";

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the sample `series` (name and labels, exactly as written)
/// in `exposition`.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

async fn get(url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_requests_claims_refusals_and_storage_with_bounded_labels() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Hosting");
    let jane = scratch.create_user(text(&workspace["id"]), "customer", "Jane Example");
    let token = text(&scratch.create_key(text(&jane["id"]))["token"]).to_owned();
    let metrics_port = free_port();
    let listen = metrics_port.to_string();
    let server = scratch
        .serve_with_env(&[
            ("TICKETD_METRICS_TOKEN", TOKEN),
            ("TICKETD_METRICS_LISTEN", &listen),
            ("TICKETD_AUTH_FAILURE_LIMIT_PER_MINUTE", "2"),
        ])
        .await;
    let own_listener = format!("http://127.0.0.1:{metrics_port}/metrics");
    let on_the_api = format!("{}/metrics", server.base_url);

    // On the API listener: the token, and only the token.
    let (status, body) = get(&on_the_api, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    let (status, _) = get(&on_the_api, Some("scrape-token-012345678X")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(&on_the_api, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ticketd_build_info{version=\""), "{body}");

    // Traffic: a keyed ticket and its replay, a read by id, an unmatched
    // path, an odd method, an upload, and failed authentications.
    let create = json!({"subject": "Metrics", "message": "count me"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v2/support/tickets", server.base_url))
            .bearer_auth(&token)
            .header("idempotency-key", "metrics-1")
            .json(&create)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let ticket: serde_json::Value = response.json().await.unwrap();
        ids.push(text(&ticket["id"]).to_owned());
    }
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/api/v2/support/tickets/{}", ids[0]),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(
            Method::GET,
            "/no/such/tkt_01jbz9x8m7k6h5g4f3e2d1c0b9",
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let brew = Method::from_bytes(b"BREW").unwrap();
    server
        .call(brew, "/api/v2/support/tickets", &token, None)
        .await;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend([7u8; 992]);
    let uploaded = reqwest::Client::new()
        .post(format!(
            "{}/api/v2/support/uploads?filename=screen.png",
            server.base_url
        ))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    for _ in 0..3 {
        server
            .call(
                Method::GET,
                "/api/v2/support/tickets",
                "tkd_not_a_real_token",
                None,
            )
            .await;
    }

    // On a listener of its own: no token needed.
    let (status, metrics) = get(&own_listener, None).await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    let expect = |series: &str, at_least: f64| {
        let value = sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
        assert!(value >= at_least, "{series} = {value}");
    };
    expect(
        r#"ticketd_http_requests_total{route="/api/v2/support/tickets",method="POST",status="2xx"}"#,
        2.0,
    );
    expect(
        r#"ticketd_http_requests_total{route="/api/v2/support/tickets/{id}",method="GET",status="2xx"}"#,
        1.0,
    );
    expect(
        r#"ticketd_http_requests_total{route="unmatched",method="GET",status="4xx"}"#,
        1.0,
    );
    expect(
        r#"ticketd_http_requests_total{route="/metrics",method="GET",status="4xx"}"#,
        2.0,
    );
    expect(
        r#"ticketd_idempotency_claims_total{outcome="claimed"}"#,
        1.0,
    );
    expect(
        r#"ticketd_idempotency_claims_total{outcome="replayed"}"#,
        1.0,
    );
    expect(
        r#"ticketd_rate_limit_refusals_total{limit="auth_failures"}"#,
        1.0,
    );
    expect("ticketd_uploads_total", 1.0);
    expect("ticketd_upload_bytes_total", 1000.0);
    expect("ticketd_process_resident_memory_bytes", 1_000_000.0);
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    assert!(
        metrics.contains("ticketd_http_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    if scratch.db_url().starts_with("sqlite://") {
        expect(
            r#"ticketd_store_operations_total{backend="sqlite",operation="write"}"#,
            3.0,
        );
        expect("ticketd_sqlite_write_group_size_count", 3.0);
        expect("ticketd_sqlite_commit_duration_seconds_count", 3.0);
        expect("ticketd_sqlite_fsync_duration_seconds_count", 1.0);
        expect("ticketd_sqlite_wal_bytes", 1.0);
    } else {
        expect(
            r#"ticketd_store_operations_total{backend="postgres",operation="connection"}"#,
            3.0,
        );
        expect("ticketd_postgres_pool_connections", 1.0);
        expect("ticketd_postgres_pool_wait_duration_seconds_count", 3.0);
        assert!(
            metrics.contains("ticketd_postgres_pool_waiting "),
            "{metrics}"
        );
    }
    // No label holds an id, a token, or anything a client sent.
    let sent = [ids[0].as_str(), ids[1].as_str(), token.as_str(), TOKEN];
    for secret in sent
        .into_iter()
        .chain(["tkd_not_a_real_token", "BREW", "screen.png"])
    {
        assert!(!metrics.contains(secret), "{secret} in\n{metrics}");
    }
}

#[tokio::test]
async fn without_a_metrics_setting_there_is_no_metrics_endpoint() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let server = scratch.serve().await;
    for token in [None, Some(TOKEN)] {
        let (status, _) = get(&format!("{}/metrics", server.base_url), token).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
