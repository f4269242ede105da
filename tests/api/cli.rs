//! The `ticketd` binary: provisioning commands, `migrate`, and `serve` as a
//! real process driven over HTTP (including the seed's curl example), each
//! on a fresh database of the module's backend.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use ticketd::core::access::{Actor, Role, TicketScope};
use ticketd::core::id::{KeyId, MessageId, TicketId, UserId, WorkspaceId};
use ticketd::core::message::{BodyFormat, NewMessage};
use ticketd::core::text::{MessageBody, Subject};
use ticketd::core::ticket::{NewTicket, Priority};
use ticketd::core::time::Timestamp;
use ticketd::store::Written;

use super::BACKEND;
use crate::helpers::{Backend, FreshDatabase};

/// The seed's request example (seed 000), exactly as published.
const SEED_CURL: &str = r#"curl -X POST "https://cloud.hostup.se/api/v2/support/tickets/tkt_01hxa3b4c5d6e7f8g9h0j1k2m3/messages" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Accept: application/json" \
  -H "Content-Type: application/json" \
  -d '{
    "message": "Here are the extra details you asked for."
  }'"#;

const SEED_TICKET: &str = "tkt_01hxa3b4c5d6e7f8g9h0j1k2m3";

/// How long a server gets to start answering or to stop.
const PROCESS_DEADLINE: Duration = Duration::from_secs(20);

/// A scratch directory to run the binary in, and a fresh database for it.
pub(super) struct Scratch {
    pub(super) dir: TempDir,
    database: FreshDatabase,
}

impl Scratch {
    /// `None` (the test is skipped) when the backend is unavailable here.
    pub(super) fn new(backend: Backend) -> Option<Self> {
        Some(Self {
            dir: tempfile::tempdir().unwrap(),
            database: FreshDatabase::create_blocking(backend)?,
        })
    }

    pub(super) fn db_url(&self) -> String {
        self.database.url()
    }

    /// Where ticketd keeps this database's key file when none is set:
    /// beside a SQLite file, or under the working directory for PostgreSQL.
    pub(super) fn key_file(&self) -> PathBuf {
        match &self.database {
            FreshDatabase::Sqlite(dir) => dir.path().join("encryption.key"),
            FreshDatabase::Postgres(_) => self.dir.path().join("ticketd-data/encryption.key"),
        }
    }

    /// Gives this scratch's database the key file `from` (as an operator
    /// copies it along with a dump or a backup).
    pub(super) fn copy_key_file(&self, from: &std::path::Path) {
        let to = self.key_file();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap();
    }

    /// `ticketd` run in the scratch directory with no `TICKETD_*` variables
    /// inherited, so only what a test passes configures it.
    pub(super) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ticketd"));
        command.current_dir(self.dir.path());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TICKETD_") {
                command.env_remove(name);
            }
        }
        command
    }

    /// Runs `ticketd --database <db> ARGS` to completion.
    pub(super) fn run(&self, args: &[&str]) -> Output {
        self.command()
            .arg("--database")
            .arg(self.db_url())
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed and print one JSON line; returns it.
    #[track_caller]
    pub(super) fn json(&self, args: &[&str]) -> Value {
        one_json_line(&self.run(args), args)
    }

    /// Runs a command that must fail; returns its stderr.
    #[track_caller]
    pub(super) fn fails(&self, args: &[&str]) -> String {
        refused(&self.run(args), args)
    }

    pub(super) fn create_workspace(&self, name: &str) -> Value {
        self.json(&["workspace", "create", "--name", name])
    }

    pub(super) fn create_user(&self, workspace: &str, role: &str, name: &str) -> Value {
        self.json(&[
            "user",
            "create",
            "--workspace",
            workspace,
            "--role",
            role,
            "--name",
            name,
        ])
    }

    pub(super) fn create_key(&self, user: &str) -> Value {
        self.json(&["key", "create", "--user", user])
    }

    /// Starts `ticketd serve` on a free port and waits until it answers.
    pub(super) async fn serve(&self) -> Server {
        self.serve_with_env(&[]).await
    }

    /// [`Self::serve`] with the environment variables `env` set.
    pub(super) async fn serve_with_env(&self, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log_path = self.dir.path().join(format!("serve-{port}.log"));
        let log = File::create(&log_path).unwrap();
        let child = self
            .command()
            .envs(env.iter().copied())
            .arg("--database")
            .arg(self.db_url())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            client: reqwest::Client::new(),
        };
        server.wait_until_healthy().await;
        server
    }
}

