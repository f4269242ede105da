//! SIGKILL during a burst of uploads and the replies attaching them, on
//! SQLite with its default blob directory: after a restart every
//! acknowledged upload is there with its sha256 and every acknowledged
//! attachment downloads byte for byte; after the next sweep no file in the
//! blob directory lacks a record, nor any record its file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ticketd::blob::BlobStore;
use ticketd::blob::local::LocalBlobs;
use ticketd::core::time::Timestamp;
use ticketd::encryption::{ContentKeyring, MissingKeyFile};
use ticketd::service::{Clock, RandomIds, UploadPolicy, Uploads};
use ticketd::store::Store;
use ticketd::store::sqlite::SqliteStore;

use crate::process::Server;
use crate::{Fixture, TICKETS, provision};

/// Concurrent clients, each uploading and replying in turn.
const UPLOADERS: usize = 8;
/// Acknowledged replies with a file before the kill.
const REPLIES_BEFORE_KILL: usize = 40;
/// Every this many acknowledged uploads, one is left unattached.
const UNATTACHED_EVERY: usize = 4;
/// The sizes of the files sent: 1 KiB to 512 KiB.
const SIZES: std::ops::RangeInclusive<usize> = 1024..=512 * 1024;
/// The PNG signature, which the upload check wants first.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// One file a client sent, and what came of it and of its reply.
#[derive(Debug, Clone, Default)]
struct Sent {
    name: String,
    size: usize,
    sha256: String,
    /// The upload's status, or `None` if it failed at the transport.
    upload_status: Option<u16>,
    /// The upload's id, from a 201.
    upload_id: Option<String>,
    /// Whether a reply attaching it was sent.
    replied: bool,
    /// The reply's status, or `None` if it failed at the transport.
    reply_status: Option<u16>,
    /// The attachment's download URL, from the reply's 201.
    attachment_url: Option<String>,
}

