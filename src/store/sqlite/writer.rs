//! The single writer: one thread owns the only write connection and commits
//! queued writes in groups; a second thread makes them durable.
//!
//! Every write is a closure queued to the writer thread, which runs it at
//! once inside the open transaction of the current group. The group is
//! committed when the sync thread is free and no write is waiting: the
//! commit writes the group's pages to the WAL without waiting for the disk,
//! and hands the group to the sync thread, which fsyncs the WAL and only
//! then answers the callers. While that fsync runs, the writer goes on
//! running new writes in the next group's transaction.
//!
//! So no caller hears "done" before its write is on disk; one commit and
//! one fsync serve every write that arrived during the previous fsync; and a
//! group is as large as the disk's latency makes it, which matters because
//! a commit writes every page the group changed to the WAL once, however
//! many of its writes changed it (the pages of the ticket lists' indexes
//! are shared by most replies). A write waits for the fsync in progress and
//! then for its group's commit and fsync, as it would if groups were
//! committed at once and fsynced together. If an fsync ever fails, the process aborts rather than carry on with writes
//! whose durability is unknown.
//!
//! A write that fails must not disturb the others. Almost every failure
//! happens before the write has changed anything (the ticket does not
//! exist, it is closed, the caller may not see it), and such a write needs
//! no undoing, so writes run without a savepoint each, which would cost
//! each write a copy of every page it touches. The writer counts the rows
//! each write changed; if one fails after changing rows, the group's
//! transaction is rolled back and its writes run again, each inside its own
//! savepoint, so that the failed write is undone alone and the others
//! commit as they would have. That is why writes are closures that can run
//! more than once.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::metrics;
use crate::store::StoreError;
use crate::store::sqlite::checkpointer::{RestartFlag, restart_wal};
use crate::store::sqlite::run_transaction_statement;

/// A queued write, type-erased so that one queue carries every kind.
trait Job: Send {
    /// Runs the write inside the open transaction; `true` if it succeeded.
    /// A later run replaces the outcome of an earlier one.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Pending<T, F> {
    op: F,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = (self.op)(conn);
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

/// What the writer thread receives.
enum Message {
    /// A write to run.
    Write(Box<dyn Job>),
    /// The sync thread has made every group handed to it durable.
    Synced,
    /// The store is closing: commit what has run, then stop.
    Stop,
}

/// Handle to the writer thread. Dropping it stops the thread after it has
/// committed the writes already queued.
pub(super) struct Writer {
    queue: mpsc::Sender<Message>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.queue.send(Message::Stop);
    }
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
        let (queue, messages) = mpsc::channel::<Message>();
        let (durable, committed) = mpsc::channel::<Vec<Box<dyn Job>>>();
        let synced = queue.clone();
        thread::Builder::new()
            .name("ticketd-sqlite-sync".into())
            .spawn(move || sync_committed(&wal_path, &committed, &synced))?;
        thread::Builder::new()
            .name("ticketd-sqlite-writer".into())
            .spawn(move || run(&conn, &messages, &durable, &restart))?;
        Ok(Self { queue })
    }

    /// Runs `op` in a write transaction and returns its result once
    /// committed. `op` may run more than once (see the module's notes); only
    /// the outcome of its last run counts.
    pub(super) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _timer = metrics::OperationTimer::start("sqlite", "write");
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            op,
            outcome: None,
            reply,
        });
        self.queue
            .send(Message::Write(job))
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

/// The writer thread's loop: runs each write as it arrives, and commits the
/// group when the sync thread is free and nothing else is waiting.
fn run(
    conn: &Connection,
    messages: &mpsc::Receiver<Message>,
    durable: &mpsc::Sender<Vec<Box<dyn Job>>>,
    restart: &RestartFlag,
) {
    let mut group = Group::default();
    let mut syncing = false;
    let mut stopping = false;
    loop {
        let message = if group.is_empty() || syncing {
            if stopping && group.is_empty() && !syncing {
                return;
            }
            match messages.recv() {
                Ok(message) => message,
                Err(_) => return,
            }
        } else {
            match messages.try_recv() {
                Ok(message) => message,
                Err(_) => {
                    if let Some(jobs) = group.commit(conn) {
                        if let Err(mpsc::SendError(jobs)) = durable.send(jobs) {
                            let gone = StoreError::Unavailable(
                                "the SQLite sync thread has stopped".into(),
                            );
                            finish_all(jobs, &Err(gone));
                        } else {
                            syncing = true;
                        }
                    }
                    if restart.take() {
                        restart_wal(conn);
                    }
                    continue;
                }
            }
        };
        match message {
            Message::Write(job) => group.add(conn, job),
            Message::Synced => syncing = false,
            Message::Stop => stopping = true,
        }
    }
}

