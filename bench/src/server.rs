//! Starting and stopping server processes under test.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A running server process, killed if dropped while running.
pub struct ServerProcess {
    child: Child,
}

/// A free port on 127.0.0.1.
pub fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

impl ServerProcess {
    /// Starts `program args...`, which must listen on `addr`, and waits until
    /// it accepts connections. Its stderr (the log) goes to `log`, or nowhere.
    pub async fn start(
        program: &Path,
        args: &[String],
        addr: SocketAddr,
        log: Option<&Path>,
    ) -> Result<Self, String> {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .map_err(|error| format!("cannot create {}: {error}", path.display()))?,
            ),
            None => Stdio::null(),
        };
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", program.display()))?;
        let server = Self { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not start listening on {addr}",
                    program.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop(mut self) -> Result<(), String> {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let _ = self.child.kill().await;
                Err("the server did not stop on SIGTERM within 30 s".into())
            }
        }
    }
}

/// Scrapes `GET /metrics` of the server at `addr` with the bearer `token`
/// every second, as a Prometheus server would (more often than most),
/// until the task is aborted; the first scrape must be answered 200.
pub async fn scrape_metrics(
    addr: SocketAddr,
    token: String,
) -> Result<tokio::task::JoinHandle<()>, String> {
    async fn scrape(addr: SocketAddr, token: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok(response)
    }
    let first = scrape(addr, &token)
        .await
        .map_err(|error| format!("cannot scrape {addr}: {error}"))?;
    if !first.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET /metrics on {addr}: {}",
            first.lines().next().unwrap_or_default()
        ));
    }
    Ok(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticks.tick().await;
            let _ = scrape(addr, &token).await;
        }
    }))
}
