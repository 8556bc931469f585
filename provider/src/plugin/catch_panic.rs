//! Turns a panic inside an RPC handler into a gRPC `Internal` error.
//!
//! Without this, tonic drops the HTTP/2 stream of a panicking handler and
//! Terraform 1.0.3 shows only "Request cancelled: The ... request was
//! cancelled" — the panic text reaches the user only with `TF_LOG` set.
//! With it, Terraform prints "Plugin error ... rpc error: code = Internal
//! desc = the provider panicked: <message>", and the provider keeps serving.
//! (The panic hook installed by `init_logging` still logs the backtrace.)

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::server::NamedService;
use tonic::Status;

/// Wraps a generated gRPC service server (keeps its service name).
#[derive(Debug, Clone)]
pub(crate) struct CatchPanic<S>(pub(crate) S);

impl<S: NamedService> NamedService for CatchPanic<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for CatchPanic<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = CatchPanicFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.0.call(request))) {
            Ok(future) => CatchPanicFuture::Running(Box::pin(future)),
            Err(payload) => CatchPanicFuture::Panicked(Some(panic_status(payload.as_ref()))),
        }
    }
}

/// Response future of [`CatchPanic`].
pub(crate) enum CatchPanicFuture {
    /// The handler is running.
    Running(Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>),
    /// Creating the handler future already panicked.
    Panicked(Option<Status>),
}

impl Future for CatchPanicFuture {
    type Output = Result<http::Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            CatchPanicFuture::Running(future) => match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                Ok(poll) => poll,
                Err(payload) => Poll::Ready(Ok(panic_status(payload.as_ref()).into_http())),
            },
            CatchPanicFuture::Panicked(status) => {
                let status = status.take().unwrap_or_else(|| Status::internal("the provider panicked"));
                Poll::Ready(Ok(status.into_http()))
            }
        }
    }
}

fn panic_status(payload: &(dyn Any + Send)) -> Status {
    Status::internal(format!(
        "the provider panicked: {} (this is a bug in the provider; its log has the backtrace)",
        super::logging::panic_message(payload)
    ))
}
