//! Identity federation and mutual TLS over real loopback sockets (issue 4,
//! DESIGN.md §4): a small hand-written tonic service behind the real accept
//! loop, verifier and authorization layer. Certificates are made at test
//! time with the library's rcgen issuer. Every refusal asserts both that the
//! call failed and that the server (or client) logged the specific reason,
//! captured from tracing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut};
use escrowd::identity::authz::{authorized_saga, caller, AuthLayer, MethodRules, Rule};
use escrowd::identity::issue::{self, Ca, CaPaths, DomainPlan, LeafRequest, Validity};
use escrowd::identity::server::ConnectionAge;
use escrowd::identity::tls::{client_config, load_certified_key, IdentityHandle, TlsSettings};
use escrowd::identity::{self as id, authorize, Access, Federation, SpiffeId, TrustStore};
use rustls::time_provider::DefaultTimeProvider;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

// ---------------------------------------------------------------- harness

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "escrowd-identity-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Captured tracing output of the current test (current-thread runtime, so
/// server tasks log into the same thread-local subscriber).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn install() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits (bounded) for a line containing every needle; returns it.
    async fn line_with(&self, needles: &[&str]) -> String {
        for _ in 0..500 {
            if let Some(line) = self
                .text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no log line with {needles:?}; log was:\n{}", self.text());
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sid(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

const GA: &str = "spiffe://org-a.example/gateway/org-a";
const GB: &str = "spiffe://org-b.example/gateway/org-b";
const DAY: u64 = 86_400;

/// The default dev federation (`certs init`), written to a temp dir.
struct Pki {
    dir: TempDir,
    extra: AtomicUsize,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new();
        issue::init(&dir.0, &DomainPlan::defaults(), now(), 2, false).unwrap();
        Pki {
            dir,
            extra: AtomicUsize::new(0),
        }
    }

    fn path(&self) -> &Path {
        &self.dir.0
    }

    fn federation(&self) -> PathBuf {
        self.path().join("federation.toml")
    }

    /// Settings for a leaf `certs init` wrote, e.g. `org-b.example/gateway-org-b`.
    fn settings(&self, leaf: &str) -> TlsSettings {
        TlsSettings {
            federation: self.federation(),
            cert: self.path().join(format!("{leaf}.pem")),
            key: self.path().join(format!("{leaf}.key")),
        }
    }

    /// The CA of `domain` (one `certs init` wrote).
    fn ca(&self, domain: &str) -> Ca {
        let d = domain.parse().unwrap();
        let p = CaPaths::new(self.path(), &d);
        Ca::load(&d, &p.cert, &p.key).unwrap()
    }

    /// Issues `id` from `ca` with `validity`, written to fresh files; returns (cert, key, serial).
    fn leaf_from(&self, ca: &Ca, id: &str, validity: Validity) -> (PathBuf, PathBuf, String) {
        let leaf = ca
            .issue(&LeafRequest {
                id: sid(id),
                validity,
                dns: vec![],
                ips: vec![],
            })
            .unwrap();
        let n = self.extra.fetch_add(1, Ordering::SeqCst);
        let cert = self.path().join(format!("extra-{n}.pem"));
        let key = self.path().join(format!("extra-{n}.key"));
        issue::write_file(&cert, &leaf.cert_pem, false, false).unwrap();
        issue::write_file(&key, &leaf.key_pem, true, false).unwrap();
        (cert, key, leaf.serial)
    }

    fn leaf(&self, ca_domain: &str, id: &str) -> (PathBuf, PathBuf, String) {
        self.leaf_from(&self.ca(ca_domain), id, Validity::days_from(now(), 1))
    }

    /// A client config presenting `cert`/`key` (or nothing) and expecting `expected`.
    fn client(
        &self,
        cert_key: Option<(&Path, &Path)>,
        expected: &str,
    ) -> Arc<rustls::ClientConfig> {
        let trust =
            Arc::new(TrustStore::load(&Federation::load(&self.federation()).unwrap()).unwrap());
        let own = cert_key.map(|(c, k)| Arc::new(load_certified_key(c, k).unwrap()));
        Arc::new(client_config(trust, sid(expected), own, Arc::new(DefaultTimeProvider)).unwrap())
    }

    fn init_client(&self, leaf: &str, expected: &str) -> Arc<rustls::ClientConfig> {
        let s = self.settings(leaf);
        self.client(Some((&s.cert, &s.key)), expected)
    }
}

// ------------------------------------------------------ the test service

/// Raw-bytes gRPC codec: the probe service needs no protobuf.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Answers every call with "<caller SPIFFE ID> <authorized saga or ->".
#[derive(Clone)]
struct Echo;

impl UnaryService<Vec<u8>> for Echo {
    type Response = Vec<u8>;
    type Future = BoxFuture<tonic::Response<Vec<u8>>, Status>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        let answer = caller(&request).map(|peer| {
            format!("{} {}", peer.id(), authorized_saga(&request).unwrap_or("-")).into_bytes()
        });
        Box::pin(async move { answer.map(tonic::Response::new) })
    }
}

const SERVICE: &str = "escrow.test.v1.Probe";
const PEER: &str = "/escrow.test.v1.Probe/PeerCall";
const ADMIN: &str = "/escrow.test.v1.Probe/AdminCall";
const SUBSCRIBE: &str = "/escrow.test.v1.Probe/Subscribe";
const NOTARY: &str = "/escrow.test.v1.Probe/NotaryCall";

#[derive(Clone)]
struct Probe;

impl NamedService for Probe {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for Probe
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            match req.uri().path() {
                PEER | ADMIN | SUBSCRIBE | NOTARY => {
                    Ok(tonic::server::Grpc::new(RawCodec).unary(Echo, req).await)
                }
                other => Ok(Status::unimplemented(other.to_owned()).into_http()),
            }
        })
    }
}

