//! End-to-end tests of the go-plugin transport (`plugin` module): a server
//! started in-process with a dummy provider, reached the way Terraform does —
//! over the unix socket from the handshake line, with mutual TLS using a
//! P-521 client certificate generated like go-plugin's `generateCert`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use terraform_provider_kvm::plugin::{self, LaunchEnv, PluginError, ServeContext, ServeOptions, MAGIC_COOKIE_VALUE};
use tfplugin_proto::plugin::grpc_broker_client::GrpcBrokerClient;
use tfplugin_proto::plugin::grpc_controller_client::GrpcControllerClient;
use tfplugin_proto::plugin::grpc_stdio_client::GrpcStdioClient;
use tfplugin_proto::plugin::{ConnInfo, Empty};
use tfplugin_proto::tfplugin6::provider_client::ProviderClient;
use tfplugin_proto::tfplugin6::provider_server::Provider;
use tfplugin_proto::tfplugin6::{get_provider_schema, schema, validate_provider_config, Schema};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const STEP: Duration = Duration::from_secs(10);

/// Provider whose only implemented RPC is GetProviderSchema (empty schema).
struct Dummy;

#[tonic::async_trait]
impl Provider for Dummy {
    async fn get_provider_schema(
        &self,
        _request: Request<get_provider_schema::Request>,
    ) -> Result<Response<get_provider_schema::Response>, Status> {
        Ok(Response::new(get_provider_schema::Response {
            provider: Some(Schema { version: 0, block: Some(schema::Block::default()) }),
            ..Default::default()
        }))
    }
}

/// Provider whose GetProviderSchema panics (a provider bug).
struct Panicky;

#[tonic::async_trait]
impl Provider for Panicky {
    async fn get_provider_schema(
        &self,
        _request: Request<get_provider_schema::Request>,
    ) -> Result<Response<get_provider_schema::Response>, Status> {
        panic!("schema table is corrupt");
    }
}

/// Captures what the server writes to "stdout".
struct StdoutSink(mpsc::UnboundedSender<Vec<u8>>);

impl Write for StdoutSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A certificate + key like go-plugin's `generateCert`: ECDSA P-521 with
/// SHA-512, self-signed, CA=true, CN/SAN localhost, client+server EKU.
struct GoPluginCert {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

fn go_plugin_cert() -> GoPluginCert {
    use rcgen::*;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P521_SHA512).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    dn.push(DnType::OrganizationName, "HashiCorp");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::seconds(30);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let cert = params.self_signed(&key).unwrap();
    GoPluginCert { der: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key.serialize_der()), pem: cert.pem() }
}

/// Trusts exactly the certificate from the handshake line, as go-plugin's
/// client does (it makes that certificate its only root).
#[derive(Debug)]
struct PinnedServerCert {
    der: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the handshake line told us.
struct Handshake {
    fields: Vec<String>,
    socket: PathBuf,
    server_cert: Option<Vec<u8>>,
}

/// A running in-process server.
struct Running {
    task: tokio::task::JoinHandle<Result<(), PluginError>>,
    stdout: mpsc::UnboundedReceiver<Vec<u8>>,
}

fn start(env: LaunchEnv, debug: bool) -> Running {
    start_provider(Dummy, env, debug)
}

fn start_provider<P: Provider>(provider: P, env: LaunchEnv, debug: bool) -> Running {
    let (tx, stdout) = mpsc::unbounded_channel();
    let ctx = ServeContext { env, stdout: Box::new(StdoutSink(tx)), exit_watchdog: false, handle_signals: false };
    let opts = ServeOptions { debug, provider_address: "registry.terraform.io/kvm/kvm".into() };
    let task = tokio::spawn(plugin::serve_with(provider, opts, ctx));
    Running { task, stdout }
}

fn terraform_env(client_cert_pem: Option<String>) -> LaunchEnv {
    LaunchEnv {
        magic_cookie: Some(MAGIC_COOKIE_VALUE.to_owned()),
        protocol_versions: Some("5,6".to_owned()),
        client_cert_pem,
        disable_tls: false,
        unix_socket_dir: None,
    }
}

/// Reads stdout until the first newline.
async fn read_stdout_line(running: &mut Running) -> String {
    let mut buf = Vec::new();
    while !buf.contains(&b'\n') {
        let chunk = tokio::time::timeout(STEP, running.stdout.recv()).await.expect("stdout in time").expect("stdout");
        buf.extend(chunk);
    }
    String::from_utf8(buf).unwrap()
}

async fn handshake(running: &mut Running) -> Handshake {
    let text = read_stdout_line(running).await;
    let line = text.strip_suffix('\n').expect("newline-terminated");
    assert!(!line.contains('\n'), "exactly one line: {text:?}");
    let fields: Vec<String> = line.split('|').map(str::to_owned).collect();
    assert_eq!(fields.len(), 6, "{line}");
    let server_cert = (!fields[5].is_empty())
        .then(|| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&fields[5]).expect("unpadded base64 DER"));
    Handshake { socket: PathBuf::from(&fields[3]), server_cert, fields }
}

