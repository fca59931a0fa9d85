//! Listeners and connections: frames are read one at a time per connection (a 4-byte size,
//! refused above `socket.request.max.bytes` before anything is allocated), handed to the
//! dispatcher in order, and answered in request order. A request is handled whole before the
//! next is read, except a Produce whose batches are appended and whose answer waits for fsyncs
//! or the ISR ([`Outcome::Later`]): the connection then reads and handles the next requests
//! while it waits (up to [`MAX_WAITING_ANSWERS`]), so that a producer's requests in flight share
//! fsyncs and replication round trips instead of queueing behind one another.
//! Each request's stages (read, queue, local handling, remote wait, response queue, send) are
//! timed here and filed in the broker's [`Metrics`] once its answer is written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::handlers::{dispatch, Outcome, Part};
use crate::metrics::{Metrics, RequestTimes};
use crate::security::connections::ConnectionLimits;
use crate::security::sasl::{self, Authenticator, Gate};
use crate::security::tls::{ListenerTls, HANDSHAKE_TIMEOUT};
use crate::security::Session;

/// Raises this process's soft limit of open files to its hard limit, as Kafka's JVM does at
/// start: every segment and connection holds a file descriptor, and the usual soft limit of
/// 1,024 would stop a broker at about a thousand partitions. Returns (before, after) when it
/// changed.
pub fn raise_open_files_limit() -> Option<(u64, u64)> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), Some(maximum)) = (limit.current, limit.maximum) else {
        return None;
    };
    if current >= maximum {
        return None;
    }
    let raised = Rlimit {
        current: Some(maximum),
        maximum: Some(maximum),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some((current, maximum)),
        Err(e) => {
            warn!(error = %e, current, maximum, "could not raise the open files limit");
            None
        }
    }
}