fn rules() -> MethodRules {
    MethodRules::new()
        .method(PEER, Rule::PeerRpc)
        .method(ADMIN, Rule::AdminRpc)
        .method(SUBSCRIBE, Rule::Subscription)
        .method(NOTARY, Rule::NotaryRpc)
}

/// Serves the probe as `identity` on 127.0.0.1:0. Saga `saga-1`'s parties
/// are GA and GB; `saga-2`'s are GB and a gateway of org-c.
async fn serve(identity: IdentityHandle) -> SocketAddr {
    serve_aged(identity, ConnectionAge::default()).await
}

async fn serve_aged(identity: IdentityHandle, age: ConnectionAge) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sagas: HashMap<String, Vec<SpiffeId>> = HashMap::from([
        ("saga-1".to_owned(), vec![sid(GA), sid(GB)]),
        (
            "saga-2".to_owned(),
            vec![sid(GB), sid("spiffe://org-c.example/gateway/org-c")],
        ),
    ]);
    let parties = Arc::new(move |saga: &str| sagas.get(saga).cloned());
    let layer = AuthLayer::new(identity.clone(), rules(), parties);
    let incoming = id::server::incoming(listener, identity);
    let server = id::server::builder(age)
        .layer(layer)
        .add_service(Probe)
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    addr
}

async fn serve_as(pki: &Pki, leaf: &str) -> (IdentityHandle, SocketAddr) {
    let identity = IdentityHandle::load(pki.settings(leaf)).unwrap();
    let addr = serve(identity.clone()).await;
    (identity, addr)
}

async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_with_connector(id::MtlsConnector::with_config(config))
        .await
        .map_err(|e| error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn rpc(channel: &Channel, method: &str, saga: Option<&str>) -> Result<String, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(error_chain(&e)))?;
    let mut req = tonic::Request::new(Vec::new());
    if let Some(s) = saga {
        req.metadata_mut()
            .insert("escrow-saga-id", s.parse().unwrap());
    }
    let path = http::uri::PathAndQuery::try_from(method).unwrap();
    let reply = grpc.unary(req, path, RawCodec).await?;
    Ok(String::from_utf8(reply.into_inner()).unwrap())
}

