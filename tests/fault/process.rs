//! A `ticketd serve` child process on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// A running server; killed on drop if still running.
pub struct Server {
    child: Child,
    pub base_url: String,
    log_path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Starts `ticketd serve` on the SQLite file `db` and waits until it
    /// answers.
    pub async fn start(db: &Path) -> Self {
        let database = format!("sqlite://{}", db.display());
        let log_dir = db.parent().unwrap();
        Self::start_on(
            &database,
            log_dir,
            &["--rate-limit-per-minute", "100000000"],
        )
        .await
    }

    /// Starts `ticketd serve --database DATABASE ARGS`, logging into
    /// `log_dir`, and waits until it answers.
    pub async fn start_on(database: &str, log_dir: &Path, args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path = log_dir.join(format!("ticketd-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database", database])
            .args(args)
            .env_remove("TICKETD_CONFIG")
            // Nodes of one test share one key file, kept with their logs.
            .env(
                "TICKETD_ENCRYPTION_KEY_FILE",
                log_dir.join("encryption.key"),
            )
            .env("TICKETD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        server.wait_until_healthy().await;
        server
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("ticketd exited with {status}: {}", self.log());
            }
            let ready = client.get(format!("{}/readyz", self.base_url)).send().await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ticketd did not become ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GETs `path` with `token`; returns status and JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// SIGKILL: the process dies at once, mid-write.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ticketd did not stop on SIGTERM: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