fn finish_all(jobs: Vec<Box<dyn Job>>, outcome: &Result<(), StoreError>) {
    for job in jobs {
        job.finish(outcome.clone());
    }
}

/// Makes committed groups durable, then answers their callers and tells
/// the writer.
fn sync_committed(
    wal_path: &std::path::Path,
    committed: &mpsc::Receiver<Vec<Box<dyn Job>>>,
    writer: &mpsc::Sender<Message>,
) {
    let mut wal: Option<File> = None;
    while let Ok(first) = committed.recv() {
        let mut jobs = first;
        while let Ok(more) = committed.try_recv() {
            jobs.extend(more);
        }
        let started = metrics::now();
        let synced = match &wal {
            Some(file) => file.sync_data(),
            None => {
                File::open(wal_path).and_then(|file| file.sync_data().map(|()| wal = Some(file)))
            }
        };
        metrics::record_since(metrics::SQLITE_FSYNC_SECONDS, started);
        if let Err(error) = synced {
            // The committed pages may or may not be on disk; answering
            // either way could lose or duplicate a write. Stop instead.
            tracing::error!(%error, path = %wal_path.display(), "fsync of the SQLite WAL failed; aborting");
            std::process::abort();
        }
        finish_all(jobs, &Ok(()));
        let _ = writer.send(Message::Synced);
    }
}

/// Whether the jobs of a group run on their own or each in a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Isolation {
    /// One after another; a job that fails after changing rows stops the run.
    #[default]
    Unguarded,
    /// Each in a savepoint, rolled back to it if the job fails.
    Savepoints,
}

/// How a run of jobs ended.
enum Ran {
    /// Every job ran; those that failed changed nothing (or were undone).
    Clean,
    /// A job failed after changing rows; the transaction holds its changes.
    Tainted,
}

/// The jobs run in the open transaction, waiting for its commit.
#[derive(Default)]
struct Group {
    jobs: Vec<Box<dyn Job>>,
    isolation: Isolation,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs `job` in the group's transaction, opening it for the first job.
    /// If the job fails half-way, the transaction is rolled back and every
    /// job runs again with savepoints; if the transaction cannot go on, the
    /// whole group is answered with the error.
    fn add(&mut self, conn: &Connection, job: Box<dyn Job>) {
        if self.jobs.is_empty()
            && let Err(error) = run_transaction_statement(conn, "BEGIN IMMEDIATE")
        {
            job.finish(Err(error));
            return;
        }
        self.jobs.push(job);
        let last = self.jobs.len() - 1;
        let ran =
            run_each(conn, &mut self.jobs[last..], self.isolation).and_then(|ran| match ran {
                Ran::Clean => Ok(()),
                Ran::Tainted => {
                    self.isolation = Isolation::Savepoints;
                    run_transaction_statement(conn, "ROLLBACK")?;
                    run_transaction_statement(conn, "BEGIN IMMEDIATE")?;
                    match run_each(conn, &mut self.jobs, Isolation::Savepoints)? {
                        Ran::Clean => Ok(()),
                        Ran::Tainted => Err(StoreError::Other(
                            "a write changed rows its savepoint did not undo".into(),
                        )),
                    }
                }
            });
        if let Err(error) = ran {
            self.fail(conn, &error);
        }
    }

    /// Commits the group; its jobs, to be answered once durable, or `None`
    /// if the commit failed (they have been answered with the error).
    fn commit(&mut self, conn: &Connection) -> Option<Vec<Box<dyn Job>>> {
        metrics::record_histogram(metrics::SQLITE_GROUP_SIZE, self.jobs.len() as f64);
        let started = metrics::now();
        let committed = run_transaction_statement(conn, "COMMIT");
        metrics::record_since(metrics::SQLITE_COMMIT_SECONDS, started);
        match committed {
            Ok(()) => {
                self.isolation = Isolation::Unguarded;
                Some(std::mem::take(&mut self.jobs))
            }
            Err(error) => {
                self.fail(conn, &error);
                None
            }
        }
    }

    /// Rolls the transaction back and answers every job with `error`.
    fn fail(&mut self, conn: &Connection, error: &StoreError) {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.isolation = Isolation::Unguarded;
        finish_all(std::mem::take(&mut self.jobs), &Err(error.clone()));
    }
}