/// Connects and makes one call; any failure (handshake or status) as text.
async fn call_once(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    saga: Option<&str>,
) -> Result<String, String> {
    let channel = connect(addr, config).await?;
    rpc(&channel, method, saga)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

// ------------------------------------------------------------- accepted

#[tokio::test]
async fn accepts_gateway_of_the_other_domain_that_is_party_to_the_saga() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let (_id, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let client = pki.init_client("org-a.example/gateway-org-a", GB);
    let answer = call_once(addr, client, PEER, Some("saga-1")).await;
    assert_eq!(answer, Ok(format!("{GA} saga-1")), "log:\n{}", logs.text());
    assert!(!logs.text().contains("refused"), "{}", logs.text());
}

// ------------------------------------------- refused in the TLS handshake

/// Presents `cert`/`key` to GB; asserts the call fails and GB logged every needle.
async fn assert_handshake_refused(pki: &Pki, cert_key: Option<(&Path, &Path)>, needles: &[&str]) {
    let (logs, _g) = Logs::install();
    let (_id, addr) = serve_as(pki, "org-b.example/gateway-org-b").await;
    let result = call_once(addr, pki.client(cert_key, GB), PEER, Some("saga-1")).await;
    assert!(result.is_err(), "call succeeded: {result:?}");
    let line = logs.line_with(needles).await;
    assert!(line.contains("reason="), "{line}");
    assert!(
        line.contains("WARN") && line.contains("mtls_accept{remote=127.0.0.1:"),
        "{line}"
    );
}

#[tokio::test]
async fn refuses_a_client_without_certificate() {
    let pki = Pki::new();
    assert_handshake_refused(
        &pki,
        None,
        &[
            "TLS handshake refused",
            "reason=client presented no certificate",
        ],
    )
    .await;
}

#[tokio::test]
async fn refuses_a_certificate_from_an_unknown_ca() {
    let pki = Pki::new();
    let rogue = Ca::generate(
        &"org-a.example".parse().unwrap(),
        Validity::days_from(now(), 1),
    )
    .unwrap();
    let (cert, key, _) = pki.leaf_from(&rogue, GA, Validity::days_from(now(), 1));
    assert_handshake_refused(
        &pki,
        Some((&cert, &key)),
        &[
            "client certificate refused",
            "spiffe://org-a.example/gateway/org-a: certificate is not issued by any federated CA",
        ],
    )
    .await;
}

#[tokio::test]
async fn refuses_a_federated_ca_minting_another_domains_identity() {
    let pki = Pki::new();
    let (cert, key, _) = pki.leaf("notary.example", GA);
    assert_handshake_refused(
        &pki,
        Some((&cert, &key)),
        &[
            "client certificate refused",
            "spiffe://org-a.example/gateway/org-a: claims trust domain org-a.example but was issued by the CA of notary.example",
        ],
    )
    .await;
}

#[tokio::test]
async fn refuses_an_expired_certificate() {
    let pki = Pki::new();
    let t = now();
    let validity = Validity {
        not_before: t - 10 * DAY,
        not_after: t - DAY,
    };
    let (cert, key, _) = pki.leaf_from(&pki.ca("org-a.example"), GA, validity);
    assert_handshake_refused(
        &pki,
        Some((&cert, &key)),
        &[
            "client certificate refused",
            "spiffe://org-a.example/gateway/org-a: certificate expired (not valid after",
        ],
    )
    .await;
}

#[tokio::test]
async fn refuses_a_certificate_not_yet_valid() {
    let pki = Pki::new();
    let t = now();
    let validity = Validity {
        not_before: t + DAY,
        not_after: t + 10 * DAY,
    };
    let (cert, key, _) = pki.leaf_from(&pki.ca("org-a.example"), GA, validity);
    assert_handshake_refused(
        &pki,
        Some((&cert, &key)),
        &[
            "client certificate refused",
            "spiffe://org-a.example/gateway/org-a: certificate not yet valid (not valid before",
        ],
    )
    .await;
}

#[tokio::test]
async fn refuses_a_certificate_revoked_by_crl() {
    let pki = Pki::new();
    let (cert, key, serial) = pki.leaf("org-a.example", GA);
    issue::revoke(
        pki.path(),
        &"org-a.example".parse().unwrap(),
        std::slice::from_ref(&serial),
        now(),
        1,
    )
    .unwrap();
    let reason =
        format!("spiffe://org-a.example/gateway/org-a: certificate revoked (serial {serial})");
    assert_handshake_refused(
        &pki,
        Some((&cert, &key)),
        &["client certificate refused", &reason],
    )
    .await;
}

#[tokio::test]
async fn refuses_a_role_not_allowed_for_its_domain() {
    let pki = Pki::new();
    let (cert, key, _) = pki.leaf("notary.example", "spiffe://notary.example/gateway/rogue");
    assert_handshake_refused(
        &pki,
        Some((&cert, &key)),
        &[
            "client certificate refused",
            "spiffe://notary.example/gateway/rogue: role gateway is not allowed for trust domain notary.example",
        ],
    )
    .await;
}

// ------------------------------------------ refused after the handshake

#[tokio::test]
async fn denies_a_role_not_allowed_for_the_rpc() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let (_id, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let observer = connect(
        addr,
        pki.init_client("observer.example/observer-observer", GB),
    )
    .await
    .unwrap();
    let status = rpc(&observer, PEER, Some("saga-1")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let expected = "permission denied by rule peer-rpc: peer RPCs are for a gateway of another trust domain that is a \
                    party to the saga; caller spiffe://observer.example/observer/observer is an observer of observer.example";
    assert_eq!(status.message(), expected);
    logs.line_with(&[
        "RPC refused",
        "method=/escrow.test.v1.Probe/PeerCall",
        &format!("reason={expected}"),
    ])
    .await;

    // The same caller may subscribe, and a gateway of the other domain may not administer us.
    assert_eq!(
        rpc(&observer, SUBSCRIBE, None).await.unwrap(),
        "spiffe://observer.example/observer/observer -"
    );
    let ga = connect(addr, pki.init_client("org-a.example/gateway-org-a", GB))
        .await
        .unwrap();
    let status = rpc(&ga, ADMIN, None).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "permission denied by rule admin-rpc: admin RPCs are for an operator of our own trust domain; \
         caller spiffe://org-a.example/gateway/org-a is a gateway of org-a.example"
    );
}

#[tokio::test]
async fn denies_a_gateway_that_is_not_a_party_to_the_saga() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let (_id, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let ga = connect(addr, pki.init_client("org-a.example/gateway-org-a", GB))
        .await
        .unwrap();
    let status = rpc(&ga, PEER, Some("saga-2")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let expected =
        "permission denied by rule peer-rpc: caller spiffe://org-a.example/gateway/org-a is not a party to saga saga-2";
    assert_eq!(status.message(), expected);
    logs.line_with(&["RPC refused", expected]).await;

    let status = rpc(&ga, PEER, Some("saga-404")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("saga saga-404 is unknown"),
        "{}",
        status.message()
    );
    let status = rpc(&ga, PEER, None).await.unwrap_err();
    assert_eq!(
        status.message(),
        "permission denied by rule peer-rpc: the call carries no escrow-saga-id metadata"
    );
    // Still fine for its own saga on the same connection.
    assert_eq!(
        rpc(&ga, PEER, Some("saga-1")).await.unwrap(),
        format!("{GA} saga-1")
    );
}

#[tokio::test]
async fn denies_a_method_without_a_rule() {
    let (_logs, _g) = Logs::install();
    let pki = Pki::new();
    let (_id, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let ga = connect(addr, pki.init_client("org-a.example/gateway-org-a", GB))
        .await
        .unwrap();
    let status = rpc(&ga, "/escrow.test.v1.Probe/Unlisted", None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "permission denied: no authorization rule covers /escrow.test.v1.Probe/Unlisted"
    );
}

// ---------------------------------------------------------- client side

#[tokio::test]
async fn client_refuses_a_server_with_the_wrong_spiffe_id() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let (cert, key, _) = pki.leaf("org-b.example", "spiffe://org-b.example/gateway/impostor");
    let settings = TlsSettings {
        federation: pki.federation(),
        cert,
        key,
    };
    let addr = serve(IdentityHandle::load(settings).unwrap()).await;
    let err = call_once(
        addr,
        pki.init_client("org-a.example/gateway-org-a", GB),
        PEER,
        Some("saga-1"),
    )
    .await
    .unwrap_err();
    let reason =
        "server presented spiffe://org-b.example/gateway/impostor, expected spiffe://org-b.example/gateway/org-b";
    assert!(err.contains(reason), "{err}");
    logs.line_with(&["server certificate refused", reason])
        .await;
}

#[tokio::test]
async fn client_for_peer_uses_our_identity_and_expects_the_peer() {
    let (_logs, _g) = Logs::install();
    let pki = Pki::new();
    let (_gb, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let ga = IdentityHandle::load(pki.settings("org-a.example/gateway-org-a")).unwrap();
    assert_eq!(ga.own_id(), sid(GA));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(id::MtlsConnector::for_peer(ga, sid(GB)))
        .await
        .unwrap();
    assert_eq!(
        rpc(&channel, PEER, Some("saga-1")).await.unwrap(),
        format!("{GA} saga-1")
    );
}

// -------------------------------------------------------------- reloads

#[tokio::test]
async fn reloaded_crl_refuses_a_revoked_certificate_on_new_and_existing_connections() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let (gb, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let (cert, key, serial) = pki.leaf("org-a.example", GA);
    let revoked_client = pki.client(Some((&cert, &key)), GB);
    let ga = connect(addr, revoked_client.clone()).await.unwrap();
    let observer = connect(
        addr,
        pki.init_client("observer.example/observer-observer", GB),
    )
    .await
    .unwrap();
    assert_eq!(
        rpc(&ga, PEER, Some("saga-1")).await.unwrap(),
        format!("{GA} saga-1")
    );
    assert!(rpc(&observer, SUBSCRIBE, None).await.is_ok());

    issue::revoke(
        pki.path(),
        &"org-a.example".parse().unwrap(),
        std::slice::from_ref(&serial),
        now(),
        1,
    )
    .unwrap();
    assert_eq!(gb.reload().unwrap(), 1);

    // The next RPC over the existing connection is refused…
    let status = rpc(&ga, PEER, Some("saga-1")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let reason =
        format!("spiffe://org-a.example/gateway/org-a: certificate revoked (serial {serial})");
    assert_eq!(status.message(), reason);
    logs.line_with(&["RPC refused", &reason]).await;
    // …a new connection fails in the handshake…
    assert!(call_once(addr, revoked_client, PEER, Some("saga-1"))
        .await
        .is_err());
    logs.line_with(&["client certificate refused", &reason])
        .await;
    // …and connections of certificates still valid were not dropped.
    assert_eq!(
        rpc(&observer, SUBSCRIBE, None).await.unwrap(),
        "spiffe://observer.example/observer/observer -"
    );
}

// SIGHUP reaches every watcher in this test process; the watcher tests
// below tolerate reloads caused by each other.
#[tokio::test]
async fn sighup_reloads_the_identity() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let (gb, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let mut generations = gb.generations();
    // A long poll: only the signal can cause this reload.
    let watcher = gb.spawn_watcher(Duration::from_secs(3600)).unwrap();
    let (cert, key, serial) = pki.leaf("org-a.example", GA);
    issue::revoke(
        pki.path(),
        &"org-a.example".parse().unwrap(),
        &[serial],
        now(),
        1,
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), generations.changed())
        .await
        .unwrap()
        .unwrap();
    logs.line_with(&["identity reloaded", "cause=SIGHUP", "generation=1"])
        .await;
    assert!(!gb.files_changed());
    assert!(call_once(
        addr,
        pki.client(Some((&cert, &key)), GB),
        PEER,
        Some("saga-1")
    )
    .await
    .is_err());
    watcher.abort();
}

// Paused clock: the polls run on tokio time, the files are real.
#[tokio::test(start_paused = true)]
async fn a_changed_crl_file_is_reloaded() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let gb = IdentityHandle::load(pki.settings("org-b.example/gateway-org-b")).unwrap();
    assert!(!gb.files_changed());
    let watcher = gb.spawn_watcher(Duration::from_millis(20)).unwrap();
    let (_, _, serial) = pki.leaf("org-a.example", GA);
    issue::revoke(
        pki.path(),
        &"org-a.example".parse().unwrap(),
        &[serial],
        now(),
        1,
    )
    .unwrap();
    assert!(gb.files_changed());
    logs.line_with(&["identity reloaded", "cause=file change"])
        .await;
    assert!(!gb.files_changed());
    watcher.abort();
}

// Paused clock: the polls run on tokio time, the files are real.
#[tokio::test(start_paused = true)]
async fn a_broken_file_is_reported_once_and_the_old_configuration_kept() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let gb = IdentityHandle::load(pki.settings("org-b.example/gateway-org-b")).unwrap();
    let watcher = gb.spawn_watcher(Duration::from_millis(20)).unwrap();
    let crl = pki.path().join("org-a.example/crl.pem");
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\n!!!!\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let line = logs
        .line_with(&["identity reload failed", "cause=file change"])
        .await;
    assert!(
        line.contains(&format!("{}: malformed PEM", crl.display())),
        "{line}"
    );
    // Ten more polls see the same broken file: no second attempt, no second line.
    let before = logs.text().matches("identity reload failed").count();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        logs.text().matches("identity reload failed").count(),
        before
    );
    assert!(gb.files_changed());
    watcher.abort();
}

