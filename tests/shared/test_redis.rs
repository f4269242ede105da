//! The Redis that tests of the shared rate limiter use:
//! `TICKETD_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/0`. Each test
//! works under a key prefix of its own and deletes its keys at the end.
//!
//! Without a reachable Redis a test fails under CI (`CI` set) and is skipped
//! otherwise, with a notice written straight to the terminal (past the
//! harness's output capture).

use std::io::Write as _;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use ticketd::rate_limit::redis::RedisUrl;

/// The test Redis's URL.
pub fn url() -> String {
    std::env::var("TICKETD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A connection to the test Redis, or `None` after the skip notice.
pub async fn connect_or_skip(test: &str) -> Option<MultiplexedConnection> {
    let attempt = async {
        let client = redis::Client::open(url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok::<_, redis::RedisError>(connection)
    };
    let error = match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(connection)) => return Some(connection),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    let shown = RedisUrl::parse(&url()).map_or_else(
        |_| "(unparsable URL)".to_owned(),
        |url| url.redacted().to_string(),
    );
    let message = format!(
        "Redis at {shown} is unreachable ({error}). Start it with: redis-server --daemonize yes \
         --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis \
         --logfile /var/log/redis/ci.log"
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {message} (CI is set, so this test fails instead of skipping)"
    );
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {message}\n");
    None
}

/// A key prefix no other test run uses.
pub fn fresh_prefix() -> String {
    format!("ticketd-test:{}:", ulid::Ulid::new())
}

/// Deletes every key under `prefix`.
pub async fn delete_keys(redis: &mut MultiplexedConnection, prefix: &str) {
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .query_async(redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(redis)
                .await
                .unwrap();
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
