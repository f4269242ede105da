//! The single writer: one thread owns the only write connection and commits
//! queued writes in groups.
//!
//! Every write is a closure queued to the thread. The thread takes everything
//! that is waiting (up to [`MAX_GROUP`]), runs each closure inside its own
//! savepoint within one transaction, commits once, and only then answers each
//! caller. One fsync thus covers a whole group, so throughput grows with
//! concurrency instead of serialising on the disk; a write that fails is
//! rolled back to its savepoint without disturbing the others; and no caller
//! hears "done" before the commit that holds its write.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;
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
    /// Starts the writer thread on `conn`.
    pub(super) fn start(conn: Connection) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        thread::Builder::new()
            .name("ticketd-sqlite-writer".into())
            .spawn(move || run(&conn, &jobs))?;
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

fn run(conn: &Connection, jobs: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = commit_group(conn, &mut group);
        for job in group {
            job.finish(committed.clone());
        }
    }
}

/// Runs a group in one transaction, each job in its own savepoint.
fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_error)?;
    let outcome =
        run_each(conn, group).and_then(|()| conn.execute_batch("COMMIT").map_err(map_error));
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

fn run_each(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    for job in group.iter_mut() {
        conn.execute_batch("SAVEPOINT job").map_err(map_error)?;
        let statement = if job.run(conn) {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back on a severe error
            // (disk full, I/O error): nothing in this group can commit.
            return Err(StoreError::Unavailable(
                "the transaction was rolled back by SQLite".into(),
            ));
        }
        conn.execute_batch(statement).map_err(map_error)?;
    }
    Ok(())
}