/// A PNG signature followed by random bytes, of a random size in `SIZES`.
fn random_png() -> Vec<u8> {
    let mut size = [0u8; 8];
    getrandom::fill(&mut size).unwrap();
    let span = (SIZES.end() - SIZES.start() + 1) as u64;
    let size = SIZES.start() + (u64::from_le_bytes(size) % span) as usize;
    let mut data = vec![0u8; size];
    getrandom::fill(&mut data).unwrap();
    data[..PNG_SIGNATURE.len()].copy_from_slice(PNG_SIGNATURE);
    data
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Runs `UPLOADERS` loops until `stop`: each uploads a random file as the
/// customer, then (for all but every `UNATTACHED_EVERY`th) replies to a
/// ticket attaching it; counts the acknowledged replies in `replied`.
async fn burst(
    base_url: String,
    fixture: Arc<Fixture>,
    stop: Arc<AtomicBool>,
    replied: Arc<AtomicUsize>,
) -> Vec<Sent> {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for client_index in 0..UPLOADERS {
        let (base_url, fixture, stop, replied, sent) = (
            base_url.clone(),
            Arc::clone(&fixture),
            Arc::clone(&stop),
            Arc::clone(&replied),
            Arc::clone(&sent),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let data = random_png();
                let mut file = Sent {
                    name: format!("client-{client_index}-{n}.png"),
                    size: data.len(),
                    sha256: sha256_hex(&data),
                    ..Sent::default()
                };
                n += 1;
                let uploaded = client
                    .post(format!(
                        "{base_url}/api/v2/support/uploads?filename={}",
                        file.name
                    ))
                    .bearer_auth(&fixture.customer_token)
                    .header("content-type", "image/png")
                    .body(data)
                    .send()
                    .await;
                if let Ok(response) = uploaded {
                    file.upload_status = Some(response.status().as_u16());
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    file.upload_id = body["id"].as_str().map(str::to_owned);
                }
                if file.upload_status == Some(201) && n % UNATTACHED_EVERY != 0 {
                    file.replied = true;
                    let ticket = fixture.tickets[(client_index + n) % TICKETS];
                    let reply = client
                        .post(format!(
                            "{base_url}/api/v2/support/tickets/{ticket}/messages"
                        ))
                        .bearer_auth(&fixture.customer_token)
                        .json(&json!({
                            "message": format!("Here is {}", file.name),
                            "attachments": [file.upload_id],
                        }))
                        .send()
                        .await;
                    if let Ok(response) = reply {
                        file.reply_status = Some(response.status().as_u16());
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        file.attachment_url =
                            body["attachments"][0]["url"].as_str().map(str::to_owned);
                        if file.reply_status == Some(201) {
                            replied.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                }
                let failed =
                    file.upload_status.is_none() || (file.replied && file.reply_status.is_none());
                sent.lock().unwrap().push(file);
                if failed {
                    // The server is gone; wait to be told to stop.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    Arc::try_unwrap(sent).unwrap().into_inner().unwrap()
}

/// A clock fixed at one instant.
struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Every upload record: id (the blob's file name) to state, whether a
/// message attaches it, and its sha256.
fn upload_records(db: &Path) -> BTreeMap<String, (String, bool, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "the database must pass an integrity check");
    let mut select = conn
        .prepare("SELECT id, state, message_id IS NOT NULL, sha256 FROM upload")
        .unwrap();
    select
        .query_map([], |row| {
            Ok((row.get(0)?, (row.get(1)?, row.get(2)?, row.get(3)?)))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The names of the files in `dir`.
fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_keeps_every_acknowledged_file_and_the_sweep_leaves_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ticketd.db");
    let blob_dir = dir.path().join("blobs");
    let fixture = {
        let store = SqliteStore::open(db.clone()).await.unwrap();
        Arc::new(provision(&store).await)
    };

    let mut server = Server::start(&db).await;
    let (stop, replied) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let load = tokio::spawn(burst(
        server.base_url.clone(),
        Arc::clone(&fixture),
        Arc::clone(&stop),
        Arc::clone(&replied),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while replied.load(Ordering::Acquire) < REPLIES_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "the burst never had {REPLIES_BEFORE_KILL} replies acknowledged: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    stop.store(true, Ordering::Release);
    let sent = load.await.unwrap();

    for file in &sent {
        assert!(
            matches!(file.upload_status, None | Some(201))
                && matches!(file.reply_status, None | Some(201)),
            "only 201s or transport errors before the kill: {file:?}"
        );
    }
    let uploaded: Vec<&Sent> = sent
        .iter()
        .filter(|file| file.upload_status == Some(201))
        .collect();
    let attached: Vec<&Sent> = uploaded
        .iter()
        .copied()
        .filter(|file| file.reply_status == Some(201))
        .collect();
    let cut_off = sent
        .iter()
        .filter(|file| {
            file.upload_status.is_none() || (file.replied && file.reply_status.is_none())
        })
        .count();
    assert!(attached.len() >= REPLIES_BEFORE_KILL);
    assert!(
        cut_off > 0,
        "no request was cut off by the kill; the test proved nothing"
    );
    let temporary_after_kill = files_in(&blob_dir)
        .iter()
        .filter(|name| name.contains(".tmp-"))
        .count();

    // Restarted on the same data: every acknowledged file is there.
    let mut restarted = Server::start(&db).await;
    let client = reqwest::Client::new();
    for file in &attached {
        let url = file.attachment_url.as_deref().unwrap();
        let response = client
            .get(format!("{}{url}", restarted.base_url))
            .bearer_auth(&fixture.staff_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let bytes = response.bytes().await.unwrap();
        assert_eq!(bytes.len(), file.size, "{url}");
        assert_eq!(sha256_hex(&bytes), file.sha256, "{url}");
    }
    for file in &uploaded {
        let id = file.upload_id.as_deref().unwrap();
        let (status, upload) = restarted
            .get_json(
                &format!("/api/v2/support/uploads/{id}"),
                &fixture.customer_token,
            )
            .await;
        assert_eq!(status, 200, "{id}: {upload}");
        assert_eq!(upload["sha256"], file.sha256.as_str(), "{id}");
        assert_eq!(upload["size"], file.size as u64, "{id}");
        assert_eq!(upload["filename"], file.name.as_str(), "{id}");
        if file.reply_status == Some(201) {
            assert_eq!(upload["attached"], true, "{id}");
        } else if !file.replied {
            assert_eq!(upload["attached"], false, "{id}");
        }
    }
    assert!(restarted.terminate().success());

    // The next sweep, a day and a minute on: what the crash left (pending
    // records and their bytes) goes with the unattached; and the hourly
    // round removes temporary files once they are an hour old (younger
    // ones may be another server's uploads in progress), so they are made
    // to look that old after the blob directory is opened.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db.clone()).await.unwrap());
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::open(&blob_dir).unwrap());
    let stale = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
    for name in files_in(&blob_dir) {
        if name.contains(".tmp-") {
            let file = std::fs::File::options()
                .write(true)
                .open(blob_dir.join(&name))
                .unwrap();
            file.set_modified(stale).unwrap();
        }
    }
    let key_file = db.with_file_name(ticketd::encryption::KEY_FILE_NAME);
    let encryption = ticketd::encryption::setup(store.as_ref(), &key_file, MissingKeyFile::Refuse)
        .await
        .unwrap();
    let url_key = encryption.upload_url_key();
    let policy = UploadPolicy::default();
    let uploads = Uploads::new(
        Arc::clone(&store),
        Arc::clone(&blobs),
        Arc::new(ContentKeyring::new(encryption, store)),
        Arc::new(FixedClock(
            Timestamp::now().plus(policy.ttl + Duration::from_secs(60)),
        )),
        Arc::new(RandomIds),
        url_key,
        policy,
    );
    let records_before = upload_records(&db).len();
    let swept = uploads.sweep_once().await.unwrap();
    let abandoned = blobs.remove_abandoned().await.unwrap();
    assert_eq!(abandoned, temporary_after_kill as u64);
    let unattached = uploaded.len() - attached.len();
    assert!(
        swept >= unattached as u64,
        "{swept} swept, but {unattached} acknowledged uploads were never attached"
    );

    let records = upload_records(&db);
    let files = files_in(&blob_dir);
    for (id, (state, is_attached, sha256)) in &records {
        assert!(
            *is_attached && state == "stored",
            "{id} is left {state}, attached: {is_attached}"
        );
        let bytes = std::fs::read(blob_dir.join(id)).unwrap();
        assert_eq!(&sha256_hex(&bytes), sha256, "{id}");
    }
    let temporary: Vec<&String> = files.iter().filter(|name| name.contains(".tmp-")).collect();
    assert!(
        temporary.is_empty(),
        "temporary files remain: {temporary:?}"
    );
    let kept: BTreeSet<String> = records.keys().cloned().collect();
    assert_eq!(
        files, kept,
        "the blob directory holds exactly the attached uploads' files"
    );
    for file in &attached {
        let id = file
            .upload_id
            .as_deref()
            .unwrap()
            .trim_start_matches("upl_");
        assert!(kept.contains(id), "{id} was attached but is gone");
    }
    eprintln!(
        "{} files sent: {} uploads acknowledged, {} attached by an acknowledged reply, \
         {cut_off} requests cut off, {temporary_after_kill} temporary files left by the kill; \
         the sweep deleted {swept} of {records_before} records",
        sent.len(),
        uploaded.len(),
        attached.len(),
    );
}
