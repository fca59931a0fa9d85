//! Runnel's own requests between nodes, carried in Kafka-shaped frames on the controller
//! listener: the metadata quorum's raft messages, controller requests forwarded by a node to
//! the active controller, and the hellos nodes exchange at start-up. A frame is a classic request header (v1: api key, version, correlation
//! id, null client id) whose api key is one of Runnel's private keys, followed by an opaque body;
//! the response is the correlation id followed by the body. Kafka clients never send these keys,
//! and they are refused on listeners that are not controller listeners.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use runnel_client::security::{SaslLogin, Security};
use runnel_metadata::quorum::BoxFuture;
use runnel_metadata::{RaftRpcKind, RaftTransport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;

use crate::security::outbound;

/// A connection's stream: TCP, or TLS over TCP when the listener reached is an SSL one.
trait NodeStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> NodeStream for T {}

/// The TLS server name of `host:port` (a DNS name or an IP address).
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("TLS name {host}: {e}")))
}

/// Private api key of a raft message; the api version carries the [`RaftRpcKind`] code.
pub const RAFT_API_KEY: i16 = 32_000;
/// Private api key of a controller request forwarded to the active controller.
pub const FORWARD_API_KEY: i16 = 32_001;
/// Private api key of a start-up hello: a node's identity, answered with the other node's
/// (see [`crate::identity`]).
pub const HELLO_API_KEY: i16 = 32_002;

/// Largest body accepted in a response between nodes (snapshots are sent in 1 MiB chunks).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long a connection attempt to another node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs a blocking call (a request to another node, a wait for the metadata quorum) from code
/// that may be on an async worker thread: on a multi-threaded runtime the worker first hands its
/// other tasks over (`block_in_place`), so that a node waiting on the network never starves the
/// tasks that must answer (its own raft messages included).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Whether a frame's api key is one of Runnel's private inter-node keys.
pub fn is_internode_key(api_key: i16) -> bool {
    api_key == RAFT_API_KEY || api_key == FORWARD_API_KEY || api_key == HELLO_API_KEY
}

/// Encodes a request frame (size prefix included).
fn encode_request(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(14 + body.len());
    buf.put_i32((10 + body.len()) as i32);
    buf.put_i16(api_key);
    buf.put_i16(api_version);
    buf.put_i32(correlation_id);
    buf.put_i16(-1);
    buf.put_slice(body);
    buf.freeze()
}

/// Encodes a response frame (size prefix included).
pub fn encode_response(correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + body.len());
    buf.put_i32((4 + body.len()) as i32);
    buf.put_i32(correlation_id);
    buf.put_slice(body);
    buf.freeze()
}

/// One connection to a node, one request in flight at a time.
#[derive(Default)]
struct Conn {
    stream: Option<Box<dyn NodeStream>>,
    correlation_id: i32,
    /// When the SASL session the other node granted ends (the connection is replaced before).
    expires: Option<Instant>,
}

impl Conn {
    async fn call(
        &mut self,
        addr: &str,
        security: &Security,
        api_key: i16,
        api_version: i16,
        body: &[u8],
    ) -> io::Result<Vec<u8>> {
        if self.expires.is_some_and(|e| e <= Instant::now()) {
            self.stream = None;
        }
        // The stream is taken out for the exchange and put back only after a whole one: a call
        // cancelled half-way (openraft drops a request at its timeout) leaves no stream with a
        // stale response in it.
        let mut stream = match self.stream.take() {
            Some(s) => s,
            None => {
                let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                s.set_nodelay(true)?;
                let mut stream = match &security.tls {
                    None => Box::new(s) as Box<dyn NodeStream>,
                    Some(cfg) => {
                        let connect = tokio_rustls::TlsConnector::from(cfg.clone())
                            .connect(server_name(addr)?, s);
                        let t = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                            .await
                            .map_err(|_| {
                                io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                            })??;
                        Box::new(t)
                    }
                };
                self.expires = None;
                if let Some(login) = &security.sasl {
                    let auth = authenticate(&mut stream, &mut self.correlation_id, login);
                    self.expires =
                        tokio::time::timeout(CONNECT_TIMEOUT, auth)
                            .await
                            .map_err(|_| {
                                io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "SASL authentication timed out",
                                )
                            })??;
                }
                stream
            }
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let out = exchange(&mut stream, self.correlation_id, api_key, api_version, body).await?;
        self.stream = Some(stream);
        Ok(out)
    }
}