/// Asserts a successful run that printed exactly one JSON line and nothing
/// on stderr; returns the line parsed.
#[track_caller]
pub(super) fn one_json_line(output: &Output, args: &[&str]) -> Value {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ticketd {args:?} failed with {}: {stderr}",
        output.status
    );
    assert_eq!(stderr, "", "ticketd {args:?} wrote to stderr");
    assert!(
        stdout.ends_with('\n') && stdout.matches('\n').count() == 1,
        "ticketd {args:?} did not print exactly one line: {stdout:?}"
    );
    serde_json::from_str(stdout.trim_end())
        .unwrap_or_else(|error| panic!("ticketd {args:?} printed no JSON ({error}): {stdout:?}"))
}

/// Asserts a failed run with nothing on stdout and a message on stderr;
/// returns the message.
#[track_caller]
pub(super) fn refused(output: &Output, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert!(
        !output.status.success(),
        "ticketd {args:?} succeeded: {stdout}"
    );
    assert_eq!(output.status.code(), Some(1), "ticketd {args:?}: {stderr}");
    assert_eq!(stdout, "", "ticketd {args:?} printed to stdout on failure");
    assert!(
        stderr.starts_with("ticketd: ") && stderr.ends_with('\n'),
        "ticketd {args:?} stderr: {stderr:?}"
    );
    stderr
}

/// The keys of a JSON object, sorted.
pub(super) fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn sorted(mut names: Vec<&str>) -> Vec<&str> {
    names.sort_unstable();
    names
}

/// Asserts a timestamp in the seed's form (`2026-04-27T12:00:00.000Z`).
#[track_caller]
fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(
        Timestamp::parse_rfc3339(text).is_some(),
        "not an RFC 3339 timestamp with milliseconds: {text}"
    );
}