#[tokio::test]
async fn a_failed_reload_keeps_the_previous_configuration() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let (gb, addr) = serve_as(&pki, "org-b.example/gateway-org-b").await;
    let client = pki.init_client("org-a.example/gateway-org-a", GB);
    let crl = pki.path().join("org-a.example/crl.pem");
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\n!!!!\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let err = gb.reload().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: malformed PEM", crl.display())),
        "{err}"
    );
    assert_eq!(
        call_once(addr, client, PEER, Some("saga-1")).await,
        Ok(format!("{GA} saga-1")),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn connections_end_at_their_maximum_age_and_the_client_handshakes_again() {
    let (logs, _g) = Logs::install();
    let pki = Pki::new();
    let identity = IdentityHandle::load(pki.settings("org-b.example/gateway-org-b")).unwrap();
    // Real time, but only 100 ms: tonic's age timer cannot run on a paused clock
    // next to real sockets.
    let age = ConnectionAge {
        max: Duration::from_millis(100),
        grace: Duration::from_millis(100),
    };
    let addr = serve_aged(identity, age).await;
    let ga = connect(addr, pki.init_client("org-a.example/gateway-org-a", GB))
        .await
        .unwrap();
    assert_eq!(
        rpc(&ga, PEER, Some("saga-1")).await.unwrap(),
        format!("{GA} saga-1")
    );
    let handshakes = || {
        logs.text()
            .matches("mutual TLS connection accepted peer=spiffe://org-a.example/gateway/org-a")
            .count()
    };
    assert_eq!(handshakes(), 1);
    // Keep calling: once the server has closed the aged connection the channel
    // reconnects, which takes a fresh handshake.
    for _ in 0..500 {
        if handshakes() >= 2 {
            break;
        }
        let _ = rpc(&ga, PEER, Some("saga-1")).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        handshakes() >= 2,
        "no second handshake; log:\n{}",
        logs.text()
    );
    assert_eq!(
        rpc(&ga, PEER, Some("saga-1")).await.unwrap(),
        format!("{GA} saga-1")
    );
}

#[test]
fn a_domain_outside_the_federation_is_named() {
    let pki = Pki::new();
    let dir = TempDir::new();
    issue::init(
        &dir.0,
        &[DomainPlan::parse("org-z.example").unwrap()],
        now(),
        1,
        false,
    )
    .unwrap();
    let chain =
        escrowd::identity::pem::read_certificates(&dir.0.join("org-z.example/gateway-org-z.pem"))
            .unwrap();
    let trust = TrustStore::load(&Federation::load(&pki.federation()).unwrap()).unwrap();
    let err = trust
        .authenticate_client(&chain, rustls_pki_types::UnixTime::now())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "spiffe://org-z.example/gateway/org-z: trust domain org-z.example is not in the federation"
    );
}