/// When a session of `lifetime_ms` granted now should be replaced: at 90% of it, as Kafka's
/// clients re-authenticate between 85% and 95%.
fn session_end(lifetime_ms: i64) -> Option<Instant> {
    (lifetime_ms > 0).then(|| Instant::now() + Duration::from_millis(lifetime_ms as u64 * 9 / 10))
}

/// Authenticates a new connection with SASL (SaslHandshake, then SaslAuthenticate rounds).
/// Returns when the session ends, if the other node gave it a lifetime.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    corr: &mut i32,
    login: &SaslLogin,
) -> io::Result<Option<Instant>> {
    *corr = corr.wrapping_add(1);
    let body = outbound::handshake_request(login)?;
    let out = exchange(stream, *corr, 17, outbound::HANDSHAKE_VERSION, &body).await?;
    outbound::handshake_response(&out)?;
    let mut client = outbound::client(login)?;
    let mut token = client.initial();
    loop {
        *corr = corr.wrapping_add(1);
        let body = outbound::authenticate_request(token)?;
        let out = exchange(stream, *corr, 36, outbound::AUTHENTICATE_VERSION, &body).await?;
        let (server, lifetime_ms) = outbound::authenticate_response(&out)?;
        match client.step(&server).map_err(outbound::step_error)? {
            Some(next) => token = next,
            None => return Ok(session_end(lifetime_ms)),
        }
    }
}

/// Writes one request and reads its response on `stream`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    corr: i32,
    api_key: i16,
    api_version: i16,
    body: &[u8],
) -> io::Result<Vec<u8>> {
    stream
        .write_all(&encode_request(api_key, api_version, corr, body))
        .await?;
    stream.flush().await?;
    let size = stream.read_i32().await?;
    if size < 4 || size as usize > MAX_RESPONSE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("response size {size} out of range"),
        ));
    }
    let got = stream.read_i32().await?;
    if got != corr {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("correlation id {got}, expected {corr}"),
        ));
    }
    let mut out = vec![0u8; size as usize - 4];
    stream.read_exact(&mut out).await?;
    Ok(out)
}

/// A connection shared by the callers that reach one node for one purpose.
type SharedConn = Arc<tokio::sync::Mutex<Conn>>;

/// Connections to other nodes' controller listeners, one per (node, purpose).
#[derive(Default)]
pub struct NodeClient {
    conns: parking_lot::Mutex<HashMap<(i32, i16), SharedConn>>,
    security: Security,
}

impl NodeClient {
    /// A client whose connections are secured as `security` says (TLS, SASL; default: plain
    /// TCP).
    pub fn secured(security: Security) -> NodeClient {
        NodeClient {
            conns: Default::default(),
            security,
        }
    }

    /// Sends one request to node `target` at `addr` and returns the response body.
    pub async fn call(
        &self,
        target: i32,
        addr: &str,
        api_key: i16,
        api_version: i16,
        body: &[u8],
    ) -> io::Result<Vec<u8>> {
        let conn = self
            .conns
            .lock()
            .entry((target, api_key))
            .or_default()
            .clone();
        let mut conn = conn.lock().await;
        conn.call(addr, &self.security, api_key, api_version, body)
            .await
    }
}

/// The quorum's raft messages over TCP to the voters' controller listeners.
#[derive(Default)]
pub struct TcpRaftTransport {
    client: Arc<NodeClient>,
}

impl TcpRaftTransport {
    /// A transport secured as `security` says.
    pub fn secured(security: Security) -> TcpRaftTransport {
        TcpRaftTransport {
            client: Arc::new(NodeClient::secured(security)),
        }
    }
}

