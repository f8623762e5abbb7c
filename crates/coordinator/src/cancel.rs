//! Telling a cancelled upload from a finished one. tonic 0.14 ends a
//! request stream whose client cancelled (RST_STREAM CANCEL, the connection
//! staying up: a dropped call future, Python's `future.cancel()`, Go's
//! context cancel) exactly as if the client had finished sending
//! (`codec/decode.rs`), so SubmitJob would seal a partial upload as a
//! complete job. This layer wraps every request body and records any error
//! it ends with in the request's extensions; the upload checks it before
//! sealing.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::Status;

/// Set once the request body has ended in an error (the client cancelled
/// the call or the connection broke).
#[derive(Clone, Debug, Default)]
pub(crate) struct BodyFailed(Arc<AtomicBool>);

impl BodyFailed {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The tower layer that watches request bodies.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WatchBodies;

impl<S> tower::Layer<S> for WatchBodies {
    type Service = Watched<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Watched { inner }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Watched<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for Watched<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let failed = BodyFailed::default();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(failed.clone());
        let body = Body::new(WatchedBody {
            inner: body,
            failed,
        });
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

struct WatchedBody {
    inner: Body,
    failed: BodyFailed,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &frame {
            this.failed.0.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
