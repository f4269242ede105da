//! The HTTP/1.1 listener: accepts TCP connections up to a cap, and up to a
//! cap per client address, serves each with hyper under a header size limit
//! and the header-read and idle timeouts, and drains in-flight requests on
//! shutdown.
//!
//! Past the cap, new connections are not accepted: they wait in the
//! kernel's listen queue ([`LISTEN_BACKLOG`] deep when bound with [`bind`])
//! and are served, in order, as soon as a connection closes. (A queue that
//! overflows makes the kernel drop or refuse further attempts; clients see
//! that as a slow or failed connect.) A connection from an address (an IPv6
//! /64, see [`AddressGroup`]) that already has its share open is accepted
//! and closed at once, so that one client cannot fill the cap, nor the
//! queue behind it, for everyone else.

mod activity;
mod address;
pub mod capped_counts;
mod service;
mod watched_io;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use self::activity::{Activity, Expiry, Timeouts};
pub use self::address::AddressGroup;
use self::capped_counts::{CappedCounts, CountedSlot};
use self::service::ConnectionService;
use self::watched_io::WatchedIo;

/// What the listener allows each connection, and how many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// Largest request head (request line and header fields), in bytes;
    /// a larger one is answered 431 and the connection closed.
    pub max_header_bytes: usize,
    /// Longest a client may take to send a request head, counted from its
    /// first byte (or, for a connection's first request, from accept).
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may wait for its next request, or a
    /// response wait for the client to read more of it.
    pub idle_timeout: Duration,
    /// [`idle_timeout`](Self::idle_timeout) for a connection on which no
    /// request has been authenticated yet (a new connection waits at most
    /// this or the header-read timeout, whichever is shorter); at most
    /// `idle_timeout`.
    pub unauthenticated_idle_timeout: Duration,
    /// Connections open at once from one address (an IPv6 /64); more are
    /// closed as soon as they are accepted. 0: no cap (behind a proxy that
    /// enforces its own, every client has the proxy's address).
    pub max_connections_per_address: usize,
}

impl ConnectionLimits {
    /// The default cap on connections, when the open-file limit allows it.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// The largest `max_connections` accepted.
    pub const MAX_CONNECTIONS: usize = 1_000_000;
    /// The smallest `max_header_bytes` accepted.
    pub const MIN_HEADER_BYTES: usize = 1024;
    /// The largest `max_header_bytes` accepted (within hyper's read buffer).
    pub const MAX_HEADER_BYTES: usize = 256 * 1024;
    /// The longest timeout accepted, in seconds.
    pub const MAX_TIMEOUT_SECS: u64 = 3600;
    /// The default cap on connections per address, when `max_connections`
    /// is large enough (see [`default_max_connections_per_address`]).
    pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
    /// The default idle timeout before a request was authenticated.
    pub const DEFAULT_UNAUTHENTICATED_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
    /// File descriptors left for everything but client connections (the
    /// database, its pool, logs) when the default cap is derived.
    const RESERVED_FILES: u64 = 256;
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            unauthenticated_idle_timeout: Self::DEFAULT_UNAUTHENTICATED_IDLE_TIMEOUT,
            max_connections_per_address: Self::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// The default cap on connections per address for a server that holds
/// `max_connections`: 64, or a quarter of `max_connections` if that is
/// less, so that one address never takes more than a quarter of a small
/// server.
pub fn default_max_connections_per_address(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, ConnectionLimits::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)
}

/// A response extension the application sets when it authenticated the
/// request: from then on the connection gets the full idle timeout instead
/// of [`ConnectionLimits::unauthenticated_idle_timeout`].
#[derive(Debug, Clone, Copy)]
pub struct Authenticated;

/// The default cap on connections for a process that may open
/// `open_files` files (unknown: `None`): 10,000, or fewer when the limit
/// would not leave room for the database and logs beside them.
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    open_files.map_or(ConnectionLimits::DEFAULT_MAX_CONNECTIONS, |limit| {
        room_for_connections(limit).min(ConnectionLimits::DEFAULT_MAX_CONNECTIONS)
    })
}

/// How many client connections a process that may open `open_files` files
/// can hold beside its database and logs.
pub fn room_for_connections(open_files: u64) -> usize {
    let room = open_files
        .saturating_sub(ConnectionLimits::RESERVED_FILES)
        .max(open_files / 2)
        .max(1);
    usize::try_from(room).unwrap_or(usize::MAX)
}

/// The process's soft limit on open files, where the system tells it
/// (Linux's `/proc/self/limits`); `None` when unknown or unlimited.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many connections may wait to be accepted (the kernel may cap it
/// lower, as Linux does at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Listens on `address` with a queue of [`LISTEN_BACKLOG`] connections
/// waiting to be accepted (the standard library's `bind` asks for 128).
///
/// # Errors
/// The address cannot be bound.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As the standard library does: restart at once on an address whose
    // previous connections are still in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` within `limits` until `shutdown`
