//! A real ticketd on a random port with a fresh database of either backend,
//! and a client for it.

use std::sync::Arc;
use std::time::Duration;
use ticketd::core::agency_signature::AgencySignatureKey;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use ticketd::api::profiles::Profile;
use ticketd::application::Application;
use ticketd::blob::BlobStore;
use ticketd::config::{Config, Settings};
use ticketd::core::access::{Role, Scopes};
use ticketd::core::id::{KeyId, UserId, WorkspaceId};
use ticketd::core::idempotency::FingerprintKey;
use ticketd::core::text::TextLimits;
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;
use ticketd::core::upload::attach::AttachLimits;
use ticketd::core::workspace::{NewApiKey, NewUser, NewWorkspace, WorkspaceCode};
use ticketd::rate_limit::{RateLimitStore, RatePolicy};
use ticketd::server::ConnectionLimits;
use ticketd::service::Uploads;
use ticketd::store::{DatabaseUrl, Store};
use tokio::sync::oneshot;

use crate::test_postgres::TestDatabase;

/// The database a test module runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of one backend, removed when dropped.
#[derive(Debug)]
pub enum FreshDatabase {
    /// A file in a temporary directory.
    Sqlite(TempDir),
    /// A uniquely named database on the test server.
    Postgres(TestDatabase),
}

impl FreshDatabase {
    /// A new database; `None` when the backend is unavailable here (only an
    /// unreachable PostgreSQL outside CI, which writes a notice saying so).
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::Sqlite(tempfile::tempdir().unwrap())),
            Backend::Postgres => TestDatabase::create().await.map(Self::Postgres),
        }
    }

    /// [`FreshDatabase::create`] for tests that are not async.
    pub fn create_blocking(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::Sqlite(tempfile::tempdir().unwrap())),
            Backend::Postgres => TestDatabase::create_blocking().map(Self::Postgres),
        }
    }

    /// The URL to give `--database` or [`DatabaseUrl::parse`].
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}", dir.path().join("ticketd.db").display()),
            Self::Postgres(database) => database.url().to_owned(),
        }
    }

    /// Opens the database as production does, from its URL.
    pub async fn open(&self) -> Arc<dyn Store> {
        let url = DatabaseUrl::parse(&self.url())
            .unwrap_or_else(|error| panic!("the test database's URL: {error}"));
        ticketd::store::open(&url).await.unwrap()
    }
}

/// A provisioned user and their API key.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: UserId,
    pub name: String,
    pub key_id: KeyId,
    pub token: String,
}

