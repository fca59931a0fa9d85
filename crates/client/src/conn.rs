//! One connection to one broker: a writer task that sends whole frames in order, a reader task
//! that hands each response to the request waiting on its correlation id (so requests pipeline),
//! and the API versions the broker announced, negotiated once at connect time.
//!
//! A connection is secured as the client's [`Security`] says: TLS first (SSL, SASL_SSL), then,
//! after ApiVersions, SASL (SaslHandshake v1, then SaslAuthenticate rounds as the mechanism
//! needs). When the broker gives the session a lifetime (KIP-368, `connections.max.reauth.ms`)
//! the connection re-authenticates itself on the same socket at 85-95% of it, as Kafka's
//! clients do: requests made meanwhile are held and sent once the exchange is over, so the
//! broker sees nothing but SASL frames between the handshake and the last SaslAuthenticate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use rand::Rng;
use runnel_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use runnel_protocol::kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{error_name, Error, Result};
use crate::security::{SaslLogin, Security};

/// The largest response frame accepted (a fetch of many partitions stays well below it).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

type Waiter = oneshot::Sender<Result<Bytes>>;

struct Pending {
    waiters: HashMap<i32, Waiter>,
    closed: bool,
    /// Why the reader stopped, when it was a read error (a TLS alert, a reset).
    reason: Option<String>,
}

/// Frames made while the connection re-authenticates wait here.
#[derive(Default)]
struct Hold {
    active: bool,
    held: Vec<Bytes>,
}

/// What the connection's handle and its re-authentication task share.
struct Core {
    addr: String,
    frames: mpsc::UnboundedSender<Bytes>,
    pending: Arc<Mutex<Pending>>,
    closed: Arc<AtomicBool>,
    next_corr: AtomicI32,
    client_id: StrBytes,
    versions: OnceLock<HashMap<i16, (i16, i16)>>,
    /// Finalized feature levels (ApiVersions v3+): `metadata.version`, `kraft.version`, ...
    features: OnceLock<Vec<(String, i16)>>,
    timeout: Duration,
    hold: Mutex<Hold>,
}

/// A pipelined connection to one broker.
pub struct Connection {
    core: Arc<Core>,
    reauth: Option<tokio::task::AbortHandle>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(h) = &self.reauth {
            h.abort();
        }
    }
}

impl Connection {
    /// Connects to `addr` and asks for the broker's API versions.
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Connection> {
        Connection::connect_secure(addr, client_id, timeout, &Security::default()).await
    }