/// Accepts connections on one listener until the task is aborted. On SSL and SASL_SSL
/// listeners each connection first completes its TLS handshake (on its own task, so a slow or
/// garbage handshake holds up no other client); `limits` applies `max.connections` (accepting
/// waits for a free place) and `max.connections.per.ip` (a connection past it is closed).
pub async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    listener_name: String,
    limits: Arc<ConnectionLimits>,
) {
    let tls = broker.tls.get(&listener_name);
    loop {
        let permits = limits.reserve(&listener_name).await;
        match listener.accept().await {
            Ok((sock, peer)) => {
                let Some(slot) = limits.admit(peer.ip(), permits) else {
                    info!(%peer, listener = %listener_name, "max.connections.per.ip reached for this address: connection closed");
                    drop(sock);
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let b = broker.clone();
                let name = listener_name.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let _counted = b.metrics.connection(&name);
                    let result = match tls {
                        None => serve_connection(b, sock, Session::anonymous(&name, peer)).await,
                        Some(tls) => serve_tls(b, sock, peer, name, tls).await,
                    };
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Err(e) => {
                drop(permits);
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// A connection on an SSL or SASL_SSL listener: the TLS handshake (at most
/// [`HANDSHAKE_TIMEOUT`]), then on SSL listeners the principal from the client certificate, then
/// the requests over the TLS stream. A failed handshake (garbage, plaintext Kafka requests, an
/// untrusted or missing required certificate) closes the connection and is logged.
async fn serve_tls(
    broker: Arc<Broker>,
    sock: TcpStream,
    peer: SocketAddr,
    listener_name: String,
    tls: Arc<ListenerTls>,
) -> std::io::Result<()> {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(sock)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            info!(%peer, listener = %listener_name, error = %e, "TLS handshake failed: connection closed");
            return Ok(());
        }
        Err(_) => {
            info!(%peer, listener = %listener_name, "TLS handshake not finished within {} s: connection closed", HANDSHAKE_TIMEOUT.as_secs());
            return Ok(());
        }
    };
    let mut session = Session::anonymous(&listener_name, peer);
    if tls.protocol == "SSL" {
        // On SASL_SSL listeners SASL names the principal; on SSL ones the certificate does.
        match tls.principal(stream.get_ref().1.peer_certificates()) {
            Ok(p) => session.principal = Arc::new(p),
            Err(e) => {
                warn!(%peer, listener = %listener_name, error = %e, "TLS client authentication failed: connection closed");
                let mut stream = stream;
                let _ = stream.shutdown().await;
                return Ok(());
            }
        }
    }
    debug!(%peer, listener = %listener_name, principal = %session.principal, "TLS connection");
    serve_connection(broker, stream, session).await
}

/// What reading a frame found.
enum Frame {
    /// A whole frame, and when its first bytes were read.
    Data(Bytes, Instant),
    /// The end of the stream (clean, or in the middle of a frame).
    End,
    /// A size prefix out of range (negative or above the limit): nothing more is read.
    BadSize(i32),
}

/// Reads frames, keeping what it has read of the current one in itself: a read dropped before
/// it ends (another `select!` branch won) loses nothing, and the next call goes on from there.
#[derive(Default)]
struct FrameReader {
    /// The size prefix, as far as read.
    head: [u8; 4],
    /// How many bytes of `head` are read.
    have: usize,
    /// The frame being read and how many of its bytes are still to come.
    body: Option<(BytesMut, usize)>,
    /// When the current frame's first bytes were read.
    started: Option<Instant>,
}

impl FrameReader {
    /// Reads the next frame.
    async fn next<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        max_bytes: i32,
    ) -> std::io::Result<Frame> {
        loop {
            if let Some((buf, remaining)) = &mut self.body {
                if *remaining == 0 {
                    let (buf, _) = self.body.take().expect("a frame being read");
                    self.have = 0;
                    let started = self.started.take().unwrap_or_else(Instant::now);
                    return Ok(Frame::Data(buf.freeze(), started));
                }
                // Grow the buffer as bytes arrive rather than trusting the claimed size up front.
                if buf.capacity() == buf.len() {
                    buf.reserve((*remaining).min(buf.len().max(64 * 1024)));
                }
                let n = rd.read_buf(&mut (&mut *buf).limit(*remaining)).await?;
                if n == 0 {
                    return Ok(Frame::End);
                }
                *remaining -= n;
                continue;
            }
            if self.have == 4 {
                let size = i32::from_be_bytes(self.head);
                if size < 0 || size > max_bytes {
                    return Ok(Frame::BadSize(size));
                }
                let buf = BytesMut::with_capacity((size as usize).min(64 * 1024));
                self.body = Some((buf, size as usize));
                continue;
            }
            let n = rd.read(&mut self.head[self.have..]).await?;
            if n == 0 {
                return Ok(Frame::End);
            }
            if self.have == 0 {
                self.started = Some(Instant::now());
            }
            self.have += n;
        }
    }
}

use bytes::BufMut;

/// The byte stream a connection runs over: a plain [`tokio::net::TcpStream`] or a TLS stream over one
/// (SSL / SASL_SSL listeners). SASL runs inside [`serve_connection`] on either.
pub trait ConnStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The plain TCP socket when the stream is one (records then go out with `sendfile`).
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl ConnStream for TcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl ConnStream for tokio_rustls::server::TlsStream<TcpStream> {}

/// Writes a response made of parts: on a plain TCP socket the file ranges go from the page cache
/// to the socket with `sendfile` (corked, so that the small encoded parts between them do not
/// leave as packets of their own); on other streams (TLS) they are read and written. A file
/// shorter than its part (a log cut since the read was planned) is an error: the frame's size
/// is already out, so the connection must close (as Kafka's, for the same race).
async fn write_parts<S: ConnStream>(conn: &mut S, parts: Vec<Part>) -> std::io::Result<()> {
    let short = || {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "segment file shorter than the planned read (cut since)",
        )
    };
    if let Some(tcp) = conn.tcp() {
        let files = parts.iter().any(|p| matches!(p, Part::File { .. }));
        if files {
            let _ = rustix::net::sockopt::set_tcp_cork(tcp, true);
        }
        let result = async {
            for part in &parts {
                match part {
                    Part::Bytes(b) => tcp_write_all(tcp, b).await?,
                    Part::File { file, pos, len } => {
                        let (mut pos, mut left) = (*pos, *len);
                        while left > 0 {
                            tcp.writable().await?;
                            let sent = tcp.try_io(tokio::io::Interest::WRITABLE, || {
                                rustix::fs::sendfile(tcp, &**file, Some(&mut pos), left)
                                    .map_err(std::io::Error::from)
                            });
                            match sent {
                                Ok(0) => return Err(short()),
                                Ok(n) => left -= n,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if files {
            let _ = rustix::net::sockopt::set_tcp_cork(tcp, false);
        }
        return result;
    }
    // Other streams (TLS): the frame read into one buffer (one write, full TLS records), the file
    // ranges read on a blocking thread.
    let total: usize = parts.iter().map(Part::len).sum();
    let frame = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut out = Vec::with_capacity(total);
        for part in &parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File { file, pos, len } => {
                    let start = out.len();
                    out.resize(start + len, 0);
                    file.read_exact_at(&mut out[start..], *pos)?;
                }
            }
        }
        Ok::<_, std::io::Error>(out)
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            short()
        } else {
            e
        }
    })?;
    conn.write_all(&frame).await?;
    conn.flush().await
}

/// Writes all of `buf` to a TCP socket shared by reference.
async fn tcp_write_all(tcp: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        tcp.writable().await?;
        match tcp.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Serves one connection's requests until it ends: over any [`ConnStream`] once the accept path
/// (TCP, plus the TLS handshake on SSL listeners) has set up `session`. On SASL_PLAINTEXT and
/// SASL_SSL listeners every frame first passes the connection's SASL [`Authenticator`], which
/// answers the authentication exchange itself and lets requests through once it completed.
pub async fn serve_connection<S: ConnStream>(
    broker: Arc<Broker>,
    stream: S,
    mut session: Session,
) -> std::io::Result<()> {
    // One buffered stream serves both directions (no split): reads go through the buffer,
    // writes pass straight to the stream. The buffer holds the small reads (size prefixes,
    // small requests); a frame body larger than it is read straight into the frame's own
    // buffer. Small, because every connection has one (5,000 idle connections held 165 MiB
    // with 64 KiB each).
    let mut conn = BufReader::with_capacity(8 * 1024, stream);
    let peer = session.peer;
    let max = broker.config.socket_request_max_bytes;
    let mut stopping = broker.stopping();
    let mut auth = match sasl_authenticator(&broker, &session.listener) {
        Ok(a) => a,
        Err(e) => {
            warn!(%peer, listener = %session.listener, error = %e, "SASL settings unusable: connection closed");
            return Ok(());
        }
    };
    let mut reader = FrameReader::default();
    // Answers not written yet, in request order.
    let mut answers = Answers::new(&broker.metrics);
    loop {
        answers.write_ready(&mut conn).await?;
        let limit = auth.as_ref().map_or(max, |a| a.max_frame(max));
        let may_read = answers.len() < MAX_WAITING_ANSWERS;
        let frame = tokio::select! {
            f = reader.next(&mut conn, limit), if may_read => f?,
            () = answers.first_done(), if answers.waiting_first() => continue,
            _ = stopping.wait_for(|s| *s) => Frame::End,
        };
        let (frame, first_byte) = match frame {
            Frame::Data(f, first_byte) => (f, first_byte),
            Frame::End => break,
            Frame::BadSize(size) => {
                answers.write_all(&mut conn).await?;
                match auth.as_ref().filter(|a| !a.authenticated()) {
                    Some(a) => {
                        let gate = a.oversized(size);
                        finish_gate(&mut conn, &broker.metrics, &session.listener, peer, gate)
                            .await;
                    }
                    None => {
                        warn!(%peer, size, max_bytes = limit, "request size out of range (socket.request.max.bytes): closing the connection");
                    }
                }
                break;
            }
        };
        let api_key = frame
            .get(..2)
            .map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]));
        let mut times = RequestTimes::new(api_key, first_byte, Instant::now());
        if let Some(a) = auth.as_mut() {
            match a.on_frame(&*broker, &mut session.principal, &frame) {
                Gate::Pass => {}
                Gate::Respond(bytes) => {
                    times.handled = Instant::now();
                    answers.push(Outcome::Respond(bytes), times);
                    continue;
                }
                gate => {
                    answers.write_all(&mut conn).await?;
                    finish_gate(&mut conn, &broker.metrics, &session.listener, peer, gate).await;
                    break;
                }
            }
        }
        times.handling = Instant::now();
        // Boxed: the handlers' state lives only while a request is handled, not inside every
        // idle connection's task (whose size is that of its largest await).
        let outcome = Box::pin(dispatch(&broker, &session, frame)).await;
        times.handled = Instant::now();
        match outcome {
            Outcome::Close(reason) => {
                answers.write_all(&mut conn).await?;
                info!(%peer, reason, "closing connection");
                break;
            }
            Outcome::Throttled { response, until } => {
                answers.write_all(&mut conn).await?;
                let writing = Instant::now();
                if let Some(bytes) = response {
                    conn.write_all(&bytes).await?;
                    conn.flush().await?;
                }
                broker
                    .metrics
                    .request_done(&times, times.handled, writing, Instant::now());
                // A client over its quota: the response went out, the connection is muted for
                // the throttle time (KIP-219), as Kafka's socket server mutes the channel.
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = stopping.wait_for(|s| *s) => break,
                }
            }
            outcome => answers.push(outcome, times),
        }
    }
    // Requests already handled get their answers (acknowledged writes are on disk or
    // replicated by then), as far as the client still reads.
    answers.write_all(&mut conn).await?;
    let _ = conn.shutdown().await;
    Ok(())
}

