//! Listeners and connections: frames are read one at a time per connection (a 4-byte size,
//! refused above `socket.request.max.bytes` before anything is allocated), handed to the
//! dispatcher, and answered in request order. Like Kafka, a connection has one request in
//! flight at a time, which keeps responses ordered even for long-polling fetches.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
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
                    if let Err(e) = serve_connection(b, sock, peer, name).await {
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

async fn serve_connection(
    broker: Arc<Broker>,
    sock: TcpStream,
    peer: SocketAddr,
    listener_name: String,
) -> std::io::Result<()> {
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let max = broker.config.socket_request_max_bytes;
    let mut stopping = broker.stopping();
    let session = Session::anonymous(&listener_name, peer);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max, peer) => f?,
            _ = stopping.wait_for(|s| *s) => None,
        };
        let Some(frame) = frame else { break };
        match dispatch(&broker, &session, frame).await {
            Outcome::Respond(bytes) => wr.write_all(&bytes).await?,
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                info!(%peer, reason, "closing connection");
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
    Ok(())
}
