//! One connection to one broker: a writer task that sends whole frames in order, a reader task
//! that hands each response to the request waiting on its correlation id (so requests pipeline),
//! and the API versions the broker announced, negotiated once at connect time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use runnel_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use runnel_protocol::kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// The largest response frame accepted (a fetch of many partitions stays well below it).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

type Waiter = oneshot::Sender<Result<Bytes>>;

struct Pending {
    waiters: HashMap<i32, Waiter>,
    closed: bool,
}

/// A pipelined connection to one broker.
pub struct Connection {
    addr: String,
    frames: mpsc::UnboundedSender<Bytes>,
    pending: Arc<Mutex<Pending>>,
    closed: Arc<AtomicBool>,
    next_corr: AtomicI32,
    client_id: StrBytes,
    versions: HashMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl Connection {
    /// Connects to `addr` and asks for the broker's API versions.
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Connection> {
        Connection::connect_tls(addr, client_id, timeout, None).await
    }

    /// [`Connection::connect`], over TLS when `tls` is given (an SSL listener): the server's
    /// certificate is checked for the host of `addr` as the config says.
    pub async fn connect_tls(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
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
        let Some(tls) = tls else {
            let (rd, wr) = stream.into_split();
            return Connection::start(addr, client_id, timeout, rd, wr).await;
        };
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| failed(format!("bad TLS server name {host}: {e}")))?;
        let stream = tokio::time::timeout(
            timeout,
            tokio_rustls::TlsConnector::from(tls).connect(name, stream),
        )
        .await
        .map_err(|_| failed("TLS handshake timed out".into()))?
        .map_err(|e| failed(format!("TLS handshake failed: {e}")))?;
        let (rd, wr) = tokio::io::split(stream);
        Connection::start(addr, client_id, timeout, rd, wr).await
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
            loop {
                let size = match rd.read_i32().await {
                    Ok(n) if n >= 4 && (n as usize) <= MAX_RESPONSE => n as usize,
                    _ => break,
                };
                let mut buf = vec![0u8; size];
                if rd.read_exact(&mut buf).await.is_err() {
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
            for (_, w) in p.waiters.drain() {
                let _ = w.send(Err(Error::Disconnected(raddr.clone())));
            }
        });
        let mut conn = Connection {
            addr: addr.to_string(),
            frames: tx,
            pending,
            closed,
            next_corr: AtomicI32::new(1),
            client_id: StrBytes::from_string(client_id.to_string()),
            versions: HashMap::new(),
            timeout,
        };
        conn.versions = conn.api_versions().await?;
        Ok(conn)
    }

    async fn api_versions(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("runnel-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse = self.send(&req, 3).await?;
        if resp.error_code == 35 {
            // UNSUPPORTED_VERSION: the broker answered with v0 and its ranges; ask again in v0.
            resp = self.send(&ApiVersionsRequest::default(), 0).await?;
        }
        Error::check(resp.error_code, None, || {
            format!("ApiVersions to {}", self.addr)
        })?;
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    /// The broker's address, as dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection is gone (a new one must be made).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The version of `R` to use: the highest both sides speak, no higher than `max`.
    pub fn version<R: Request>(&self, max: i16) -> Result<i16> {
        let unsupported = || Error::UnsupportedVersion {
            broker: self.addr.clone(),
            api: api_name::<R>(),
        };
        let (bmin, bmax) = *self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let v = bmax.min(max).min(R::VERSIONS.max);
        if v < bmin || v < R::VERSIONS.min {
            return Err(unsupported());
        }
        Ok(v)
    }

    /// Whether the broker serves `R` at all.
    pub fn supports<R: Request>(&self) -> bool {
        self.versions.contains_key(&R::KEY)
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

    /// Sends `req` in `version` and waits for its response.
    pub async fn send<R: Request>(&self, req: &R, version: i16) -> Result<R::Response> {
        self.send_timeout(req, version, self.timeout).await
    }

    /// [`send`](Self::send) with an explicit bound on the wait.
    pub async fn send_timeout<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
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
        if self.frames.send(frame).is_err() {
            self.pending.lock().waiters.remove(&corr);
            return Err(Error::Disconnected(self.addr.clone()));
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

    /// Sends `req` without waiting for an answer (Produce with acks=0 gets none).
    pub fn send_oneway<R: Request>(&self, req: &R, version: i16) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Disconnected(self.addr.clone()));
        }
        let (_, frame) = self.frame(req, version)?;
        self.frames
            .send(frame)
            .map_err(|_| Error::Disconnected(self.addr.clone()))
    }
}

/// A request type's short name, e.g. `ProduceRequest`.
pub fn api_name<R>() -> &'static str {
    let full = std::any::type_name::<R>();
    full.rsplit("::").next().unwrap_or(full)
}