    /// [`Connection::connect`], over TLS when `tls` is given (an SSL listener): the server's
    /// certificate is checked for the host of `addr` as the config says.
    pub async fn connect_tls(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Result<Connection> {
        let security = Security { tls, sasl: None };
        Connection::connect_secure(addr, client_id, timeout, &security).await
    }

    /// [`Connection::connect`] secured as `security` says: over TLS when it has a TLS config,
    /// then authenticated with SASL when it has credentials (and re-authenticated before the
    /// session the broker grants expires). A refused login or a failed TLS handshake is
    /// [`Error::Authentication`].
    pub async fn connect_secure(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Connection> {
        let failed = |reason: String| Error::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| failed(format!("no answer within {} ms", timeout.as_millis())))?
            .map_err(|e| failed(e.to_string()))?;
        stream.set_nodelay(true).ok();
        let mut conn = match &security.tls {
            None => {
                let (rd, wr) = stream.into_split();
                Connection::start(addr, client_id, timeout, rd, wr).await?
            }
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| failed(format!("bad TLS server name {host}: {e}")))?;
                let stream = tokio::time::timeout(
                    timeout,
                    tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream),
                )
                .await
                .map_err(|_| failed("TLS handshake timed out".into()))?
                .map_err(|e| {
                    // Kafka's SslAuthenticationException: not a reason to retry.
                    Error::Authentication(format!("TLS handshake with {addr} failed: {e}"))
                })?;
                let (rd, wr) = tokio::io::split(stream);
                Connection::start(addr, client_id, timeout, rd, wr)
                    .await
                    .map_err(|e| match e {
                        // TLS 1.3 clients learn that their certificate was refused only when
                        // they read: the first request fails with the broker's alert.
                        Error::Connect { reason, .. } if reason.contains("alert") => {
                            Error::Authentication(format!(
                                "the broker at {addr} refused the TLS connection: {reason}"
                            ))
                        }
                        e => e,
                    })?
            }
        };
        if let Some(login) = &security.sasl {
            let lifetime = conn.core.authenticate(login).await?;
            conn.reauth = schedule_reauth(&conn.core, login.clone(), lifetime);
        }
        Ok(conn)
    }

    /// Starts the reader and writer tasks on a connected stream's halves.
    async fn start<R, W>(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        mut rd: R,
        wr: W,
    ) -> Result<Connection>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let pending = Arc::new(Mutex::new(Pending {
            waiters: HashMap::new(),
            closed: false,
            reason: None,
        }));
        let closed = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        // Writer: whole frames only, flushed when nothing else is queued.
        let wclosed = closed.clone();
        tokio::spawn(async move {
            let mut w = BufWriter::with_capacity(64 * 1024, wr);
            while let Some(frame) = rx.recv().await {
                if w.write_all(&frame).await.is_err() {
                    break;
                }
                while let Ok(more) = rx.try_recv() {
                    if w.write_all(&more).await.is_err() {
                        wclosed.store(true, Ordering::Release);
                        return;
                    }
                }
                if w.flush().await.is_err() {
                    break;
                }
            }
            wclosed.store(true, Ordering::Release);
            let _ = w.shutdown().await;
        });
        // Reader: each frame goes to the waiter of its correlation id.
        let rpending = pending.clone();
        let rclosed = closed.clone();
        let raddr = addr.to_string();
        tokio::spawn(async move {
            let mut reason = None;
            loop {
                let size = match rd.read_i32().await {
                    Ok(n) if n >= 4 && (n as usize) <= MAX_RESPONSE => n as usize,
                    Ok(n) => {
                        reason = Some(format!("bad response size {n}"));
                        break;
                    }
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::UnexpectedEof {
                            reason = Some(e.to_string());
                        }
                        break;
                    }
                };
                let mut buf = vec![0u8; size];
                if let Err(e) = rd.read_exact(&mut buf).await {
                    reason = Some(e.to_string());
                    break;
                }
                let frame = Bytes::from(buf);
                let corr = i32::from_be_bytes(frame[..4].try_into().unwrap());
                let waiter = rpending.lock().waiters.remove(&corr);
                if let Some(w) = waiter {
                    let _ = w.send(Ok(frame));
                }
            }
            rclosed.store(true, Ordering::Release);
            let mut p = rpending.lock();
            p.closed = true;
            p.reason = reason;
            for (_, w) in p.waiters.drain() {
                let _ = w.send(Err(Error::Disconnected(raddr.clone())));
            }
        });
        let core = Arc::new(Core {
            addr: addr.to_string(),
            frames: tx,
            pending,
            closed,
            next_corr: AtomicI32::new(1),
            client_id: StrBytes::from_string(client_id.to_string()),
            versions: OnceLock::new(),
            features: OnceLock::new(),
            timeout,
            hold: Mutex::new(Hold::default()),
        });
        let (versions, features) = core.api_versions().await?;
        let _ = core.versions.set(versions);
        let _ = core.features.set(features);
        Ok(Connection { core, reauth: None })
    }

    /// The broker's address, as dialled.
    pub fn addr(&self) -> &str {
        &self.core.addr
    }

    /// Whether the connection is gone (a new one must be made).
    pub fn is_closed(&self) -> bool {
        self.core.closed.load(Ordering::Acquire)
    }

    /// The version of `R` to use: the highest both sides speak, no higher than `max`.
    pub fn version<R: Request>(&self, max: i16) -> Result<i16> {
        self.core.version::<R>(max)
    }

    /// The feature levels the cluster finalized, as this broker announced them (empty before
    /// ApiVersions v3).
    pub fn finalized_features(&self) -> &[(String, i16)] {
        self.core.features.get().map_or(&[], Vec::as_slice)
    }

    /// Whether the broker serves `R` at all.
    pub fn supports<R: Request>(&self) -> bool {
        self.core
            .versions
            .get()
            .is_some_and(|v| v.contains_key(&R::KEY))
    }

    /// Sends `req` in `version` and waits for its response.
    pub async fn send<R: Request>(&self, req: &R, version: i16) -> Result<R::Response> {
        self.core
            .send_timeout(req, version, self.core.timeout, false)
            .await
    }

    /// [`send`](Self::send) with an explicit bound on the wait.
    pub async fn send_timeout<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.core.send_timeout(req, version, timeout, false).await
    }

    /// Sends `req` without waiting for an answer (Produce with acks=0 gets none).
    pub fn send_oneway<R: Request>(&self, req: &R, version: i16) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Disconnected(self.core.addr.clone()));
        }
        let (_, frame) = self.core.frame(req, version)?;
        self.core.enqueue(frame, false)
    }
}