/// Options for [`TestApp::spawn_with`].
#[derive(Clone, Debug)]
pub struct TestOptions {
    pub rate_limit: RatePolicy,
    /// Where the limiter keeps its state (in memory unless a test says).
    pub rate_limit_store: RateLimitStore,
    pub max_body_bytes: usize,
    /// Bytes of request bodies held in memory at once.
    pub max_buffered_body_bytes: usize,
    pub request_timeout: Duration,
    /// How long a write's body may take to arrive.
    pub body_read_timeout: Duration,
    /// Requests handled at once.
    pub max_concurrent_requests: usize,
    /// Requests one API key may have in progress at once.
    pub max_concurrent_requests_per_key: usize,
    /// Failed authentications allowed per client address (`None`: no limit).
    pub auth_failure_limit: Option<RatePolicy>,
    /// The longest subject and message accepted.
    pub text_limits: TextLimits,
    /// The listener's limits (connections, header size, timeouts).
    pub connections: ConnectionLimits,
    /// How long idempotency records are kept.
    pub idempotency_ttl: Duration,
    /// How long API keys, once read, are used without reading them again.
    pub api_key_cache: Duration,
    /// Bytes of rendered HTML kept in memory.
    pub html_cache_bytes: usize,
    /// The largest uploaded file.
    pub max_upload_bytes: u64,
    /// How long an upload waits to be attached.
    pub upload_ttl: Duration,
    /// How long a pre-signed upload URL works.
    pub upload_url_ttl: Duration,
    /// Files per message and bytes per ticket.
    pub attach_limits: AttachLimits,
    /// The compatibility profiles served.
    pub profiles: Vec<Profile>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            rate_limit: RatePolicy {
                per_minute: 1_000_000,
                burst: 1_000_000,
            },
            rate_limit_store: RateLimitStore::Memory,
            max_body_bytes: 1024 * 1024,
            max_buffered_body_bytes: 1024 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(Config::DEFAULT_BODY_READ_TIMEOUT_SECS),
            max_concurrent_requests: 1024,
            max_concurrent_requests_per_key: Config::default_max_concurrent_requests_per_key(1024),
            auth_failure_limit: Some(RatePolicy {
                per_minute: Config::DEFAULT_AUTH_FAILURE_LIMIT_PER_MINUTE,
                burst: Config::DEFAULT_AUTH_FAILURE_LIMIT_PER_MINUTE,
            }),
            text_limits: TextLimits::PUBLISHED,
            connections: ConnectionLimits::default(),
            idempotency_ttl: Duration::from_secs(86_400),
            api_key_cache: Duration::from_secs(Config::DEFAULT_API_KEY_CACHE_SECS),
            html_cache_bytes: usize::try_from(Config::DEFAULT_HTML_CACHE_MIB << 20).unwrap(),
            max_upload_bytes: Config::DEFAULT_MAX_UPLOAD_BYTES,
            upload_ttl: Duration::from_secs(Config::DEFAULT_UPLOAD_TTL_SECS),
            upload_url_ttl: Duration::from_secs(900),
            attach_limits: AttachLimits::default(),
            profiles: Profile::ALL.to_vec(),
        }
    }
}

/// A running server plus the users of two workspaces.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    /// The store the server uses: the database behind the encryption layer.
    pub store: Arc<dyn Store>,
    /// The database itself, as sealed bodies are stored in it.
    pub raw_store: Arc<dyn Store>,
    /// The key file of encrypted messages.
    pub key_file: std::path::PathBuf,
    /// The key the server fingerprints keyed requests under (from the key
    /// file's server secret).
    pub fingerprint_key: FingerprintKey,
    /// The server's upload use cases (to sweep on demand).
    pub uploads: Uploads,
    /// The blob store the server keeps upload bytes in, opened beside it
    /// (to see what is stored).
    pub blobs: Arc<dyn BlobStore>,
    pub workspace: WorkspaceId,
    /// The second workspace.
    pub other_workspace: WorkspaceId,
    /// The key the server checks agency signatures with.
    pub agency_signatures: AgencySignatureKey,
    /// Customer "Jane Example" of the main workspace.
    pub customer: TestUser,
    /// Another customer of the main workspace.
    pub other_customer: TestUser,
    /// Staff of the main workspace.
    pub staff: TestUser,
    /// Automation of the main workspace.
    pub automation: TestUser,
    /// A customer of a second workspace.
    pub foreign_customer: TestUser,
    /// Staff of the second workspace.
    pub foreign_staff: TestUser,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Where the key file is.
    _key_dir: TempDir,
    /// The server's database; the last field, so it is removed only after
    /// the server and the store are gone.
    _database: FreshDatabase,
}

