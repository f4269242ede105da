//! The single writer: one thread owns the only write connection and commits
//! queued writes in groups; a second thread makes them durable.
//!
//! Every write is a closure queued to the writer thread. It takes everything
//! that is waiting (up to [`MAX_GROUP`]), runs each closure inside its own
//! savepoint within one transaction, and commits once: a write that fails is
//! rolled back to its savepoint without disturbing the others.
//!
//! The commit writes the group's pages to the WAL without waiting for the
//! disk; the writer hands the group to the sync thread and goes on with the
//! next one. The sync thread fsyncs the WAL (one fsync covers every group
//! committed since the last) and only then answers the callers. So no caller
//! hears "done" before its write is on disk, one fsync serves many writes,
//! and the disk's latency overlaps the next group's work instead of stalling
//! it. If an fsync ever fails, the process aborts rather than carry on with
//! writes whose durability is unknown.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;
use crate::store::sqlite::checkpointer::{RestartFlag, restart_wal};
use crate::store::sqlite::map_error;

/// The most writes committed together.
const MAX_GROUP: usize = 256;

/// A queued write, type-erased so that one queue carries every kind.
trait Job: Send {
    /// Runs the write inside the open transaction; `true` if it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Pending<T, F> {
    op: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = match self.op.take() {
            Some(op) => op(conn),
            None => Err(StoreError::Other("write ran twice".into())),
        };
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (self.outcome, committed) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(error)) => Err(error),
            (None, Ok(())) => Err(StoreError::Other("write never ran".into())),
        };
        // The caller may have gone away (client disconnected); the write
        // stands either way.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer thread. Dropping every handle stops the thread after
/// it has finished the writes already queued.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (in WAL mode with
    /// `synchronous = NORMAL`) and the sync thread for its WAL at `wal_path`.
    /// Between groups it restarts the WAL when `restart` is raised.
    pub(super) fn start(
        conn: Connection,
        wal_path: PathBuf,
        restart: RestartFlag,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let (durable, committed) = mpsc::channel::<Vec<Box<dyn Job>>>();
        thread::Builder::new()
            .name("ticketd-sqlite-sync".into())
            .spawn(move || sync_committed(&wal_path, &committed))?;
        thread::Builder::new()
            .name("ticketd-sqlite-writer".into())
            .spawn(move || run(&conn, &jobs, &durable, &restart))?;
        Ok(Self { queue })
    }

    /// Runs `op` in a write transaction and returns its result once committed.
    pub(super) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            op: Some(op),
            outcome: None,
            reply,
        });
        self.queue
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

fn run(
    conn: &Connection,
    jobs: &mpsc::Receiver<Box<dyn Job>>,
    durable: &mpsc::Sender<Vec<Box<dyn Job>>>,
    restart: &RestartFlag,
) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match commit_group(conn, &mut group) {
            Ok(()) => {
                if let Err(mpsc::SendError(group)) = durable.send(group) {
                    let gone = StoreError::Unavailable("the SQLite sync thread has stopped".into());
                    finish_all(vec![group], &Err(gone));
                }
            }
            Err(error) => finish_all(vec![group], &Err(error)),
        }
        if restart.take() {
            restart_wal(conn);
        }
    }
}

fn finish_all(groups: Vec<Vec<Box<dyn Job>>>, outcome: &Result<(), StoreError>) {
    for job in groups.into_iter().flatten() {
        job.finish(outcome.clone());
    }
}

/// Makes committed groups durable, then answers their callers.
fn sync_committed(wal_path: &std::path::Path, committed: &mpsc::Receiver<Vec<Box<dyn Job>>>) {
    let mut wal: Option<File> = None;
    while let Ok(first) = committed.recv() {
        let mut groups = vec![first];
        while let Ok(more) = committed.try_recv() {
            groups.push(more);
        }
        let synced = match &wal {
            Some(file) => file.sync_data(),
            None => {
                File::open(wal_path).and_then(|file| file.sync_data().map(|()| wal = Some(file)))
            }
        };
        if let Err(error) = synced {
            // The committed pages may or may not be on disk; answering
            // either way could lose or duplicate a write. Stop instead.
            tracing::error!(%error, path = %wal_path.display(), "fsync of the SQLite WAL failed; aborting");
            std::process::abort();
        }
        finish_all(groups, &Ok(()));
    }
}

/// Runs one of the writer's fixed control statements, prepared once.
fn control(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(map_error)
}

/// Runs a group in one transaction, each job in its own savepoint.
fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    control(conn, "BEGIN IMMEDIATE")?;
    let outcome = run_each(conn, group).and_then(|()| control(conn, "COMMIT"));
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

fn run_each(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    for job in group.iter_mut() {
        control(conn, "SAVEPOINT job")?;
        let succeeded = job.run(conn);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back on a severe error
            // (disk full, I/O error): nothing in this group can commit.
            return Err(StoreError::Unavailable(
                "the transaction was rolled back by SQLite".into(),
            ));
        }
        if !succeeded {
            control(conn, "ROLLBACK TO job")?;
        }
        control(conn, "RELEASE job")?;
    }
    Ok(())
}