pub(super) fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A running `ticketd serve`; killed on drop unless it already exited.
pub(super) struct Server {
    child: Child,
    pub(super) base_url: String,
    log_path: PathBuf,
    client: reqwest::Client,
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
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls `/healthz` until it answers 200, failing if the process exits
    /// or the deadline passes.
    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("ticketd serve exited with {status}: {}", self.log());
            }
            let answer = self
                .client
                .get(format!("{}/healthz", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = answer {
                assert_eq!(response.status(), StatusCode::OK, "{}", self.log());
                let body: Value = response.json().await.unwrap();
                assert_eq!(body, json!({"status": "ok"}));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ticketd serve did not answer /healthz within {PROCESS_DEADLINE:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends a request with a bearer token and an optional JSON body;
    /// returns the status and the body parsed (or `Null`).
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// [`Server::call`] with the agency signature `signature`.
    pub(super) async fn call_agency(
        &self,
        method: reqwest::Method,
        path: &str,
        (token, signature): (&str, &str),
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .header("x-agency-signature", signature)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends SIGTERM and waits, bounded, for the process to exit.
    pub(super) fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("the `kill` command is needed to send SIGTERM");
        assert!(kill.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ticketd serve did not stop within {PROCESS_DEADLINE:?} of SIGTERM: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn help_never_shows_the_secrets_in_the_environment() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let output = scratch
        .command()
        .args(["serve", "--help"])
        .env(
            "TICKETD_DATABASE_URL",
            "postgres://ticketd:hunter2@db/ticketd",
        )
        .env("TICKETD_RATE_LIMIT_URL", "redis://:hunter2@cache:6379/0")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("TICKETD_DATABASE_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

#[test]
fn workspace_create_prints_the_workspace_as_one_json_line() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let before = Timestamp::now();
    let workspace = scratch.create_workspace("Acme Hosting");
    let after = Timestamp::now();

    assert_eq!(
        keys(&workspace),
        sorted(vec!["id", "numericId", "name", "code", "plan", "createdAt"])
    );
    let id = text(&workspace["id"]);
    assert!(WorkspaceId::parse(id).is_some(), "not a ws_ id: {id}");
    assert_eq!(id, id.to_ascii_lowercase());
    assert_eq!(workspace["numericId"], 1);
    assert_eq!(workspace["name"], "Acme Hosting");
    assert_eq!(workspace["code"], "ACMEHOSTING");
    assert_eq!(workspace["plan"], "standard");
    assert_timestamp(&workspace["createdAt"]);
    let created = Timestamp::parse_rfc3339(text(&workspace["createdAt"])).unwrap();
    assert!(before <= created && created <= after, "{workspace}");

    let second = scratch.json(&[
        "workspace",
        "create",
        "--name",
        "Other",
        "--code",
        "OTHER-2",
    ]);
    assert_eq!(second["numericId"], 2);
    assert_eq!(second["code"], "OTHER-2");
    assert_ne!(second["id"], workspace["id"]);
}

#[test]
fn workspace_create_refuses_a_taken_code() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    scratch.create_workspace("Acme Hosting");

    let stderr = scratch.fails(&["workspace", "create", "--name", "Acme Hosting"]);
    assert!(
        stderr.contains("ACMEHOSTING") && stderr.contains("taken"),
        "{stderr}"
    );
    let stderr = scratch.fails(&[
        "workspace",
        "create",
        "--name",
        "Acme Two",
        "--code",
        "ACMEHOSTING",
    ]);
    assert!(
        stderr.contains("ACMEHOSTING") && stderr.contains("taken"),
        "{stderr}"
    );

    // The refused attempts created nothing: the next workspace is number 2.
    let next = scratch.create_workspace("Beta");
    assert_eq!(next["numericId"], 2);
}

#[test]
fn workspace_create_refuses_an_invalid_code() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    for code in ["lower", "A", "-LEADING", "HAS SPACE", "Acme"] {
        let code = format!("--code={code}");
        let stderr = scratch.fails(&["workspace", "create", "--name", "Acme", &code]);
        assert!(stderr.contains("--code must be"), "{code}: {stderr}");
    }
    let stderr = scratch.fails(&["workspace", "create", "--name", "  "]);
    assert!(stderr.contains("--name"), "{stderr}");
    // Nothing was created.
    let first = scratch.create_workspace("Acme");
    assert_eq!(first["numericId"], 1);
    assert_eq!(first["code"], "ACME");
}

#[test]
fn user_create_prints_the_user_as_one_json_line() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Hosting");
    let workspace_id = text(&workspace["id"]);

    let user = scratch.json(&[
        "user",
        "create",
        "--workspace",
        workspace_id,
        "--role",
        "customer",
        "--name",
        "Jane Example",
        "--email",
        "jane@example.com",
    ]);
    assert_eq!(
        keys(&user),
        sorted(vec![
            "id",
            "workspaceId",
            "role",
            "name",
            "email",
            "createdAt"
        ])
    );
    assert!(UserId::parse(text(&user["id"])).is_some(), "{user}");
    assert_eq!(user["workspaceId"], workspace_id);
    assert_eq!(user["role"], "customer");
    assert_eq!(user["name"], "Jane Example");
    assert_eq!(user["email"], "jane@example.com");
    assert_timestamp(&user["createdAt"]);

    for role in ["staff", "automation"] {
        let user = scratch.create_user(workspace_id, role, "Sam");
        assert_eq!(user["role"], role);
        assert_eq!(user["email"], Value::Null);
    }
}

#[test]
fn user_create_refuses_a_bad_role_or_workspace() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Hosting");
    let workspace_id = text(&workspace["id"]);

    let create = |workspace: &str, role: &str| {
        scratch.fails(&[
            "user",
            "create",
            "--workspace",
            workspace,
            "--role",
            role,
            "--name",
            "Jane Example",
        ])
    };

    for role in ["admin", "Customer", ""] {
        let stderr = create(workspace_id, role);
        assert!(stderr.contains("--role"), "{role:?}: {stderr}");
    }

    let unknown = WorkspaceId::generate().to_string();
    let stderr = create(&unknown, "customer");
    assert_eq!(stderr, format!("ticketd: no workspace {unknown}\n"));

    let stderr = create("acme", "customer");
    assert!(stderr.contains("--workspace"), "{stderr}");

    let stderr = scratch.fails(&[
        "user",
        "create",
        "--workspace",
        workspace_id,
        "--role",
        "customer",
        "--name",
        "Jane",
        "--email",
        "not-an-address",
    ]);
    assert!(stderr.contains("--email"), "{stderr}");
}

#[test]
fn key_create_prints_the_token_once() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Hosting");
    let workspace_id = text(&workspace["id"]);
    let user = scratch.create_user(workspace_id, "customer", "Jane Example");
    let user_id = text(&user["id"]);

    let key = scratch.create_key(user_id);
    assert_eq!(
        keys(&key),
        sorted(vec![
            "id",
            "userId",
            "workspaceId",
            "scopes",
            "createdAt",
            "revokedAt",
            "token",
        ])
    );
    let key_id = KeyId::parse(text(&key["id"])).expect("a key_ id");
    assert_eq!(key["userId"], user_id);
    assert_eq!(key["workspaceId"], workspace_id);
    assert_eq!(key["scopes"], json!(["read:support", "write:support"]));
    assert_timestamp(&key["createdAt"]);
    assert_eq!(key["revokedAt"], Value::Null);
    let token = text(&key["token"]);
    assert!(
        token.starts_with(&format!("tkd_{}_", key_id.key())),
        "token {token} does not name key {key_id}"
    );

    let other = scratch.create_key(user_id);
    assert_ne!(other["id"], key["id"]);
    assert_ne!(other["token"], key["token"]);
}

#[test]
fn key_create_takes_scopes() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Hosting");
    let user = scratch.create_user(text(&workspace["id"]), "staff", "Sam Staff");
    let user_id = text(&user["id"]);

    let read_only = scratch.json(&[
        "key",
        "create",
        "--user",
        user_id,
        "--scopes",
        "read:support",
    ]);
    assert_eq!(read_only["scopes"], json!(["read:support"]));
    let write_only = scratch.json(&[
        "key",
        "create",
        "--user",
        user_id,
        "--scopes",
        "write:support",
    ]);
    assert_eq!(write_only["scopes"], json!(["write:support"]));

    for scopes in ["admin", "read:support,admin:all", "", "READ:SUPPORT"] {
        let stderr = scratch.fails(&["key", "create", "--user", user_id, "--scopes", scopes]);
        assert!(stderr.contains("scope"), "{scopes:?}: {stderr}");
    }

    let unknown = UserId::generate().to_string();
    let stderr = scratch.fails(&["key", "create", "--user", &unknown]);
    assert_eq!(stderr, format!("ticketd: no user {unknown}\n"));
}