/// completes; then stops accepting, lets every connection finish the
/// request it is on, and returns once all are closed.
///
/// # Errors
/// Never at present: a failure to accept is logged and retried.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(permits as usize));
    let per_address = CappedCounts::new(limits.max_connections_per_address);
    let mut warned_at: Option<Instant> = None;
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(address_slot) = per_address.take(AddressGroup::of(peer.ip())) else {
                    // Closed before a byte is read; its slot is free again
                    // for the next connection in the queue.
                    drop(stream);
                    refused_past_address_cap(peer, limits, &mut warned_at);
                    continue;
                };
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    router.clone(),
                    limits,
                    stopping.clone(),
                    (permit, address_slot),
                ));
            }
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                // Out of file descriptors or the like: waiting lets some
                // connections close instead of spinning on the error.
                tracing::error!(%error, "cannot accept connections; retrying in 1 s");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    // Closing the listener refuses new connections at once; then every
    // connection is told to finish, and each returns its slot when closed.
    drop(listener);
    stop.send_replace(true);
    let _all_closed = slots.acquire_many(permits).await;
    Ok(())
}

/// Logs a connection closed for its address's cap: each at debug level, and
/// a warning at most once a minute, since behind a proxy (where every
/// client has the proxy's address) the cap must be raised or turned off.
fn refused_past_address_cap(
    peer: SocketAddr,
    limits: ConnectionLimits,
    warned_at: &mut Option<Instant>,
) {
    let address = AddressGroup::of(peer.ip());
    tracing::debug!(%address, "closing a connection: its address has max_connections_per_address open");
    if warned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        *warned_at = Some(Instant::now());
        tracing::warn!(
            %address,
            max_connections_per_address = limits.max_connections_per_address,
            "closing connections from an address that has max_connections_per_address open \
             (behind a proxy, raise the cap or set it to 0); this warning repeats at most once a minute"
        );
    }
}

/// Errors that concern one connection attempt, not the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection open, in the `ticketd_open_connections` gauge while it
/// lives.
struct OpenConnection {
    counted: bool,
}

impl OpenConnection {
    fn counted() -> Self {
        let counted = crate::metrics::enabled();
        if counted {
            crate::metrics::add_to_gauge(crate::metrics::OPEN_CONNECTIONS, 1.0);
        }
        Self { counted }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.counted {
            crate::metrics::add_to_gauge(crate::metrics::OPEN_CONNECTIONS, -1.0);
        }
    }
}

/// Serves one connection from `peer` until it closes, times out, or
/// drains after shutdown; holds `_slots` (its place under the cap and
/// under its address's cap) meanwhile.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _slots: (OwnedSemaphorePermit, CountedSlot<AddressGroup>),
) {
    // Responses are written whole; waiting to coalesce them only adds latency.
    let _ = stream.set_nodelay(true);
    let _open = OpenConnection::counted();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&activity)));
    let service = ConnectionService::new(router, Arc::clone(&activity), peer);
    let connection = http1::Builder::new()
        .keep_alive(true)
        .max_header_size(limits.max_header_bytes)
        // The activity's watchdog enforces the header-read timeout from a
        // head's first byte, and the idle timeout besides.
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut connection = pin!(connection);
    let timeouts = Timeouts {
        header_read: limits.header_read_timeout,
        idle: limits.idle_timeout,
        unauthenticated_idle: limits.unauthenticated_idle_timeout,
    };
    let mut expired = pin!(activity.expired(timeouts));
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            why = &mut expired => {
                match why {
                    Expiry::HeaderRead => tracing::debug!("closing a connection: request head not received in time"),
                    Expiry::Idle => tracing::debug!("closing an idle connection"),
                }
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_under_the_open_file_limit() {
        assert_eq!(default_max_connections(None), 10_000);
        assert_eq!(default_max_connections(Some(1_048_576)), 10_000);
        assert_eq!(default_max_connections(Some(10_256)), 10_000);
        assert_eq!(default_max_connections(Some(1024)), 768);
        assert_eq!(default_max_connections(Some(300)), 150);
        assert_eq!(default_max_connections(Some(1)), 1);
    }

    #[test]
    fn the_default_per_address_cap_is_a_quarter_of_a_small_server() {
        assert_eq!(default_max_connections_per_address(10_000), 64);
        assert_eq!(default_max_connections_per_address(768), 64);
        assert_eq!(default_max_connections_per_address(200), 50);
        assert_eq!(default_max_connections_per_address(20), 5);
        assert_eq!(default_max_connections_per_address(3), 1);
        assert_eq!(default_max_connections_per_address(1), 1);
    }

    #[test]
    fn reads_the_soft_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_file_limit(unlimited), None);
        assert_eq!(parse_open_file_limit(""), None);
    }
}
