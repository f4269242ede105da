//! A uniquely named PostgreSQL database per test, dropped afterwards.
//!
//! Included into each test binary that runs against PostgreSQL with
//! `#[path = "../shared/test_postgres.rs"] mod test_postgres;`. The server is
//! named by `TICKETD_TEST_POSTGRES_URL` (a URL of a database to connect to
//! for `CREATE DATABASE`; by default [`DEFAULT_ADMIN_URL`]). When it cannot
//! be reached, the PostgreSQL half of the suite is skipped with a notice on
//! stderr, unless `CI` is set: under CI it is mandatory, and the test panics.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use std::future::Future;
use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// The variable naming the server's admin database.
pub const ADMIN_URL_VAR: &str = "TICKETD_TEST_POSTGRES_URL";

/// The admin database used when [`ADMIN_URL_VAR`] is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long creating or dropping a database may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Set once the server was found unreachable, so that later tests of the
/// same binary skip at once instead of each waiting for a timeout.
static UNREACHABLE: AtomicBool = AtomicBool::new(false);

/// The skip notice is written once per test binary.
static NOTICE: Once = Once::new();

/// An empty database of its own on the test server; dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a database named `ticketd_test_<ulid>`.
    ///
    /// `None` when the server is unreachable and `CI` is not set (after the
    /// skip notice). Panics when it is unreachable under CI, or when it
    /// answers but refuses to create the database.
    pub async fn create() -> Option<Self> {
        let admin_url = admin_url();
        if UNREACHABLE.load(Ordering::Relaxed) {
            return None;
        }
        let admin = match connect(&admin_url).await {
            Ok(client) => client,
            Err(error) => {
                skip_or_fail(&admin_url, &error);
                return None;
            }
        };
        let name = format!(
            "ticketd_test_{}",
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        );
        let statement = format!("CREATE DATABASE {name}");
        match tokio::time::timeout(STATEMENT_TIMEOUT, admin.batch_execute(&statement)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!(
                "PostgreSQL at {} refused CREATE DATABASE {name}: {}",
                redacted(&admin_url),
                with_causes(&error)
            ),
            Err(_) => panic!(
                "CREATE DATABASE {name} on {} took over {STATEMENT_TIMEOUT:?}",
                redacted(&admin_url)
            ),
        }
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// [`TestDatabase::create`] for tests that are not async.
    pub fn create_blocking() -> Option<Self> {
        on_own_runtime(Self::create())
    }

    /// The `postgres://` URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the admin database this one was created from.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

impl Drop for TestDatabase {
    /// Drops the database, closing any connection still open to it (a
    /// server the test left running). Never panics: a database left behind
    /// is reported on stderr, and its `ticketd_test_` prefix makes it easy
    /// to find.
    fn drop(&mut self) {
        let drop_database = async {
            let admin = connect(&self.admin_url).await?;
            let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            admin
                .batch_execute(&statement)
                .await
                .map_err(|error| with_causes(&error))
        };
        // The timeout is made inside the runtime it needs.
        let outcome =
            on_own_runtime(async { tokio::time::timeout(STATEMENT_TIMEOUT, drop_database).await });
        let problem = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {STATEMENT_TIMEOUT:?}"),
        };
        let _ = writeln!(
            std::io::stderr(),
            "warning: could not drop test database {} on {}: {problem}",
            self.name,
            redacted(&self.admin_url)
        );
    }
}

/// The admin URL from the environment, or the default.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Connects to `url` within [`CONNECT_TIMEOUT`] and drives the connection
/// on the current runtime. The error says why, with its causes.
pub async fn connect(url: &str) -> Result<Client, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|error| with_causes(&error))?;
    // The whole handshake is bounded, not only the TCP connect, so that a
    // server that accepts and then says nothing does not stall every test.
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
        .map_err(|error| with_causes(&error))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server closes the session.
        let _ = connection.await;
    });
    Ok(client)
}

/// Records that the server is unreachable: panics under CI, otherwise writes
/// the skip notice once.
fn skip_or_fail(admin_url: &str, error: &str) {
    let server = redacted(admin_url);
    if std::env::var_os("CI").is_some() {
        panic!(
            "PostgreSQL at {server} is unreachable ({error}), and CI is set: the \
             PostgreSQL half of the test suite is mandatory under CI. Start \
             PostgreSQL or point {ADMIN_URL_VAR} at a server's admin database."
        );
    }
    UNREACHABLE.store(true, Ordering::Relaxed);
    NOTICE.call_once(|| {
        let rule = "=".repeat(78);
        // Straight to stderr: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n{rule}\n\
             PostgreSQL at {server} unreachable ({error}):\n\
             the PostgreSQL half of this suite was SKIPPED; only SQLite was tested.\n\
             Set {ADMIN_URL_VAR} to a reachable server's admin database to run it\n\
             (under CI, with CI set, an unreachable PostgreSQL fails the run).\n\
             {rule}\n"
        );
    });
}

/// `error` followed by its causes ("error connecting to server: Connection
/// refused ...").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `url` with its database replaced by `database`; the query is kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// `url` without its password, for messages (as ticketd logs URLs).
fn redacted(url: &str) -> String {
    ticketd::store::DatabaseUrl::parse(url)
        .map_or_else(|_| "(an unparsable URL)".to_owned(), |url| url.redacted())
}

/// Runs `future` to completion on a fresh single-threaded runtime on its own
/// thread, so that it works in sync code, in `Drop`, and inside a test's
/// runtime (which may not be blocked on directly) alike.
fn on_own_runtime<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the test database")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