/// How many answers a connection may owe at once (waiting Produce answers and those queued
/// behind them) before it stops reading requests: more than the 5 requests in flight producers
/// send by default.
pub const MAX_WAITING_ANSWERS: usize = 16;

/// A connection's answers not written yet, in request order: ready ones, and Produce answers
/// still waiting on their own tasks; each with its request's times, filed in the broker's
/// metrics once written.
struct Answers<'m> {
    queue: std::collections::VecDeque<(Answer, RequestTimes)>,
    metrics: &'m Metrics,
}

/// One answer owed.
enum Answer {
    /// Ready to write (since when).
    Ready(Outcome, Instant),
    /// Being finished on its own task ([`Outcome::Later`]), which says when it got ready.
    Waiting(tokio::task::JoinHandle<(Outcome, Instant)>),
}

impl<'m> Answers<'m> {
    fn new(metrics: &'m Metrics) -> Answers<'m> {
        Answers {
            queue: Default::default(),
            metrics,
        }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues an outcome: a [`Outcome::Later`] starts on its own task.
    fn push(&mut self, outcome: Outcome, times: RequestTimes) {
        let answer = match outcome {
            Outcome::Later(f) => Answer::Waiting(tokio::spawn(async move {
                let outcome = f.await;
                (outcome, Instant::now())
            })),
            ready => Answer::Ready(ready, times.handled),
        };
        self.queue.push_back((answer, times));
    }

    /// Whether the first answer is still waiting.
    fn waiting_first(&self) -> bool {
        matches!(self.queue.front(), Some((Answer::Waiting(_), _)))
    }

    /// Completes when the first (waiting) answer is done, making it ready; safe to drop.
    async fn first_done(&mut self) {
        if let Some((Answer::Waiting(task), _)) = self.queue.front_mut() {
            let (outcome, ready) = task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "a produce answer's task failed");
                (
                    Outcome::Close("an answer could not be completed"),
                    Instant::now(),
                )
            });
            self.queue[0].0 = Answer::Ready(outcome, ready);
        }
    }

    /// Writes the answers at the front that are ready.
    async fn write_ready<S: ConnStream>(&mut self, conn: &mut BufReader<S>) -> std::io::Result<()> {
        while let Some((Answer::Ready(..), _)) = self.queue.front() {
            let Some((Answer::Ready(outcome, ready), times)) = self.queue.pop_front() else {
                unreachable!("the front is ready");
            };
            let writing = Instant::now();
            write_outcome(conn, outcome).await?;
            let written = Instant::now();
            self.metrics.request_done(&times, ready, writing, written);
            // Kafka's request logger, at DEBUG: one line per request answered.
            debug!(
                api_key = times.api_key,
                total_ms = (written - times.read).as_secs_f64() * 1e3,
                "completed request"
            );
        }
        Ok(())
    }

    /// Waits for and writes every answer owed.
    async fn write_all<S: ConnStream>(&mut self, conn: &mut BufReader<S>) -> std::io::Result<()> {
        while !self.queue.is_empty() {
            self.first_done().await;
            self.write_ready(conn).await?;
        }
        Ok(())
    }
}

