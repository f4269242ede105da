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