impl RaftTransport for TcpRaftTransport {
    fn send(
        &self,
        target: i32,
        addr: &str,
        kind: RaftRpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'static, io::Result<Vec<u8>>> {
        let client = self.client.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            client
                .call(target, &addr, RAFT_API_KEY, kind.code() as i16, &body)
                .await
        })
    }
}

/// Blocking connections to other nodes, for synchronous callers (requests forwarded to the
/// active controller). Each call has a deadline; a failed call drops its connection. Calls are
/// made one at a time per connection, and there is one connection per node and timeout, so
/// that a call with a short timeout never waits behind a longer one to the same node.
#[derive(Default)]
pub struct BlockingNodeClient {
    conns: parking_lot::Mutex<HashMap<(i32, Duration), SharedBlockingConn>>,
    security: Security,
}

/// A blocking stream: TCP, or TLS over TCP.
enum BlockingStream {
    Plain(std::net::TcpStream),
    Tls(
        Box<
            tokio_rustls::rustls::StreamOwned<
                tokio_rustls::rustls::ClientConnection,
                std::net::TcpStream,
            >,
        >,
    ),
}

impl BlockingStream {
    fn tcp(&self) -> &std::net::TcpStream {
        match self {
            BlockingStream::Plain(s) => s,
            BlockingStream::Tls(t) => &t.sock,
        }
    }

    /// Connects to `addr` (TLS with `tls`), at most `timeout` for the TCP connection; the TLS
    /// handshake runs with the first write, under the caller's socket timeouts.
    fn connect(
        addr: &str,
        tls: Option<&Arc<ClientConfig>>,
        timeout: Duration,
    ) -> io::Result<BlockingStream> {
        use std::net::ToSocketAddrs;
        let sa = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{addr} does not resolve"))
        })?;
        let s = std::net::TcpStream::connect_timeout(&sa, timeout)?;
        s.set_nodelay(true)?;
        Ok(match tls {
            None => BlockingStream::Plain(s),
            Some(cfg) => {
                let conn =
                    tokio_rustls::rustls::ClientConnection::new(cfg.clone(), server_name(addr)?)
                        .map_err(io::Error::other)?;
                BlockingStream::Tls(Box::new(tokio_rustls::rustls::StreamOwned::new(conn, s)))
            }
        })
    }
}

impl std::io::Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.read(buf),
            BlockingStream::Tls(t) => t.read(buf),
        }
    }
}

impl std::io::Write for BlockingStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.write(buf),
            BlockingStream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            BlockingStream::Plain(s) => s.flush(),
            BlockingStream::Tls(t) => t.flush(),
        }
    }
}

/// A blocking connection shared by the callers that reach one node with one timeout.
type SharedBlockingConn = Arc<parking_lot::Mutex<BlockingConn>>;

/// One blocking connection to a node.
#[derive(Default)]
struct BlockingConn {
    stream: Option<BlockingStream>,
    correlation_id: i32,
    /// When the SASL session the other node granted ends (the connection is replaced before).
    expires: Option<Instant>,
}

/// How long a blocking call to another node may take, unless the caller gives its own timeout.
pub const BLOCKING_CALL_TIMEOUT: Duration = Duration::from_secs(15);