// ------------------------------------------------------ permission matrix

#[test]
fn permission_matrix_follows_design_section_4() {
    let pki = Pki::new();
    let trust = TrustStore::load(&Federation::load(&pki.federation()).unwrap()).unwrap();
    let peer = |leaf: &str| {
        let s = pki.settings(leaf);
        let chain = escrowd::identity::pem::read_certificates(&s.cert).unwrap();
        trust
            .authenticate_client(&chain, rustls_pki_types::UnixTime::now())
            .unwrap()
    };
    let ga = peer("org-a.example/gateway-org-a");
    let gb = peer("org-b.example/gateway-org-b");
    let op_a = peer("org-a.example/operator-admin");
    let op_b = peer("org-b.example/operator-admin");
    let notary = peer("notary.example/notary-notary");
    let observer = peer("observer.example/observer-observer");
    let own = "org-b.example".parse().unwrap();
    let parties = [sid(GA), sid(GB)];
    let saga = Access::Peer {
        saga: Some("s"),
        parties: Some(&parties),
    };
    // (caller, peer, admin, subscription, notary) as seen by org-b's gateway.
    let table = [
        (&ga, true, false, false, true),
        (&gb, false, false, false, true),
        (&op_a, false, false, false, false),
        (&op_b, false, true, true, false),
        (&notary, false, false, true, false),
        (&observer, false, false, true, false),
    ];
    for (who, p, a, s, n) in table {
        let got = [saga, Access::Admin, Access::Subscription, Access::Notary]
            .map(|acc| authorize(&own, who, &acc).is_ok());
        assert_eq!(got, [p, a, s, n], "{who}");
    }
}