/// Writes one answer: a response frame, or nothing. A close or a throttle never gets here
/// (the connection loop handles them in order); an answer that failed closes the connection.
async fn write_outcome<S: ConnStream>(
    conn: &mut BufReader<S>,
    outcome: Outcome,
) -> std::io::Result<()> {
    match outcome {
        Outcome::Respond(bytes) => {
            conn.write_all(&bytes).await?;
            // A TLS stream holds written bytes until flushed; a TCP stream's flush is a no-op.
            conn.flush().await
        }
        Outcome::RespondParts(parts) => write_parts(conn.get_mut(), parts).await,
        Outcome::NoResponse => Ok(()),
        Outcome::Throttled { response, .. } => match response {
            Some(bytes) => {
                conn.write_all(&bytes).await?;
                conn.flush().await
            }
            None => Ok(()),
        },
        Outcome::Close(reason) => Err(std::io::Error::other(reason)),
        Outcome::Later(_) => Err(std::io::Error::other("an answer still to come")),
    }
}

/// The SASL authenticator of a connection on `listener`, None on listeners without SASL.
fn sasl_authenticator(broker: &Broker, listener: &str) -> Result<Option<Authenticator>, String> {
    match sasl::listener_protocol(&broker.config, listener) {
        Some(p) if sasl::is_sasl_protocol(p) => {
            let settings = sasl::ListenerSasl::from_config(&broker.config, listener)?;
            Ok(Some(Authenticator::new(Arc::new(settings))))
        }
        _ => Ok(None),
    }
}

/// Ends a connection as the authenticator asked: a failed authentication (counted in
/// `metrics`) waits `connection.failed.authentication.delay.ms`, then gets its error response
/// (as Kafka sends it when the delay is over), then the connection closes.
async fn finish_gate<W: AsyncWrite + Unpin>(
    conn: &mut W,
    metrics: &Metrics,
    listener: &str,
    peer: SocketAddr,
    gate: Gate,
) {
    match gate {
        Gate::Fail {
            response,
            reason,
            delay,
        } => {
            metrics.failed_authentication(listener);
            info!(%peer, %reason, "failed SASL authentication: connection closed");
            tokio::time::sleep(delay).await;
            if let Some(r) = response {
                let _ = conn.write_all(&r).await;
                let _ = conn.flush().await;
            }
        }
        Gate::Close(reason) => info!(%peer, %reason, "closing connection"),
        Gate::Pass | Gate::Respond(_) => {}
    }
}
