//! Logging: `tracing` to stderr, written by a background thread so that a
//! slow log consumer never holds up a request.

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Lines queued for the log thread before writers start to wait for it;
/// nothing is dropped.
const QUEUE_LINES: usize = 65_536;

/// How long the log thread lets lines gather after writing a batch.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// What the log thread receives.
enum Item {
    /// A formatted line.
    Line(Vec<u8>),
    /// Write out everything before this, then acknowledge.
    Flush(mpsc::Sender<()>),
}

/// Hands each formatted log line to the log thread.
#[derive(Clone)]
struct QueuedStderr {
    lines: mpsc::SyncSender<Item>,
}

/// One log line being formatted; queued when dropped.
pub struct LineBuffer {
    line: Vec<u8>,
    lines: mpsc::SyncSender<Item>,
}

impl Write for LineBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            let _ = self.lines.send(Item::Line(std::mem::take(&mut self.line)));
        }
    }
}

impl<'a> MakeWriter<'a> for QueuedStderr {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer {
            line: Vec::with_capacity(256),
            lines: self.lines.clone(),
        }
    }
}

/// Writes queued lines to stderr, a batch at a time whenever the queue runs
/// dry. Stderr is locked only while a batch is written, so that the rest of
/// the process (an error message on the way out) can write to it too.
///
/// After each batch the thread pauses for [`BATCH_PAUSE`] before it looks
/// at the queue again. Lines logged meanwhile wait in the queue without
/// waking it: under load, a batch holds every line of the pause, written
/// with one system call, instead of one wake-up and one write per request.
/// An idle thread waits in the queue and costs nothing.
fn write_lines(items: &mpsc::Receiver<Item>) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let write_out = |batch: &mut Vec<u8>| {
        if !batch.is_empty() {
            let mut stderr = io::stderr().lock();
            let _ = stderr.write_all(batch);
            let _ = stderr.flush();
            batch.clear();
        }
    };
    let take = |item: Item, batch: &mut Vec<u8>| match item {
        Item::Line(line) => batch.extend_from_slice(&line),
        Item::Flush(done) => {
            write_out(batch);
            let _ = done.send(());
        }
    };
    while let Ok(item) = items.recv() {
        take(item, &mut batch);
        while let Ok(more) = items.try_recv() {
            take(more, &mut batch);
        }
        write_out(&mut batch);
        thread::sleep(BATCH_PAUSE);
    }
}

/// Dropping it writes out every line logged so far (waiting at most a
/// second), so that the last lines before exit are not lost.
pub struct LogGuard {
    items: mpsc::SyncSender<Item>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (done, flushed) = mpsc::channel();
        if self.items.send(Item::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

/// The environment variable of the log filter.
pub const FILTER_VARIABLE: &str = "TICKETD_LOG";

/// Installs the global subscriber: filter from `TICKETD_LOG` (default
/// `info`), text or JSON lines on stderr.
pub fn init(format: LogFormat) -> LogGuard {
    let (sender, receiver) = mpsc::sync_channel::<Item>(QUEUE_LINES);
    let spawned = thread::Builder::new()
        .name("ticketd-log".into())
        .spawn(move || write_lines(&receiver));
    if spawned.is_err() {
        eprintln!("ticketd: cannot start the log thread; logging is off");
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env(FILTER_VARIABLE)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(QueuedStderr {
            lines: sender.clone(),
        });
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    LogGuard { items: sender }
}