// ------------------------------------------------------------ bad input

fn load_err(settings: TlsSettings) -> String {
    let msg = IdentityHandle::load(settings).unwrap_err().to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    msg
}

#[test]
fn start_up_fails_on_a_missing_certificate_file() {
    let pki = Pki::new();
    let mut s = pki.settings("org-b.example/gateway-org-b");
    s.cert = pki.path().join("nope.pem");
    assert_eq!(
        load_err(s),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            pki.path().join("nope.pem").display()
        )
    );
}

#[test]
fn start_up_fails_on_an_unreadable_key_file() {
    let pki = Pki::new();
    let mut s = pki.settings("org-b.example/gateway-org-b");
    s.key = pki.path().join("org-b.example"); // a directory
    assert_eq!(
        load_err(s),
        format!(
            "{}: cannot read: Is a directory (os error 21)",
            pki.path().join("org-b.example").display()
        )
    );
}

#[test]
fn start_up_fails_on_malformed_pem() {
    let pki = Pki::new();
    let mut s = pki.settings("org-b.example/gateway-org-b");
    let bad = pki.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    s.cert = bad.clone();
    assert!(load_err(s.clone()).starts_with(&format!("{}: malformed PEM", bad.display())));
    std::fs::write(&bad, "just text\n").unwrap();
    assert_eq!(
        load_err(s),
        format!(
            "{}: no certificate found (expected a PEM \"CERTIFICATE\" section)",
            bad.display()
        )
    );
}