fn run_each(
    conn: &Connection,
    jobs: &mut [Box<dyn Job>],
    isolation: Isolation,
) -> Result<Ran, StoreError> {
    for job in jobs.iter_mut() {
        if isolation == Isolation::Savepoints {
            run_transaction_statement(conn, "SAVEPOINT job")?;
        }
        let changes_before = conn.total_changes();
        let succeeded = job.run(conn);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back on a severe error
            // (disk full, I/O error): nothing in this group can commit.
            return Err(StoreError::Unavailable(
                "the transaction was rolled back by SQLite".into(),
            ));
        }
        match isolation {
            // A failed statement undoes itself, so a failed job whose
            // earlier statements changed no rows left nothing behind.
            Isolation::Unguarded if !succeeded && conn.total_changes() != changes_before => {
                return Ok(Ran::Tainted);
            }
            Isolation::Unguarded => {}
            Isolation::Savepoints => {
                if !succeeded {
                    run_transaction_statement(conn, "ROLLBACK TO job")?;
                }
                run_transaction_statement(conn, "RELEASE job")?;
            }
        }
    }
    Ok(Ran::Clean)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::sqlite::map_error;

    type Answer = oneshot::Receiver<Result<(), StoreError>>;

    /// A job that inserts `name` (when `writes`), then fails if `fails`;
    /// it counts its runs in `runs`.
    fn job(
        name: &'static str,
        writes: bool,
        fails: bool,
    ) -> (Box<dyn Job>, Answer, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let (reply, answer) = oneshot::channel();
        let op = move |conn: &Connection| {
            counted.fetch_add(1, Ordering::SeqCst);
            if writes {
                conn.execute("INSERT INTO item (name) VALUES (?1)", [name])
                    .map_err(map_error)?;
            }
            if fails {
                return Err(StoreError::NotFound);
            }
            Ok(())
        };
        let pending: Box<dyn Job> = Box::new(Pending {
            op,
            outcome: None,
            reply,
        });
        (pending, answer, runs)
    }

    fn database() -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE item (name TEXT PRIMARY KEY)")
            .expect("table");
        conn
    }

    fn stored(conn: &Connection) -> Vec<String> {
        let mut select = conn
            .prepare("SELECT name FROM item ORDER BY name")
            .expect("valid SQL");
        select
            .query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("names")
    }

    /// Runs `jobs` as one group, commits it, and returns each job's
    /// success and number of runs.
    fn commit(
        conn: &Connection,
        jobs: Vec<(Box<dyn Job>, Answer, Arc<AtomicUsize>)>,
    ) -> Vec<(bool, usize)> {
        let mut group = Group::default();
        let mut answers = Vec::new();
        for (job, answer, runs) in jobs {
            group.add(conn, job);
            answers.push((answer, runs));
        }
        let committed = group.commit(conn).expect("the group commits");
        finish_all(committed, &Ok(()));
        answers
            .into_iter()
            .map(|(mut answer, runs)| {
                let answered = answer.try_recv().expect("an answer");
                (answered.is_ok(), runs.load(Ordering::SeqCst))
            })
            .collect()
    }

    #[test]
    fn failures_before_any_change_cost_no_second_run() {
        let conn = database();
        let outcomes = commit(
            &conn,
            vec![
                job("a", true, false),
                job("b", false, true),
                job("c", true, false),
            ],
        );
        assert_eq!(outcomes, [(true, 1), (false, 1), (true, 1)]);
        assert_eq!(stored(&conn), ["a", "c"]);
    }

    #[test]
    fn a_job_that_fails_after_writing_is_undone_alone() {
        let conn = database();
        let outcomes = commit(
            &conn,
            vec![
                job("a", true, false),
                job("b", true, true),
                job("c", true, false),
                job("d", false, true),
            ],
        );
        // The unguarded run stopped at "b"; the group ran again with
        // savepoints, so "a" and "b" ran twice and the rest once.
        assert_eq!(outcomes, [(true, 2), (false, 2), (true, 1), (false, 1)]);
        assert_eq!(stored(&conn), ["a", "c"]);
    }

    #[test]
    fn a_failed_statement_in_an_unguarded_run_undoes_itself() {
        let conn = database();
        conn.execute("INSERT INTO item (name) VALUES ('a')", [])
            .expect("a row");
        // "a" again violates the primary key: the statement fails and
        // changes nothing, so the group needs no second run.
        let outcomes = commit(&conn, vec![job("a", true, false), job("b", true, false)]);
        assert_eq!(outcomes, [(false, 1), (true, 1)]);
        assert_eq!(stored(&conn), ["a", "b"]);
    }
}