impl BlockingConn {
    /// One exchange that must end by `deadline` (connecting included): each write and read may
    /// take only what is left, so a node that stopped answering (cut off, paused) costs the
    /// caller no more than its timeout.
    fn call(
        &mut self,
        addr: &str,
        security: &Security,
        api_key: i16,
        api_version: i16,
        body: &[u8],
        deadline: Instant,
    ) -> io::Result<Vec<u8>> {
        if self.expires.is_some_and(|e| e <= Instant::now()) {
            self.stream = None;
        }
        if self.stream.is_none() {
            let mut s = BlockingStream::connect(
                addr,
                security.tls.as_ref(),
                CONNECT_TIMEOUT.min(time_left(deadline)?),
            )?;
            self.expires = match &security.sasl {
                Some(login) => {
                    authenticate_blocking(&mut s, &mut self.correlation_id, login, deadline)?
                }
                None => None,
            };
            self.stream = Some(s);
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let corr = self.correlation_id;
        let stream = self.stream.as_mut().expect("connected");
        let result = blocking_exchange(stream, corr, api_key, api_version, body, deadline);
        if result.is_err() {
            self.stream = None;
        }
        result
    }
}

/// Writes one request and reads its response on a blocking stream, by `deadline`.
fn blocking_exchange(
    stream: &mut BlockingStream,
    corr: i32,
    api_key: i16,
    api_version: i16,
    body: &[u8],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let left = || time_left(deadline);
    stream.tcp().set_write_timeout(Some(left()?))?;
    stream.tcp().set_read_timeout(Some(left()?))?;
    stream.write_all(&encode_request(api_key, api_version, corr, body))?;
    stream.flush()?;
    stream.tcp().set_read_timeout(Some(left()?))?;
    let mut head = [0u8; 8];
    stream.read_exact(&mut head)?;
    let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let got = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if size < 4 || size as usize > MAX_RESPONSE_BYTES || got != corr {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad response frame (size {size}, correlation id {got}, expected {corr})"),
        ));
    }
    let mut out = vec![0u8; size as usize - 4];
    stream.tcp().set_read_timeout(Some(left()?))?;
    stream.read_exact(&mut out)?;
    Ok(out)
}

/// [`authenticate`] on a blocking stream, by `deadline`.
fn authenticate_blocking(
    stream: &mut BlockingStream,
    corr: &mut i32,
    login: &SaslLogin,
    deadline: Instant,
) -> io::Result<Option<Instant>> {
    *corr = corr.wrapping_add(1);
    let body = outbound::handshake_request(login)?;
    let out = blocking_exchange(
        stream,
        *corr,
        17,
        outbound::HANDSHAKE_VERSION,
        &body,
        deadline,
    )?;
    outbound::handshake_response(&out)?;
    let mut client = outbound::client(login)?;
    let mut token = client.initial();
    loop {
        *corr = corr.wrapping_add(1);
        let body = outbound::authenticate_request(token)?;
        let out = blocking_exchange(
            stream,
            *corr,
            36,
            outbound::AUTHENTICATE_VERSION,
            &body,
            deadline,
        )?;
        let (server, lifetime_ms) = outbound::authenticate_response(&out)?;
        match client.step(&server).map_err(outbound::step_error)? {
            Some(next) => token = next,
            None => return Ok(session_end(lifetime_ms)),
        }
    }
}

impl BlockingNodeClient {
    /// A client whose connections are secured as `security` says (TLS, SASL; default: plain
    /// TCP).
    pub fn secured(security: Security) -> BlockingNodeClient {
        BlockingNodeClient {
            conns: Default::default(),
            security,
        }
    }

    /// Sends one request to node `target` at `addr` and waits for the response body, at most
    /// [`BLOCKING_CALL_TIMEOUT`].
    pub fn call(
        &self,
        target: i32,
        addr: &str,
        api_key: i16,
        api_version: i16,
        body: &[u8],
    ) -> io::Result<Vec<u8>> {
        self.call_within(
            target,
            addr,
            api_key,
            api_version,
            body,
            BLOCKING_CALL_TIMEOUT,
        )
    }

    /// [`BlockingNodeClient::call`] that gives up after `timeout` (an error of kind `TimedOut`
    /// or `WouldBlock`), dropping the connection: for requests not worth waiting for longer
    /// (a broker heartbeat is due again after one interval).
    pub fn call_within(
        &self,
        target: i32,
        addr: &str,
        api_key: i16,
        api_version: i16,
        body: &[u8],
        timeout: Duration,
    ) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let conn = self
            .conns
            .lock()
            .entry((target, timeout))
            .or_default()
            .clone();
        let mut conn = conn
            .try_lock_for(time_left(deadline)?)
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "connection busy"))?;
        conn.call(addr, &self.security, api_key, api_version, body, deadline)
    }
}

