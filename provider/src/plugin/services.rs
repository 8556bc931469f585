//! go-plugin's own gRPC services that Terraform's plugin client talks to
//! besides the provider: controller (shutdown), stdio and broker.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use tfplugin_proto::plugin::grpc_broker_server::GrpcBroker;
use tfplugin_proto::plugin::grpc_controller_server::GrpcController;
use tfplugin_proto::plugin::grpc_stdio_server::GrpcStdio;
use tfplugin_proto::plugin::{ConnInfo, Empty, StdioData};

/// `plugin.GRPCController`: Terraform calls `Shutdown` when it is done with
/// the provider, then kills the process if it has not exited within ~2 s.
pub(crate) struct Controller {
    pub(crate) shutdown: CancellationToken,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::debug!("plugin received Shutdown from Terraform, stopping");
        // The response still goes out: graceful shutdown lets in-flight
        // calls (this one included) finish.
        self.shutdown.cancel();
        Ok(Response::new(Empty {}))
    }
}

/// `plugin.GRPCStdio`: Terraform opens one stream right after connecting to
/// receive output the plugin wants mirrored. We log to stderr directly, so
/// the stream stays idle; it ends at shutdown so it cannot hold up the
/// graceful stop.
pub(crate) struct Stdio {
    pub(crate) shutdown: CancellationToken,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    async fn stream_stdio(&self, _request: Request<()>) -> Result<Response<BoxStream<StdioData>>, Status> {
        tracing::trace!("Terraform opened the stdio stream");
        Ok(Response::new(open_until(self.shutdown.clone(), |_tx| std::future::pending::<()>())))
    }
}

/// `plugin.GRPCBroker`: lets a plugin and its host open extra connections to
/// each other. Providers never need it, but the client opens the control
/// stream at connect time, so it is kept open (and ignored) until the client
/// closes it or the plugin shuts down.
pub(crate) struct Broker {
    pub(crate) shutdown: CancellationToken,
}

#[tonic::async_trait]
impl GrpcBroker for Broker {
    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<BoxStream<ConnInfo>>, Status> {
        tracing::trace!("Terraform opened the broker stream");
        let mut inbound = request.into_inner();
        Ok(Response::new(open_until(self.shutdown.clone(), |_tx| async move {
            // Drain until the client closes its side; we never broker anything.
            while let Ok(Some(info)) = inbound.message().await {
                tracing::debug!(service_id = info.service_id, "ignoring broker connection offer");
            }
        })))
    }
}

/// A server stream that stays open until `shutdown` fires or `until`
/// finishes, whichever comes first. `until` gets the sender in case it wants
/// to push items.
fn open_until<T, F, Fut>(shutdown: CancellationToken, until: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8);
    let work = until(tx.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = work => {}
        }
        // Dropping the last sender ends the response stream cleanly.
        drop(tx);
    });
    Box::pin(ReceiverStream::new(rx))
}
