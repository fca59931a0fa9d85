//! systemd's readiness protocol (sd_notify): when `runnel serve` runs under a unit with
//! `Type=notify`, systemd passes a datagram socket in `NOTIFY_SOCKET`; the broker sends
//! `READY=1` once it serves and `STOPPING=1` when a shutdown begins. Without the variable
//! nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends one state line (`READY=1`, `STOPPING=1`, `STATUS=...`) to systemd, if it listens.
/// Failures are logged, never fatal: the broker serves either way.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().to_string();
    let sent = UnixDatagram::unbound().and_then(|sock| {
        // A leading '@' names a socket in the abstract namespace.
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = sent {
        tracing::warn!(socket = %path, error = %e, "could not notify systemd");
    }
}