#[test]
fn start_up_fails_on_a_key_that_does_not_match_its_certificate() {
    let pki = Pki::new();
    let mut s = pki.settings("org-b.example/gateway-org-b");
    s.key = pki.path().join("org-a.example/gateway-org-a.key");
    assert_eq!(
        load_err(s.clone()),
        format!(
            "{}: private key does not match certificate {}",
            s.key.display(),
            s.cert.display()
        )
    );
}

#[test]
fn start_up_fails_on_a_federation_file_with_an_unknown_field() {
    let pki = Pki::new();
    let fed = pki.federation();
    let text = std::fs::read_to_string(&fed)
        .unwrap()
        .replacen("roles = ", "role = ", 1);
    std::fs::write(&fed, text).unwrap();
    let msg = load_err(pki.settings("org-b.example/gateway-org-b"));
    assert!(
        msg.starts_with(&format!("{}:7:1: unknown field `role`", fed.display())),
        "{msg}"
    );
}

#[test]
fn start_up_fails_on_a_federation_file_with_a_duplicate_domain() {
    let pki = Pki::new();
    let fed = pki.federation();
    let text = std::fs::read_to_string(&fed).unwrap().replacen(
        "name = \"org-b.example\"",
        "name = \"org-a.example\"",
        1,
    );
    std::fs::write(&fed, text).unwrap();
    let msg = load_err(pki.settings("org-b.example/gateway-org-b"));
    assert_eq!(
        msg,
        format!(
            "{}:11:8: field `name`: trust domain org-a.example is listed twice (first at line 5)",
            fed.display()
        )
    );
}

#[test]
fn start_up_fails_on_a_missing_ca_or_a_foreign_crl() {
    let pki = Pki::new();
    let ca = pki.path().join("notary.example/ca.pem");
    std::fs::rename(&ca, pki.path().join("moved.pem")).unwrap();
    let msg = load_err(pki.settings("org-b.example/gateway-org-b"));
    assert_eq!(
        msg,
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            ca.display()
        )
    );
    std::fs::rename(pki.path().join("moved.pem"), &ca).unwrap();

    let crl = pki.path().join("org-a.example/crl.pem");
    std::fs::copy(pki.path().join("org-b.example/crl.pem"), &crl).unwrap();
    let msg = load_err(pki.settings("org-b.example/gateway-org-b"));
    assert!(
        msg.starts_with(&format!("{}: CRL is issued by", crl.display()))
            && msg.ends_with("not by the CA of org-a.example"),
        "{msg}"
    );
}

#[test]
fn start_up_fails_when_our_own_identity_is_not_federated() {
    let pki = Pki::new();
    let (cert, key, _) = pki.leaf("notary.example", "spiffe://notary.example/observer/n");
    let msg = load_err(TlsSettings {
        federation: pki.federation(),
        cert: cert.clone(),
        key,
    });
    assert_eq!(
        msg,
        format!(
            "{}: our identity spiffe://notary.example/observer/n is not allowed by federation {}: its role is not allowed for its domain",
            cert.display(),
            pki.federation().display()
        )
    );
}

// ------------------------------------------------------------------ CLI

