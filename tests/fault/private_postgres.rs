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
    /// The TCP port of a cluster that serves TLS there (see
    /// [`PrivateCluster::start_with_tls`]); `None` for the socket only.
    tls_port: Option<u16>,
}

impl PrivateCluster {
    /// Initialises and starts a cluster. `None` (after a notice on the
    /// terminal) if the machine has no PostgreSQL binaries, unless `CI` is
    /// set: under CI this test is mandatory and fails instead.
    pub fn start() -> Option<Self> {
        let cluster = Self::init(None)?;
        cluster.resume();
        Some(cluster)
    }

    /// Initialises and starts a cluster that also listens on 127.0.0.1 at
    /// a free port, there only over TLS (`hostssl` in `pg_hba.conf`), with
    /// a certificate for `localhost` signed by the test CA of
    /// [`PrivateCluster::ca_file`]; a second CA, which signed nothing it
    /// serves, is [`PrivateCluster::other_ca_file`]. `None` as for
    /// [`PrivateCluster::start`].
    pub fn start_with_tls() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self::init(Some(port))?;
        let tls = cluster.dir.path().join("tls");
        std::fs::create_dir(&tls).unwrap();
        make_certificates(&tls);
        std::fs::write(
            cluster.dir.path().join("data/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        if cluster.run_as_postgres {
            run(Command::new("chown").args(["-R", "postgres:", &display(cluster.dir.path())]));
        }
        cluster.resume();
        Some(cluster)
    }

    /// The PEM file of the CA that signed the TLS cluster's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/ca.crt")
    }

    /// The PEM file of a CA that signed nothing the cluster serves.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/other.crt")
    }

    /// The TLS cluster's TCP port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("a cluster started with TLS")
    }

    fn init(tls_port: Option<u16>) -> Option<Self> {
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
            tls_port,
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
        let options = match self.tls_port {
            None => format!(
                "-p {PORT} -k {} -c listen_addresses='' -c fsync=off",
                display(self.dir.path())
            ),
            Some(port) => {
                let tls = self.dir.path().join("tls");
                format!(
                    "-p {port} -k {} -c listen_addresses='127.0.0.1' -c fsync=off -c ssl=on \
                     -c ssl_cert_file={} -c ssl_key_file={}",
                    display(self.dir.path()),
                    display(&tls.join("server.crt")),
                    display(&tls.join("server.key"))
                )
            }
        };
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

/// Writes into `dir` a test CA (`ca.crt`), a server key and certificate for
/// `localhost` it signed (`server.key`, `server.crt`), and a second CA
/// (`other.crt`), with the machine's `openssl`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(dir).args(args));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, subject) in [("ca", "/CN=ticketd test CA"), ("other", "/CN=another CA")] {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &crt]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(&args);
    }
    let mut args = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    openssl(&args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
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
