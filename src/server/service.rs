//! The application as a hyper service for one connection, telling the
//! connection's [`Activity`] when each request starts, is authenticated, is
//! answered and is done, and telling the application who the client is
//! ([`ConnectInfo`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tower::ServiceExt;

use super::Authenticated;
use super::activity::Activity;

/// The router, serving one connection.
#[derive(Clone)]
pub(super) struct ConnectionService {
    router: Router,
    activity: Arc<Activity>,
    peer: SocketAddr,
}

impl ConnectionService {
    /// Serves `router` on the connection from `peer` whose activity is
    /// `activity`.
    pub fn new(router: Router, activity: Arc<Activity>, peer: SocketAddr) -> Self {
        Self {
            router,
            activity,
            peer,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let done = RequestDone {
            activity: Arc::clone(&self.activity),
            request: self.activity.request_started(),
        };
        let router = self.router.clone();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        Box::pin(async move {
            let response = router.oneshot(request).await?;
            if response.extensions().get::<Authenticated>().is_some() {
                done.activity.authenticated();
            }
            done.activity.responding(done.request);
            Ok(response.map(|inner| TrackedBody { inner, _done: done }))
        })
    }
}

/// Ends its request's activity when dropped: when the response body has
/// been written, or when the request was abandoned.
struct RequestDone {
    activity: Arc<Activity>,
    request: u64,
}

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.activity.finished(self.request);
    }
}

/// A response body that marks its request done once hyper drops it.
pub(super) struct TrackedBody {
    inner: Body,
    _done: RequestDone,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
