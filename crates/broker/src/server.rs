//! Listeners and connections: frames are read one at a time per connection (a 4-byte size,
//! refused above `socket.request.max.bytes` before anything is allocated), handed to the
//! dispatcher, and answered in request order. Like Kafka, a connection has one request in
//! flight at a time, which keeps responses ordered even for long-polling fetches.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::handlers::{dispatch, Outcome};
use crate::security::Session;

/// Accepts connections on one listener until the task is aborted.
pub async fn accept_loop(broker: Arc<Broker>, listener: TcpListener, listener_name: String) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let _ = sock.set_nodelay(true);
                let b = broker.clone();
                let name = listener_name.clone();
                tokio::spawn(async move {
                    let session = Session::anonymous(&name, peer);
                    if let Err(e) = serve_connection(b, sock, session).await {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads the next frame; `Ok(None)` on a clean end of stream.
async fn read_frame<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    max_bytes: i32,
    peer: SocketAddr,
) -> std::io::Result<Option<Bytes>> {
    let mut size_buf = [0u8; 4];
    match rd.read_exact(&mut size_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 || size > max_bytes {
        warn!(%peer, size, max_bytes, "request size out of range (socket.request.max.bytes): closing the connection");
        return Ok(None);
    }
    // Grow the buffer as bytes arrive rather than trusting the claimed size up front.
    let mut buf = BytesMut::with_capacity((size as usize).min(64 * 1024));
    let mut remaining = size as usize;
    while remaining > 0 {
        if buf.capacity() == buf.len() {
            buf.reserve(remaining.min(buf.len().max(64 * 1024)));
        }
        let n = rd.read_buf(&mut (&mut buf).limit(remaining)).await?;
        if n == 0 {
            return Ok(None);
        }
        remaining -= n;
    }
    Ok(Some(buf.freeze()))
}

use bytes::BufMut;

/// The byte stream a connection runs over: a plain [`tokio::net::TcpStream`] or a TLS stream over one
/// (SSL / SASL_SSL listeners). SASL runs inside [`serve_connection`] on either.
pub trait ConnStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnStream for T {}

/// Serves one connection's requests until it ends: over any [`ConnStream`] once the accept path
/// (TCP, plus the TLS handshake on SSL listeners) has set up `session`.
pub async fn serve_connection<S: ConnStream>(
    broker: Arc<Broker>,
    stream: S,
    session: Session,
) -> std::io::Result<()> {
    // Requests are handled one at a time, so one buffered stream serves both directions (no
    // split): reads go through the buffer, writes pass straight to the stream.
    let mut conn = BufReader::with_capacity(64 * 1024, stream);
    let peer = session.peer;
    let max = broker.config.socket_request_max_bytes;
    let mut stopping = broker.stopping();
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut conn, max, peer) => f?,
            _ = stopping.wait_for(|s| *s) => None,
        };
        let Some(frame) = frame else { break };
        match dispatch(&broker, &session, frame).await {
            Outcome::Respond(bytes) => {
                conn.write_all(&bytes).await?;
                // A TLS stream holds written bytes until flushed; a TCP stream's flush is a no-op.
                conn.flush().await?;
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                info!(%peer, reason, "closing connection");
                break;
            }
        }
    }
    let _ = conn.shutdown().await;
    Ok(())
}