#[test]
fn key_revoke_prints_the_revoked_key_without_a_token() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Hosting");
    let user = scratch.create_user(text(&workspace["id"]), "customer", "Jane Example");
    let key = scratch.create_key(text(&user["id"]));
    let key_id = text(&key["id"]);
    let token = text(&key["token"]);

    let output = scratch.run(&["key", "revoke", key_id]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let revoked = one_json_line(&output, &["key", "revoke", key_id]);
    assert!(
        !stdout.contains(token),
        "revoke printed the token: {stdout}"
    );
    let secret = token.rsplit('_').next().unwrap();
    assert!(
        !stdout.contains(secret),
        "revoke printed the secret: {stdout}"
    );
    assert_eq!(
        keys(&revoked),
        sorted(vec![
            "id",
            "userId",
            "workspaceId",
            "scopes",
            "createdAt",
            "revokedAt",
        ])
    );
    assert_eq!(revoked["id"], key_id);
    assert_eq!(revoked["userId"], key["userId"]);
    assert_eq!(revoked["scopes"], key["scopes"]);
    assert_eq!(revoked["createdAt"], key["createdAt"]);
    assert_timestamp(&revoked["revokedAt"]);

    let unknown = KeyId::generate().to_string();
    let stderr = scratch.fails(&["key", "revoke", &unknown]);
    assert_eq!(stderr, format!("ticketd: no key {unknown}\n"));
    let stderr = scratch.fails(&["key", "revoke", "usr_nope"]);
    assert!(stderr.contains("key_"), "{stderr}");
}

