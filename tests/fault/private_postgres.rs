//! A PostgreSQL cluster of the test's own, in its own directory and
//! listening only on a Unix socket there (so no port can be taken from
//! under it between a stop and a start), started from the PostgreSQL
//! binaries on the machine: a test can stop and start it without touching
//! any shared server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The port in the socket's name (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;

/// A private cluster; stopped and removed when dropped.
pub struct PrivateCluster {
    dir: TempDir,
    bin: PathBuf,
    /// `initdb` refuses to run as root: as root, the tools run as `postgres`.
    run_as_postgres: bool,
}

impl PrivateCluster {
    /// Initialises and starts a cluster. `None` (after a notice on the
    /// terminal) if the machine has no PostgreSQL binaries, unless `CI` is
    /// set: under CI this test is mandatory and fails instead.
    pub fn start() -> Option<Self> {
        let Some(bin) = find_bin_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin \
                 or TICKETD_TEST_POSTGRES_BIN: the outage test is mandatory under CI"
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n*** PostgreSQL binaries not found: the PostgreSQL outage test was SKIPPED ***\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let run_as_postgres = is_root();
        if run_as_postgres {
            run(Command::new("chown").args(["-R", "postgres:", &display(dir.path())]));
        }
        let cluster = Self {
            dir,
            bin,
            run_as_postgres,
        };
        cluster.tool(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.resume();
        Some(cluster)
    }

    /// The URL of the cluster's `postgres` database, through its socket.
    pub fn url(&self) -> String {
        let socket_dir = display(self.dir.path()).replace('/', "%2F");
        format!("postgres://postgres@{socket_dir}:{PORT}/postgres")
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) {
        self.tool(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts the (stopped) server again on the same port.
    pub fn resume(&self) {
        let options = format!(
            "-p {PORT} -k {} -c listen_addresses='' -c fsync=off",
            display(self.dir.path())
        );
        let log = self.dir.path().join("postgres.log");
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                &display(&log),
                "-w",
                "start",
            ],
        );
    }

    fn data_dir(&self) -> String {
        display(&self.dir.path().join("data"))
    }

    fn tool(&self, name: &str, args: &[&str]) -> Output {
        run(self.command(name).args(args))
    }

    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data_dir(), "-m", "immediate", "stop"])
            .output();
    }
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// `TICKETD_TEST_POSTGRES_BIN`, or the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TICKETD_TEST_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