impl Drop for TestApp {
    /// Stops a server the test did not [`TestApp::stop`], so that nothing
    /// uses the database when it is removed.
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl TestResponse {
    /// A header as text ("" if absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts a problem document with this status and code, and returns it.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            "application/problem+json",
            "{}",
            self.text
        );
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["type"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/errors/{code}"))
        );
        assert!(self.body["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(self.body["instance"].as_str().unwrap().starts_with('/'));
        let request_id = self.body["requestId"].as_str().unwrap();
        assert!(request_id.starts_with("req_"));
        assert_eq!(self.header("x-request-id"), request_id);
        assert!(Timestamp::parse_rfc3339(self.body["timestamp"].as_str().unwrap()).is_some());
        &self.body
    }

    /// The `(pointer, code)` pairs of a problem's `errors[]`.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["pointer"].as_str().unwrap().to_owned(),
                            e["code"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn provision_user(
    store: &Arc<dyn Store>,
    workspace: WorkspaceId,
    role: Role,
    name: &str,
    scopes: Scopes,
) -> TestUser {
    let user = store
        .create_user(NewUser {
            id: UserId::generate(),
            workspace_id: workspace,
            role,
            name: name.to_owned(),
            email: None,
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let (key_id, token) = provision_key(store, user.id, scopes).await;
    TestUser {
        id: user.id,
        name: name.to_owned(),
        key_id,
        token,
    }
}

/// Creates another key for `user`; returns its id and token.
pub async fn provision_key(
    store: &Arc<dyn Store>,
    user: UserId,
    scopes: Scopes,
) -> (KeyId, String) {
    let token = ApiToken::generate(KeyId::generate()).unwrap();
    store
        .create_api_key(NewApiKey {
            id: token.key_id,
            user_id: user,
            scopes,
            secret_hash: token.secret_hash(),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    (token.key_id, token.expose())
}

async fn provision_workspace(store: &Arc<dyn Store>, name: &str) -> WorkspaceId {
    store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: name.to_owned(),
            code: WorkspaceCode::derive_from(name),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap()
        .id
}

impl TestApp {
    /// A server with default test options on a fresh `backend` database;
    /// `None` (the test is skipped) when the backend is unavailable here.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, TestOptions::default()).await
    }

    /// A server with `options` on a fresh `backend` database; `None` (the
    /// test is skipped) when the backend is unavailable here.
    pub async fn spawn_with(backend: Backend, options: TestOptions) -> Option<Self> {
        let database = FreshDatabase::create(backend).await?;
        let raw_store = database.open().await;
        let key_dir = tempfile::tempdir().unwrap();
        let key_file = key_dir.path().join("encryption.key");
        // The production assembly, on a configuration of the test's own: a
        // free port, the fresh database (through the handle the test keeps
        // on it), a key file of its own and the options.
        let mut config = Config::from_settings(Settings {
            database: Some(database.url()),
            listen: Some("127.0.0.1:0".into()),
            ..Settings::default()
        })
        .unwrap();
        config.encryption_key_file = key_file.clone();
        config.rate_limit = options.rate_limit;
        config.rate_limit_store = options.rate_limit_store;
        config.auth_failure_limit = options.auth_failure_limit;
        config.request_timeout = options.request_timeout;
        config.body_read_timeout = options.body_read_timeout;
        config.max_body_bytes = options.max_body_bytes;
        config.max_buffered_body_bytes = options.max_buffered_body_bytes;
        config.max_concurrent_requests = options.max_concurrent_requests;
        config.max_concurrent_requests_per_key = options.max_concurrent_requests_per_key;
        config.text_limits = options.text_limits;
        config.connections = options.connections;
        config.idempotency_ttl = options.idempotency_ttl;
        config.api_key_cache = options.api_key_cache;
        config.html_cache_bytes = options.html_cache_bytes;
        config.max_upload_bytes = options.max_upload_bytes;
        config.upload_ttl = options.upload_ttl;
        config.upload_url_ttl = options.upload_url_ttl;
        config.attach_limits = options.attach_limits;
        config.profiles = options.profiles;
        let blobs = ticketd::blob::open(&config.blob_store, &config.database).unwrap();
        let application = Application::build_with_store(config, Arc::clone(&raw_store))
            .await
            .unwrap();
        let base_url = format!("http://{}", application.local_addr());
        let store = Arc::clone(&application.state().store);
        let fingerprint_key = application.fingerprint_key().clone();
        let uploads = application.state().uploads.clone();
        let agency_signatures = application.state().agency_signatures.clone();

        let workspace = provision_workspace(&store, "Acme Hosting").await;
        let other_workspace = provision_workspace(&store, "Other Corp").await;
        let all = Scopes::all();
        let customer = provision_user(&store, workspace, Role::Customer, "Jane Example", all).await;
        let other_customer =
            provision_user(&store, workspace, Role::Customer, "John Other", all).await;
        let staff = provision_user(&store, workspace, Role::Staff, "Sam Staff", all).await;
        let automation =
            provision_user(&store, workspace, Role::Automation, "Helper Bot", all).await;
        let foreign_customer =
            provision_user(&store, other_workspace, Role::Customer, "Fran Foreign", all).await;
        let foreign_staff =
            provision_user(&store, other_workspace, Role::Staff, "Fred Foreign", all).await;

        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until(async move {
            let _ = stop.await;
        }));
        Some(Self {
            base_url,
            client: reqwest::Client::new(),
            store,
            raw_store,
            key_file,
            fingerprint_key,
            uploads,
            blobs,
            workspace,
            other_workspace,
            agency_signatures,
            customer,
            other_customer,
            staff,
            automation,
            foreign_customer,
            foreign_staff,
            shutdown: Some(shutdown),
            server: Some(server),
            _key_dir: key_dir,
            _database: database,
        })
    }

    /// Sends a request; `body` as JSON when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> TestResponse {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", HeaderValue::from_static("application/json"))
                .body(serde_json::to_vec(body).unwrap());
        }
        read(request.send().await.unwrap()).await
    }

    /// An agency signature of `workspace`, as `ticketd workspace
    /// agency-signature` prints it (`rotate`: as `rotate-signature` does).
    pub async fn agency_signature(&self, workspace: WorkspaceId, rotate: bool) -> String {
        let generation = ticketd::core::agency_signature::new_generation().unwrap();
        let agency = self
            .store
            .agency_signature_generation(workspace, generation, rotate)
            .await
            .unwrap();
        self.agency_signatures
            .mint(&agency, Timestamp::now())
            .unwrap()
    }

    /// Sends a prepared request builder.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> TestResponse {
        read(request.send().await.unwrap()).await
    }

    /// The URL of the server's database.
    pub fn database_url(&self) -> String {
        self._database.url()
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str, user: &TestUser) -> TestResponse {
        self.request(Method::GET, path, Some(&user.token), None)
            .await
    }

    pub async fn post(&self, path: &str, user: &TestUser, body: &Value) -> TestResponse {
        self.request(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    /// POST with no body (the action endpoints).
    pub async fn act(&self, ticket: &str, action: &str, user: &TestUser) -> TestResponse {
        self.request(
            Method::POST,
            &format!("/api/v2/support/tickets/{ticket}/actions/{action}"),
            Some(&user.token),
            None,
        )
        .await
    }

    /// Opens a ticket as `user` (a customer); asserts 201 and returns it.
    pub async fn open_ticket(&self, user: &TestUser, subject: &str) -> Value {
        let response = self
            .post(
                "/api/v2/support/tickets",
                user,
                &serde_json::json!({"subject": subject, "message": "First message"}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        response.body
    }

    /// Replies as `user`; returns the response.
    pub async fn reply(&self, ticket: &str, user: &TestUser, message: &str) -> TestResponse {
        self.post(
            &format!("/api/v2/support/tickets/{ticket}/messages"),
            user,
            &serde_json::json!({"message": message}),
        )
        .await
    }

    /// Stops the server, waiting for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

pub async fn read(response: reqwest::Response) -> TestResponse {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    TestResponse {
        status,
        headers,
        text,
        body,
    }
}

/// A plain TCP connection to a test server, for what an HTTP client will
/// not do: trickle a request, send raw bytes, or hold a connection idle.
pub struct RawConnection {
    pub stream: tokio::net::TcpStream,
    /// Bytes read past the last response.
    pending: Vec<u8>,
}

/// A response read off a [`RawConnection`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and header fields, as text.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl RawConnection {
    /// Connects to `app`.
    pub async fn open(app: &TestApp) -> Self {
        let address = app.base_url.trim_start_matches("http://");
        Self {
            stream: tokio::net::TcpStream::connect(address).await.unwrap(),
            pending: Vec::new(),
        }
    }

    /// Connects to `app` from the loopback address `local` (Linux routes
    /// all of 127.0.0.0/8 to the loopback interface, so any of them is a
    /// distinct client address on the same machine).
    pub async fn open_from(app: &TestApp, local: std::net::Ipv4Addr) -> Self {
        Self::open_to(&app.base_url, local).await
    }

    /// Connects to the server at `base_url` from the loopback address
    /// `local` (see [`RawConnection::open_from`]).
    pub async fn open_to(base_url: &str, local: std::net::Ipv4Addr) -> Self {
        let address: std::net::SocketAddr = base_url.trim_start_matches("http://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from((local, 0))).unwrap();
        Self {
            stream: socket.connect(address).await.unwrap(),
            pending: Vec::new(),
        }
    }

    /// Reads the interim `100 Continue` a server sends when it starts
    /// reading a body sent with `Expect: 100-continue`; false if the
    /// connection closes, or something else arrives, first.
    pub async fn continued(&mut self) -> bool {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        while self.pending.len() < CONTINUE.len() {
            if !self.fill().await {
                return false;
            }
        }
        if self.pending.starts_with(CONTINUE) {
            self.pending.drain(..CONTINUE.len());
            true
        } else {
            false
        }
    }

    /// Whether the server has sent nothing and not closed the connection,
    /// without waiting.
    pub fn is_quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        self.pending.is_empty()
            && matches!(
                self.stream.try_read(&mut byte),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
            )
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await
    }

    /// Reads more bytes into `pending`; false when the server closed the
    /// connection (or reset it).
    async fn fill(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(read) => {
                self.pending.extend_from_slice(&chunk[..read]);
                true
            }
        }
    }

    /// Reads one response with a `Content-Length` body; `None` if the
    /// connection closes first.
    pub async fn response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(at) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8(self.pending[..head_end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while self.pending.len() < head_end + length {
            if !self.fill().await {
                return None;
            }
        }
        let body = self.pending[head_end..head_end + length].to_vec();
        self.pending.drain(..head_end + length);
        Some(RawResponse { status, head, body })
    }

    /// Sends `request` and reads its response; `None` if the connection
    /// closes first.
    pub async fn exchange(&mut self, request: &[u8]) -> Option<RawResponse> {
        self.send(request).await.ok()?;
        self.response().await
    }

    /// Waits (at most `limit`) for the server to close the connection;
    /// returns whatever it sent before closing.
    pub async fn closed_within(&mut self, limit: Duration) -> Vec<u8> {
        tokio::time::timeout(limit, async { while self.fill().await {} })
            .await
            .unwrap_or_else(|_| panic!("the connection was still open after {limit:?}"));
        std::mem::take(&mut self.pending)
    }
}

/// `GET path` over HTTP/1.1, keeping the connection open.
pub fn raw_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// A Python virtualenv at `target/NAME` holding the packages `requirements`
/// (a file under the repository) pins, installed from PyPI the first time
/// and again whenever the file changes; its `python`. `None`, after a loud
/// notice, when it cannot be made (no Python, no network) and `CI` is not
/// set; under CI that fails the test instead.
pub fn python_venv(name: &str, requirements: &str) -> Option<std::path::PathBuf> {
    use std::process::Command;
    static SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SETUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target").join(name);
    let wanted = std::fs::read(root.join(requirements)).unwrap();
    let marker = venv.join("installed-requirements.txt");
    let python = venv.join("bin/python");
    if std::fs::read(&marker).ok().as_deref() == Some(wanted.as_slice()) && python.exists() {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|status| status.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(root.join(requirements))
            .status()
            .is_ok_and(|status| status.success());
    if made {
        std::fs::write(&marker, &wanted).unwrap();
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot install {requirements} into target/{name}, and CI is set"
    );
    eprintln!(
        "\n*** SKIPPED: cannot install {requirements} into target/{name} (no python3 or no \
         PyPI); this test needs them. ***\n"
    );
    None
}