// That `migrate` creates a SQLite file is checked in `sqlite_file`.
#[test]
fn migrate_applies_each_migration_once() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    assert_eq!(
        scratch.json(&["migrate"]),
        json!({"applied": ["0001_initial.sql", "0002_idempotency.sql", "0003_encryption.sql", "0004_server_secret.sql", "0005_uploads.sql", "0006_sealed_uploads.sql", "0007_ticket_category.sql", "0008_numeric_ids.sql", "0009_agency.sql", "0010_message_tasks.sql", "0011_claim_holders.sql"]})
    );
    assert_eq!(scratch.json(&["migrate"]), json!({"applied": []}));
}

#[test]
fn database_url_comes_from_the_environment() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let env_run = |args: &[&str]| -> Output {
        scratch
            .command()
            .env("TICKETD_DATABASE_URL", scratch.db_url())
            .args(args)
            .output()
            .unwrap()
    };

    let args = ["workspace", "create", "--name", "Acme Hosting"];
    let workspace = one_json_line(&env_run(&args), &args);
    assert_eq!(workspace["code"], "ACMEHOSTING");
    // The same database through --database: the code is taken there, so the
    // environment's database was the one used.
    let stderr = scratch.fails(&args);
    assert!(stderr.contains("taken"), "{stderr}");
    let migrate = one_json_line(&env_run(&["migrate"]), &["migrate"]);
    assert_eq!(migrate, json!({"applied": []}));

    // A flag beats the environment: the workspace is the first of another
    // database.
    let elsewhere = FreshDatabase::create_blocking(BACKEND).unwrap();
    let output = scratch
        .command()
        .env("TICKETD_DATABASE_URL", scratch.db_url())
        .arg("--database")
        .arg(elsewhere.url())
        .args(args)
        .output()
        .unwrap();
    let flagged = one_json_line(&output, &args);
    assert_eq!(flagged["numericId"], 1);
    assert_eq!(flagged["code"], "ACMEHOSTING");
}

/// A workspace, customer "Jane Example" and their key, made with the CLI.
struct Provisioned {
    workspace: String,
    customer: String,
    customer_key: String,
    customer_token: String,
}

fn provision(scratch: &Scratch) -> Provisioned {
    let workspace = scratch.create_workspace("Acme Hosting");
    let workspace = text(&workspace["id"]).to_owned();
    let customer = scratch.json(&[
        "user",
        "create",
        "--workspace",
        &workspace,
        "--role",
        "customer",
        "--name",
        "Jane Example",
        "--email",
        "jane@example.com",
    ]);
    let customer = text(&customer["id"]).to_owned();
    let key = scratch.create_key(&customer);
    Provisioned {
        workspace,
        customer,
        customer_key: text(&key["id"]).to_owned(),
        customer_token: text(&key["token"]).to_owned(),
    }
}