fn escrowd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn certs_cli_init_issue_revoke() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let out = dir.0.join("certs");
    let d = out.to_str().unwrap();
    let run = escrowd(&["certs", "init", "--out", d]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8(run.stdout).unwrap();
    for leaf in [
        GA,
        GB,
        "spiffe://org-a.example/operator/admin",
        "spiffe://notary.example/notary/notary",
        "spiffe://observer.example/observer/observer",
    ] {
        assert!(stdout.contains(leaf), "{stdout}");
    }
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("org-a.example/ca.key"), 0o600);
    assert_eq!(mode("org-a.example/gateway-org-a.key"), 0o600);
    assert_eq!(mode("org-a.example/gateway-org-a.pem"), 0o644);
    let fed = Federation::load(&out.join("federation.toml")).unwrap();
    let names: Vec<&str> = fed.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "org-a.example",
            "org-b.example",
            "notary.example",
            "observer.example"
        ]
    );
    assert!(IdentityHandle::load(TlsSettings {
        federation: out.join("federation.toml"),
        cert: out.join("org-a.example/gateway-org-a.pem"),
        key: out.join("org-a.example/gateway-org-a.key"),
    })
    .is_ok());

    // Init again without --force: refused, one line, exit 2.
    let again = escrowd(&["certs", "init", "--out", d]);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8(again.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "escrowd: error: {}: already exists (pass --force to overwrite)\n",
            out.join("federation.toml").display()
        )
    );
    // With --force it is rewritten, keys still 0600.
    std::fs::set_permissions(
        out.join("org-b.example/ca.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(escrowd(&["certs", "init", "--out", d, "--force"])
        .status
        .success());
    assert_eq!(mode("org-b.example/ca.key"), 0o600);

    // Issue one more gateway leaf, then revoke it by file.
    let issued = escrowd(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--id",
        "spiffe://org-a.example/gateway/spare",
    ]);
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let cert = out.join("org-a.example/gateway-spare.pem");
    let chain = escrowd::identity::pem::read_certificates(&cert).unwrap();
    let trust = TrustStore::load(&fed).unwrap();
    let peer = trust
        .authenticate_client(&chain, rustls_pki_types::UnixTime::now())
        .unwrap();
    assert_eq!(peer.id(), &sid("spiffe://org-a.example/gateway/spare"));
    assert!(String::from_utf8(issued.stdout)
        .unwrap()
        .contains(&format!("serial {}", peer.serial())));

    let revoked = escrowd(&[
        "certs",
        "revoke",
        "--dir",
        d,
        "--domain",
        "org-a.example",
        "--cert",
        cert.to_str().unwrap(),
    ]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let trust = TrustStore::load(&fed).unwrap();
    let err = trust
        .authenticate_client(&chain, rustls_pki_types::UnixTime::now())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "spiffe://org-a.example/gateway/spare: certificate revoked (serial {})",
            peer.serial()
        )
    );
    // The original gateway certificate is unaffected.
    let ga =
        escrowd::identity::pem::read_certificates(&out.join("org-a.example/gateway-org-a.pem"))
            .unwrap();
    assert!(trust
        .authenticate_client(&ga, rustls_pki_types::UnixTime::now())
        .is_ok());
}

#[test]
fn certs_cli_issue_with_explicit_validity_and_bad_arguments() {
    let dir = TempDir::new();
    let d = dir.0.to_str().unwrap();
    // Zero days would write certificates that expire as they are made.
    let zero = escrowd(&[
        "certs",
        "init",
        "--out",
        d,
        "--domain",
        "org-c.example",
        "--days",
        "0",
    ]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--days"));
    assert!(!dir.0.join("federation.toml").exists());
    assert!(escrowd(&[
        "certs",
        "init",
        "--out",
        d,
        "--domain",
        "org-c.example",
        "--days",
        "3"
    ])
    .status
    .success());
    let fed = Federation::load(&dir.0.join("federation.toml")).unwrap();
    assert_eq!(fed.domains.len(), 1);
    let issued = escrowd(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--id",
        "spiffe://org-c.example/operator/old",
        "--not-before",
        "2001-01-01T00:00:00Z",
        "--not-after",
        "2002-01-01T00:00:00Z",
    ]);
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let chain =
        escrowd::identity::pem::read_certificates(&dir.0.join("org-c.example/operator-old.pem"))
            .unwrap();
    let err = TrustStore::load(&fed)
        .unwrap()
        .authenticate_client(&chain, rustls_pki_types::UnixTime::now())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "spiffe://org-c.example/operator/old: certificate expired (not valid after 2002-01-01T00:00:00Z)"
    );

    let bad = escrowd(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--id",
        "spiffe://org-z.example/gateway/x",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "escrowd: error: {}: No such file or directory (os error 2)\n",
            dir.0.join("org-z.example/ca.pem").display()
        )
    );
    let bad = escrowd(&["certs", "init", "--out", d, "--domain", "Org"]);
    assert_eq!(bad.status.code(), Some(2));
}