impl Core {
    async fn api_versions(&self) -> Result<(HashMap<i16, (i16, i16)>, Vec<(String, i16)>)> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("runnel-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let send = |req: ApiVersionsRequest, v: i16| async move {
            self.send_timeout(&req, v, self.timeout, true)
                .await
                .map_err(|e| match (&e, self.pending.lock().reason.clone()) {
                    (Error::Disconnected(_), Some(r)) => Error::Connect {
                        addr: self.addr.clone(),
                        reason: r,
                    },
                    _ => e,
                })
        };
        let mut resp: ApiVersionsResponse = send(req, 3).await?;
        if resp.error_code == 35 {
            // UNSUPPORTED_VERSION: the broker answered with v0 and its ranges; ask again in v0.
            resp = send(ApiVersionsRequest::default(), 0).await?;
        }
        Error::check(resp.error_code, None, || {
            format!("ApiVersions to {}", self.addr)
        })?;
        let mut features: Vec<(String, i16)> = resp
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect();
        features.sort();
        Ok((
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
            features,
        ))
    }

    fn version<R: Request>(&self, max: i16) -> Result<i16> {
        let unsupported = || Error::UnsupportedVersion {
            broker: self.addr.clone(),
            api: api_name::<R>(),
        };
        let (bmin, bmax) = *self
            .versions
            .get()
            .and_then(|v| v.get(&R::KEY))
            .ok_or_else(unsupported)?;
        let v = bmax.min(max).min(R::VERSIONS.max);
        if v < bmin || v < R::VERSIONS.min {
            return Err(unsupported());
        }
        Ok(v)
    }

    fn frame<R: Request>(&self, req: &R, version: i16) -> Result<(i32, Bytes)> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(self.client_id.clone()));
        let hv = R::header_version(version);
        let size = header
            .compute_size(hv)
            .and_then(|h| Ok(h + req.compute_size(version)?))
            .map_err(|e| Error::Protocol(format!("cannot encode {}: {e}", api_name::<R>())))?;
        let mut buf = BytesMut::with_capacity(size + 4);
        buf.put_i32(size as i32);
        header
            .encode(&mut buf, hv)
            .and_then(|_| req.encode(&mut buf, version))
            .map_err(|e| Error::Protocol(format!("cannot encode {}: {e}", api_name::<R>())))?;
        Ok((corr, buf.freeze()))
    }

    /// Queues a frame for the writer; while the connection re-authenticates, frames other than
    /// the exchange's own (`direct`) are held.
    fn enqueue(&self, frame: Bytes, direct: bool) -> Result<()> {
        let mut hold = self.hold.lock();
        if hold.active && !direct {
            hold.held.push(frame);
            return Ok(());
        }
        self.frames
            .send(frame)
            .map_err(|_| Error::Disconnected(self.addr.clone()))
    }

    /// Starts (`true`) or ends holding frames; at the end the held ones go out in order.
    fn set_hold(&self, active: bool) {
        let mut hold = self.hold.lock();
        hold.active = active;
        if !active {
            for f in hold.held.drain(..) {
                let _ = self.frames.send(f);
            }
        }
    }

    /// Marks the connection unusable and fails the requests waiting on it.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut p = self.pending.lock();
        p.closed = true;
        for (_, w) in p.waiters.drain() {
            let _ = w.send(Err(Error::Disconnected(self.addr.clone())));
        }
    }

    async fn send_timeout<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
        direct: bool,
    ) -> Result<R::Response> {
        let (corr, frame) = self.frame(req, version)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock();
            if p.closed {
                return Err(Error::Disconnected(self.addr.clone()));
            }
            p.waiters.insert(corr, tx);
        }
        if let Err(e) = self.enqueue(frame, direct) {
            self.pending.lock().waiters.remove(&corr);
            return Err(e);
        }
        let body = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(Error::Disconnected(self.addr.clone())),
            Err(_) => {
                self.pending.lock().waiters.remove(&corr);
                return Err(Error::Timeout {
                    ms: timeout.as_millis() as u64,
                    what: format!("{} from {}", api_name::<R>(), self.addr),
                });
            }
        };
        let mut body = body;
        let decode_err =
            |e: String| Error::Protocol(format!("{} from {}: {e}", api_name::<R>(), self.addr));
        ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| decode_err(e.to_string()))?;
        R::Response::decode(&mut body, version).map_err(|e| decode_err(e.to_string()))
    }

    /// One SASL exchange: SaslHandshake v1, then SaslAuthenticate until the mechanism is done.
    /// Returns the session lifetime the broker granted, in ms (0: none).
    async fn authenticate(&self, login: &SaslLogin) -> Result<i64> {
        let mut client = login.client()?;
        let mech = client.mechanism_name();
        let refused = |m: String| {
            Error::Authentication(format!(
                "SASL {mech} authentication with {} failed: {m}",
                self.addr
            ))
        };
        let hv = self
            .version::<SaslHandshakeRequest>(1)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| refused("the broker does not serve SaslHandshake v1".into()))?;
        let resp = self
            .send_timeout(
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech)),
                hv,
                self.timeout,
                true,
            )
            .await?;
        match resp.error_code {
            0 => {}
            33 => {
                let enabled: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
                return Err(refused(format!(
                    "the broker does not enable SASL mechanism {mech} (it enables: {})",
                    enabled.join(", ")
                )));
            }
            34 => {
                return Err(refused(
                    "the broker does not expect SASL on this listener (ILLEGAL_SASL_STATE): check security.protocol".into(),
                ))
            }
            code => {
                return Err(refused(format!(
                    "SaslHandshake: {} ({code})",
                    error_name(code)
                )))
            }
        }
        let av = self
            .version::<SaslAuthenticateRequest>(2)
            .map_err(|_| refused("the broker does not serve SaslAuthenticate".into()))?;
        let mut token = client.initial();
        loop {
            let resp = self
                .send_timeout(
                    &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
                    av,
                    self.timeout,
                    true,
                )
                .await?;
            if resp.error_code != 0 {
                let msg = resp
                    .error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| error_name(resp.error_code));
                return Err(refused(msg));
            }
            match client.step(&resp.auth_bytes).map_err(|e| match e {
                Error::Authentication(m) => {
                    Error::Authentication(format!("{m} (broker {})", self.addr))
                }
                e => e,
            })? {
                Some(next) => token = next,
                None => return Ok(resp.session_lifetime_ms),
            }
        }
    }
}