#[tokio::test]
async fn walkthrough_against_the_real_server() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let provisioned = provision(&scratch);
    let token = provisioned.customer_token.as_str();
    let mut server = scratch.serve().await;

    let (status, ticket) = server
        .call(
            reqwest::Method::POST,
            "/api/v2/support/tickets",
            token,
            Some(json!({"subject": "Cannot reach my server", "message": "It stopped at noon."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["customer"]["id"], provisioned.customer.as_str());
    assert_eq!(ticket["customer"]["name"], "Jane Example");
    let ticket_id = text(&ticket["id"]).to_owned();
    assert!(TicketId::parse(&ticket_id).is_some(), "{ticket}");
    let messages = format!("/api/v2/support/tickets/{ticket_id}/messages");
    let action = |name: &str| format!("/api/v2/support/tickets/{ticket_id}/actions/{name}");

    let (status, reply) = server
        .call(
            reqwest::Method::POST,
            &messages,
            token,
            Some(json!({"message": "Any news?"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["body"], "Any news?");
    assert_eq!(reply["sender"], "customer");
    assert_eq!(reply["senderName"], "Jane Example");

    let (status, closed) = server
        .call(reqwest::Method::POST, &action("close"), token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");

    let (status, problem) = server
        .call(
            reqwest::Method::POST,
            &messages,
            token,
            Some(json!({"message": "Hello again"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["code"], "ticket_closed");
    assert_eq!(problem["status"], 400);

    let (status, reopened) = server
        .call(reqwest::Method::POST, &action("reopen"), token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{reopened}");
    assert_eq!(reopened["status"], "open");

    let (status, reply) = server
        .call(
            reqwest::Method::POST,
            &messages,
            token,
            Some(json!({"message": "Hello again"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["body"], "Hello again");

    let (status, thread) = server
        .call(reqwest::Method::GET, &messages, token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    let bodies: Vec<&str> = thread["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| text(&message["body"]))
        .collect();
    assert_eq!(bodies, ["It stopped at noon.", "Any news?", "Hello again"]);

    // Revoking the key from the command line takes effect on the running
    // server once its cached credentials expire (api_key_cache_secs, 2 s).
    let revoking = std::time::Instant::now();
    let revoked = scratch.json(&["key", "revoke", &provisioned.customer_key]);
    assert_timestamp(&revoked["revokedAt"]);
    let (status, problem) = loop {
        let (status, problem) = server
            .call(reqwest::Method::GET, "/api/v2/support/tickets", token, None)
            .await;
        if status != StatusCode::OK || revoking.elapsed() > Duration::from_secs(4) {
            break (status, problem);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["code"], "unauthorized");

    let exit = server.terminate();
    assert_eq!(exit.code(), Some(0), "{exit}: {}", server.log());
    let log = server.log();
    assert!(!log.contains(token), "the server logged a token");
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let mut server = scratch.serve().await;
    let exit = server.terminate();
    assert!(exit.success(), "{exit}: {}", server.log());
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn help_names_each_variable_without_a_value_and_each_default_once() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["key", "create", "--help"],
    ] {
        let output = scratch.command().args(command).output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?}");
        // `[env: NAME=]` reads as "set to empty".
        assert!(!help.contains("=]"), "{command:?}: {help}");
        assert!(help.contains("[env: TICKETD_"), "{command:?}: {help}");
    }
    let output = scratch
        .command()
        .args(["key", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        help.matches("read:support,write:support").count(),
        1,
        "{help}"
    );
}

#[test]
fn a_database_that_cannot_be_reached_or_named_is_said_so() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let refused = scratch
        .command()
        .args([
            "--database",
            "postgres://ticketd@127.0.0.1:1/nowhere",
            "migrate",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("cannot reach PostgreSQL at 127.0.0.1:1: error connecting to server: ")
            && stderr.to_lowercase().contains("refused"),
        "{stderr}"
    );
    let nonsense = scratch
        .command()
        .args(["--database", "nonsense", "migrate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&nonsense.stderr);
    assert!(
        stderr.contains("a database URL starts with its scheme: sqlite://PATH"),
        "{stderr}"
    );
}

#[tokio::test]
async fn settings_without_effect_stop_serve_or_are_warned_of() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    if scratch.db_url().starts_with("sqlite://") {
        let stderr = scratch.fails(&["serve", "--database-pool-size", "4"]);
        assert!(
            stderr.contains(
                "database_pool_size is set, but it applies only to a PostgreSQL database"
            ),
            "{stderr}"
        );
    }
    let stderr = scratch.fails(&["serve", "--rate-limit-key-prefix", "acme:"]);
    assert!(
        stderr.contains(
            "rate_limit_key_prefix is set, but it applies only to a Redis rate_limit_url"
        ),
        "{stderr}"
    );
    let mut server = scratch
        .serve_with_env(&[
            ("TICKETD_LISTN", "0.0.0.0:80"),
            ("TICKETD_RATE_LIMIT_URL", "memory"),
            ("TICKETD_RATE_LIMIT_KEY_PREFIX", "acme:"),
        ])
        .await;
    assert_eq!(server.terminate().code(), Some(0));
    let log = server.log();
    for warning in [
        "the environment variable TICKETD_LISTN is no ticketd setting: it has no effect",
        "rate_limit_key_prefix has no effect: rate_limit_url is \"memory\"",
    ] {
        assert!(log.contains(warning), "{log}");
    }
}

#[tokio::test]
async fn serve_on_a_taken_port_creates_no_database_and_no_key_file() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = scratch.run(&["serve", "--listen", &address]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(!scratch.key_file().exists(), "a key file was created");
    if let Some(path) = scratch.db_url().strip_prefix("sqlite://") {
        assert!(
            !std::path::Path::new(path).exists(),
            "the database {path} was created"
        );
    }
}

/// Opens the seed's ticket, with its exact id, for `customer`, writing to the
/// database the server uses.
async fn insert_seed_ticket(scratch: &Scratch, provisioned: &Provisioned) {
    let store = scratch.database.open().await;
    let actor = Actor {
        workspace_id: WorkspaceId::parse(&provisioned.workspace).unwrap(),
        user_id: UserId::parse(&provisioned.customer).unwrap(),
        role: Role::Customer,
        name: "Jane Example".to_owned(),
        scope: TicketScope::ByRole,
    };
    let new = NewTicket {
        id: TicketId::parse(SEED_TICKET).unwrap(),
        subject: Subject::parse("Need more details".to_owned()).unwrap(),
        priority: Priority::Normal,
        category: None,
        booking_id: None,
        on_behalf_of: None,
        first_message: NewMessage {
            id: MessageId::generate(),
            body: MessageBody::parse("My server is down.".to_owned()).unwrap(),
            body_format: BodyFormat::Plain,
            encrypted: false,
            sent_at: Timestamp::now(),
            attachments: Vec::new(),
            attach_limits: Default::default(),
            task: None,
        },
    };
    let ticket = store
        .create_ticket(&actor, new, None)
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(ticket.id.to_string(), SEED_TICKET);
}

#[tokio::test]
async fn seed_curl_example_works_verbatim() {
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|output| output.status.success()),
        "curl is not installed; this test runs the seed's curl example and needs it"
    );

    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let provisioned = provision(&scratch);
    let mut server = scratch.serve().await;
    insert_seed_ticket(&scratch, &provisioned).await;

    let command = format!(
        "{} -s -w '\\n%{{http_code}}'",
        SEED_CURL
            .replace("https://cloud.hostup.se", &server.base_url)
            .replace("YOUR_API_KEY", &provisioned.customer_token)
    );
    let output = Command::new("sh").arg("-c").arg(&command).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "curl failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let (body, status) = stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("no status line in curl output: {stdout:?}"));
    assert_eq!(status, "201", "{body}");

    let message: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        keys(&message),
        sorted(vec![
            "id",
            "ticketId",
            "sentAt",
            "body",
            "html",
            "sender",
            "senderName",
            "encrypted",
            "attachments",
            "bodyFormat",
        ])
    );
    assert!(
        MessageId::parse(text(&message["id"])).is_some(),
        "{message}"
    );
    assert_eq!(message["ticketId"], SEED_TICKET);
    assert_timestamp(&message["sentAt"]);
    assert_eq!(message["body"], "Here are the extra details you asked for.");
    assert_eq!(
        message["html"],
        "<p>Here are the extra details you asked for.</p>\n"
    );
    assert_eq!(message["sender"], "customer");
    assert_eq!(message["senderName"], "Jane Example");
    assert_eq!(message["encrypted"], false);
    assert_eq!(message["attachments"], json!([]));
    assert_eq!(message["bodyFormat"], "plain");

    // The reply is in the thread, after the ticket's first message.
    let (status, thread) = server
        .call(
            reqwest::Method::GET,
            &format!("/api/v2/support/tickets/{SEED_TICKET}/messages"),
            &provisioned.customer_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    let data = thread["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{thread}");
    assert_eq!(data[1], message);

    let exit = server.terminate();
    assert_eq!(exit.code(), Some(0), "{exit}: {}", server.log());
}

/// The shell blocks of the README's walkthrough, as one script that
/// stops at the first block that fails, with the server on `port`.
fn readme_walkthrough(port: u16) -> String {
    let readme = include_str!("../../README.md");
    let start = readme.find("## A five-minute walkthrough").unwrap();
    let end = start + readme[start..].find("\n## The API").unwrap();
    let mut script = String::from("set -e\n");
    let mut in_block = false;
    for line in readme[start..end].lines() {
        match (in_block, line) {
            (false, "```sh") => in_block = true,
            (true, "```") => {
                in_block = false;
                script.push_str("[ $? -eq 0 ] || exit 1\n");
            }
            // The binary is the one under test, already built.
            (true, line) if line.starts_with("cargo build") => {}
            (true, line) => {
                script.push_str(&line.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")));
                script.push('\n');
            }
            (false, _) => {}
        }
    }
    script.replace(
        "ticketd serve &",
        &format!("ticketd serve --listen 127.0.0.1:{port} &"),
    )
}

#[test]
fn the_readme_walkthrough_runs_again_and_again_and_shows_what_it_promises() {
    // SQLite only: it runs as written, on the embedded default.
    if BACKEND != Backend::Sqlite {
        return;
    }
    let binaries = std::path::Path::new(env!("CARGO_BIN_EXE_ticketd"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for run in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let script = readme_walkthrough(free_port());
        let mut command = Command::new("timeout");
        command
            .args(["120", "bash", "-c", &script])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("TMPDIR", dir.path());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TICKETD_") {
                command.env_remove(name);
            }
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "run {run}: {}\n{stdout}\n{stderr}",
            output.status
        );
        let lines: Vec<&str> = stdout.lines().collect();
        // The users' table, then the statuses each step promises.
        assert!(lines[0].starts_with("id "), "{stdout}");
        let promised = [
            "open",
            "Rebooted it for you. Does it answer now?",
            "awaiting_response",
            "200",
        ];
        let at = lines.iter().position(|line| *line == "open").unwrap();
        assert_eq!(lines[at..at + 4], promised, "{stdout}");
        assert!(
            lines[at + 4].contains(r#""code":"ticket_closed""#),
            "{stdout}"
        );
        assert_eq!(lines[at + 5..at + 7], ["200", "201"], "{stdout}");
    }
}