/// What is left until `deadline`; a `TimedOut` error once it has passed (a zero socket
/// timeout would mean none).
fn time_left(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "call timed out"))
}

/// Sends one Kafka request to a broker and waits for its response, on a new blocking
/// connection: for the rare calls a coordinator makes to other brokers from synchronous code
/// (transaction markers to partition leaders).
pub fn blocking_kafka_request<R>(
    addr: &str,
    security: &Security,
    req: &R,
    version: i16,
) -> io::Result<R::Response>
where
    R: kafka_protocol::protocol::Request,
{
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use std::io::{Read, Write};
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("runnel-broker")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| bad(e.to_string()))?;
    req.encode(&mut buf, version)
        .map_err(|e| bad(e.to_string()))?;
    let n = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&n.to_be_bytes());
    let mut s = BlockingStream::connect(addr, security.tls.as_ref(), CONNECT_TIMEOUT)?;
    if let Some(login) = &security.sasl {
        let mut corr = 1;
        authenticate_blocking(
            &mut s,
            &mut corr,
            login,
            Instant::now() + BLOCKING_CALL_TIMEOUT,
        )?;
    }
    s.tcp().set_read_timeout(Some(BLOCKING_CALL_TIMEOUT))?;
    s.tcp().set_write_timeout(Some(BLOCKING_CALL_TIMEOUT))?;
    s.write_all(&buf)?;
    s.flush()?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > MAX_RESPONSE_BYTES {
        return Err(bad(format!("response size {size} out of range")));
    }
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body)?;
    let mut body = Bytes::from(body);
    let _header = kafka_protocol::messages::ResponseHeader::decode(
        &mut body,
        R::Response::header_version(version),
    )
    .map_err(|e| bad(e.to_string()))?;
    R::Response::decode(&mut body, version).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A node on a loopback port: the connections whose number (from 0) is in `silent` read
    /// requests and never answer (a node cut off or paused); the others answer each request with
    /// its body reversed. Returns its address.
    fn node(silent: &'static [usize]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { return };
                let answers = !silent.contains(&n);
                std::thread::spawn(move || loop {
                    let mut size = [0u8; 4];
                    if conn.read_exact(&mut size).is_err() {
                        return;
                    }
                    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
                    if conn.read_exact(&mut frame).is_err() {
                        return;
                    }
                    if answers {
                        let corr = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                        let mut body = frame[10..].to_vec();
                        body.reverse();
                        if conn.write_all(&encode_response(corr, &body)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn a_call_with_its_own_timeout_gives_up_then_and_reconnects_for_the_next() {
        // The first connection is silent, the second answers.
        let addr = node(&[0]);
        let client = BlockingNodeClient::default();
        let started = Instant::now();
        let e = client
            .call_within(
                2,
                &addr,
                FORWARD_API_KEY,
                0,
                b"abc",
                Duration::from_millis(300),
            )
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{e}"
        );
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        // The silent connection was dropped: the next call opens one that is answered.
        let out = client
            .call_within(
                2,
                &addr,
                FORWARD_API_KEY,
                0,
                b"abc",
                Duration::from_millis(300),
            )
            .unwrap();
        assert_eq!(out, b"cba");
    }

    #[test]
    fn a_short_call_does_not_wait_behind_a_long_one_to_the_same_node() {
        // The long call's connection (the first) is never answered; the short call gets a
        // connection of its own (the second), which is.
        let addr = node(&[0]);
        let client = Arc::new(BlockingNodeClient::default());
        let long = {
            let (client, addr) = (client.clone(), addr.clone());
            std::thread::spawn(move || {
                client.call_within(2, &addr, FORWARD_API_KEY, 0, b"x", Duration::from_secs(5))
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let out = client
            .call_within(
                2,
                &addr,
                FORWARD_API_KEY,
                0,
                b"xyz",
                Duration::from_millis(500),
            )
            .unwrap();
        assert_eq!(out, b"zyx");
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(!long.is_finished(), "the long call is still waiting");
        assert!(long.join().unwrap().is_err());
    }
}