/// Re-authenticates the connection before each session the broker grants expires; the task
/// ends with the connection. A failed re-authentication closes the connection (the next
/// request reconnects and logs in afresh).
fn schedule_reauth(
    core: &Arc<Core>,
    login: SaslLogin,
    lifetime_ms: i64,
) -> Option<tokio::task::AbortHandle> {
    if lifetime_ms <= 0 {
        return None;
    }
    let weak: Weak<Core> = Arc::downgrade(core);
    let task = tokio::spawn(async move {
        let mut lifetime = lifetime_ms;
        loop {
            let share = rand::thread_rng().gen_range(0.85..0.95);
            tokio::time::sleep(Duration::from_millis((lifetime as f64 * share) as u64)).await;
            let Some(core) = weak.upgrade() else {
                return;
            };
            if core.closed.load(Ordering::Acquire) {
                return;
            }
            core.set_hold(true);
            let result = core.authenticate(&login).await;
            core.set_hold(false);
            match result {
                Ok(l) if l > 0 => {
                    tracing::debug!(broker = %core.addr, lifetime_ms = l, "SASL re-authentication complete");
                    lifetime = l;
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(broker = %core.addr, error = %e, "SASL re-authentication failed: closing the connection");
                    core.close();
                    return;
                }
            }
        }
    });
    Some(task.abort_handle())
}

/// A request type's short name, e.g. `ProduceRequest`.
pub fn api_name<R>() -> &'static str {
    let full = std::any::type_name::<R>();
    full.rsplit("::").next().unwrap_or(full)
}