async fn connect_tls(hs: &Handshake, client: Option<&GoPluginCert>) -> Result<Channel, tonic::transport::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PinnedServerCert {
        der: hs.server_cert.clone().expect("TLS handshake line"),
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client {
        Some(c) => builder.with_client_auth_cert(vec![c.der.clone()], PrivateKeyDer::Pkcs8(c.key.clone_key())).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let socket = hs.socket.clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            let socket = socket.clone();
            async move {
                let stream = UnixStream::connect(socket).await?;
                let tls = connector.connect(ServerName::try_from("localhost").unwrap(), stream).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

async fn connect_plain(hs: &Handshake) -> Channel {
    let socket = hs.socket.clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .unwrap()
}

async fn health(channel: Channel) -> Result<i32, Status> {
    let mut client = HealthClient::new(channel);
    let resp = tokio::time::timeout(STEP, client.check(HealthCheckRequest { service: "plugin".into() }))
        .await
        .expect("health answer in time")?;
    Ok(resp.into_inner().status)
}

/// Connects with `client` and expects the server to refuse it with the TLS
/// alert `alert` — during connect, or (TLS 1.3 finishes the client side
/// first) on the first call.
async fn assert_refused(hs: &Handshake, client: Option<&GoPluginCert>, alert: &str) {
    let error = match tokio::time::timeout(STEP, connect_tls(hs, client)).await.expect("connect in time") {
        Err(e) => format!("{e:?}"),
        Ok(channel) => format!("{:?}", health(channel).await.expect_err("connection must be refused")),
    };
    assert!(error.contains(alert), "expected TLS alert {alert}, got {error}");
}

/// Calls Shutdown and checks the server task ends (gracefully) within 2 s,
/// even with the long-lived stdio and broker streams open, and removes its
/// socket.
async fn shutdown_within_2s(channel: Channel, running: Running, socket: PathBuf) {
    // Open the streams Terraform keeps open for the whole session.
    let mut stdio = GrpcStdioClient::new(channel.clone()).stream_stdio(()).await.unwrap().into_inner();
    let (_broker_tx, broker_rx) = mpsc::channel::<ConnInfo>(1);
    let mut broker = GrpcBrokerClient::new(channel.clone())
        .start_stream(tokio_stream::wrappers::ReceiverStream::new(broker_rx))
        .await
        .unwrap()
        .into_inner();
    // Both stay open while the server runs.
    assert!(tokio::time::timeout(Duration::from_millis(200), stdio.message()).await.is_err());
    assert!(tokio::time::timeout(Duration::from_millis(200), broker.message()).await.is_err());

    let started = std::time::Instant::now();
    GrpcControllerClient::new(channel).shutdown(Empty {}).await.expect("Shutdown answered");
    let result = tokio::time::timeout(Duration::from_secs(2), running.task)
        .await
        .expect("server stopped within 2 s of Shutdown")
        .expect("server task did not panic");
    assert!(result.is_ok(), "graceful stop: {result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!socket.exists(), "socket {} removed", socket.display());
    // The streams ended with the server.
    assert!(matches!(stdio.message().await, Ok(None) | Err(_)));
    assert!(matches!(broker.message().await, Ok(None) | Err(_)));
}

#[tokio::test]
async fn mtls_health_schema_rejection_and_shutdown() {
    let client = go_plugin_cert();
    let mut running = start(terraform_env(Some(client.pem.clone())), false);
    let hs = handshake(&mut running).await;
    assert_eq!(&hs.fields[..3], &["1", "6", "unix"]);
    assert_eq!(hs.fields[4], "grpc");
    assert!(hs.socket.is_absolute());
    assert!(hs.server_cert.as_ref().is_some_and(|c| c.len() > 50));

    let channel = tokio::time::timeout(STEP, connect_tls(&hs, Some(&client))).await.unwrap().expect("mTLS connect");
    assert_eq!(health(channel.clone()).await.unwrap(), ServingStatus::Serving as i32);

    let mut provider = ProviderClient::new(channel.clone());
    let schema = provider.get_provider_schema(get_provider_schema::Request {}).await.unwrap().into_inner();
    assert!(schema.provider.is_some_and(|p| p.block.is_some()));
    // RPCs the provider does not implement answer Unimplemented (which
    // Terraform reports as "Unsupported plugin method").
    let err = provider.validate_provider_config(validate_provider_config::Request { config: None }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    // A different client certificate (same shape, other key) is refused
    // with a TLS alert, and so is a client without any certificate.
    let stranger = go_plugin_cert();
    assert_refused(&hs, Some(&stranger), "AccessDenied").await;
    assert_refused(&hs, None, "CertificateRequired").await;
    // The legitimate connection still works after the rejections.
    assert_eq!(health(channel.clone()).await.unwrap(), ServingStatus::Serving as i32);

    let socket = hs.socket.clone();
    shutdown_within_2s(channel, running, socket).await;
}

#[tokio::test]
async fn plaintext_when_tls_disabled() {
    let client = go_plugin_cert();
    let mut env = terraform_env(Some(client.pem));
    env.disable_tls = true;
    let mut running = start(env, false);
    let hs = handshake(&mut running).await;
    assert_eq!(hs.fields[5], "", "no certificate in a plaintext handshake");
    let channel = connect_plain(&hs).await;
    assert_eq!(health(channel.clone()).await.unwrap(), ServingStatus::Serving as i32);
    shutdown_within_2s(channel, running, hs.socket).await;
}

#[tokio::test]
async fn plaintext_without_client_cert() {
    let mut running = start(terraform_env(None), false);
    let hs = handshake(&mut running).await;
    assert!(hs.server_cert.is_none());
    let channel = connect_plain(&hs).await;
    let schema = ProviderClient::new(channel.clone())
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .unwrap()
        .into_inner();
    assert!(schema.provider.is_some());
    shutdown_within_2s(channel, running, hs.socket).await;
}

#[tokio::test]
async fn debug_mode_prints_reattach_line_and_needs_no_cookie() {
    let env = LaunchEnv { unix_socket_dir: Some(std::env::temp_dir()), ..LaunchEnv::default() };
    let mut running = start(env, true);
    let mut text = String::new();
    let line = loop {
        text.push_str(&read_stdout_line(&mut running).await);
        if let Some(l) = text.lines().find(|l| l.starts_with("TF_REATTACH_PROVIDERS=")) {
            break l.to_owned();
        }
    };
    let json = line.strip_prefix("TF_REATTACH_PROVIDERS='").and_then(|s| s.strip_suffix('\'')).unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let p = &v["registry.terraform.io/kvm/kvm"];
    assert_eq!(p["ProtocolVersion"], 6);
    assert_eq!(p["Pid"], std::process::id());
    assert_eq!(p["Addr"]["Network"], "unix");
    let socket = PathBuf::from(p["Addr"]["String"].as_str().unwrap());
    let hs = Handshake { fields: vec![], socket: socket.clone(), server_cert: None };
    let channel = connect_plain(&hs).await;
    assert_eq!(health(channel.clone()).await.unwrap(), ServingStatus::Serving as i32);
    shutdown_within_2s(channel, running, socket).await;
}

#[tokio::test]
async fn handler_panic_becomes_internal_error_and_server_survives() {
    let mut running = start_provider(Panicky, terraform_env(None), false);
    let hs = handshake(&mut running).await;
    let channel = connect_plain(&hs).await;
    let mut provider = ProviderClient::new(channel.clone());
    for _ in 0..2 {
        let err = provider.get_provider_schema(get_provider_schema::Request {}).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");
        assert!(err.message().contains("the provider panicked: schema table is corrupt"), "{err:?}");
    }
    assert_eq!(health(channel.clone()).await.unwrap(), ServingStatus::Serving as i32);
    shutdown_within_2s(channel, running, hs.socket).await;
}

#[tokio::test]
async fn refuses_to_start_without_magic_cookie() {
    let env = LaunchEnv { magic_cookie: Some("wrong".into()), ..terraform_env(None) };
    let mut running = start(env, false);
    let result = tokio::time::timeout(STEP, &mut running.task).await.unwrap().unwrap();
    assert!(matches!(result, Err(PluginError::NotLaunchedByTerraform)), "{result:?}");
    assert!(running.stdout.try_recv().is_err(), "nothing on stdout");
}
