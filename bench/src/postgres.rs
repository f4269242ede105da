//! The PostgreSQL side of a run: the fresh database each run gets (created
//! through the admin URL, dropped at the end), counting its messages, and
//! the CPU time of the PostgreSQL server's processes.

use tokio_postgres::{Client, NoTls};

use crate::procfs;

/// The admin URL used when `--postgres-url` is not given.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connects to `url`, driving the connection on a background task.
async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|error| format!("cannot connect to PostgreSQL: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` (a `postgres://` URL) naming the database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the PostgreSQL URL must look like postgres://USER@HOST:PORT/DATABASE")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let options = tail.find('?').map_or("", |at| &tail[at..]);
    if options.contains("dbname=") {
        return Err(
            "the PostgreSQL URL must name its database in the path, not in ?dbname=".into(),
        );
    }
    Ok(format!("{scheme}://{authority}/{name}{options}"))
}

/// A database created for one run, beside the admin URL's own.
pub struct RunDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl RunDatabase {
    /// Creates an empty database with a new unique name
    /// (`ticketd_bench_<ulid>`) on the server `admin_url` points at.
    pub async fn create(admin_url: &str) -> Result<Self, String> {
        let name = format!(
            "ticketd_bench_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let url = with_database(admin_url, &name)?;
        let admin = connect(admin_url).await?;
        // The name is ours and holds only [a-z0-9_], so quoting it is enough.
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|error| format!("cannot create database {name}: {error}"))?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL the servers and the provisioning connect with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, ending any connection still open to it.
    pub async fn drop_database(self) -> Result<(), String> {
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .map_err(|error| format!("cannot drop database {}: {error}", self.name))
    }
}

/// The number of message rows in the database at `url`.
pub async fn count_messages(url: &str) -> Result<i64, String> {
    let client = connect(url).await?;
    let row = client
        .query_one("SELECT count(*) FROM message", &[])
        .await
        .map_err(|error| format!("cannot count messages: {error}"))?;
    row.try_get(0)
        .map_err(|error| format!("cannot count messages: {error}"))
}

/// The number of stored upload records in the database at `url`.
pub async fn count_stored_uploads(url: &str) -> Result<i64, String> {
    let client = connect(url).await?;
    let row = client
        .query_one("SELECT count(*) FROM upload WHERE state = 'stored'", &[])
        .await
        .map_err(|error| format!("cannot count uploads: {error}"))?;
    row.try_get(0)
        .map_err(|error| format!("cannot count uploads: {error}"))
}

/// The PostgreSQL server's processes, when they run on this machine and
/// /proc shows them.
pub struct ServerProcesses {
    postmaster: u32,
}

impl ServerProcesses {
    /// Finds the postmaster serving `url`: the parent of the backend that
    /// answers a connection. `None` when that process is not visible here
    /// (a server on another machine, or in another PID namespace).
    pub async fn find(url: &str) -> Result<Option<Self>, String> {
        let client = connect(url).await?;
        let row = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|error| format!("cannot ask for the backend's pid: {error}"))?;
        let backend: i32 = row
            .try_get(0)
            .map_err(|error| format!("cannot read the backend's pid: {error}"))?;
        let Ok(backend) = u32::try_from(backend) else {
            return Ok(None);
        };
        let is_postgres = |pid: u32| procfs::command(pid).is_some_and(|name| name == "postgres");
        Ok(procfs::parent(backend)
            .filter(|&postmaster| is_postgres(backend) && is_postgres(postmaster))
            .map(|postmaster| Self { postmaster }))
    }

    /// CPU seconds used so far by the postmaster and every process it
    /// started (backends, WAL writer, checkpointer, ...), exited ones
    /// included.
    pub fn cpu_seconds(&self) -> Option<f64> {
        procfs::family_cpu_seconds(self.postmaster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "run_1"),
            Ok("postgres://postgres@127.0.0.1:5432/run_1".to_owned())
        );
        assert_eq!(
            with_database("postgresql://u:p@db?sslmode=disable", "run_1"),
            Ok("postgresql://u:p@db/run_1?sslmode=disable".to_owned())
        );
        assert_eq!(
            with_database("postgres://u@db/admin?connect_timeout=5", "run_1"),
            Ok("postgres://u@db/run_1?connect_timeout=5".to_owned())
        );
        assert!(with_database("postgres://u@db/admin?dbname=x", "run_1").is_err());
        assert!(with_database("host=db user=u", "run_1").is_err());
    }
}
