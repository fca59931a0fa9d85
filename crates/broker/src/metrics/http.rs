//! The HTTP endpoint of `metrics.listeners`: `GET /metrics` (every metric in the Prometheus
//! text format), `GET /health/live` (the process answers) and `GET /health/ready` (the broker
//! serves: registered and unfenced with its current epoch, so caught up with the metadata log,
//! every partition the metadata names it leader of served as leader here, and not shutting
//! down; a controller-only node, once its quorum has a leader). Anything else
//! is 404.

use std::sync::Weak;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::broker::Broker;

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds every `metrics.listeners` address (before the broker serves, so that a taken port
/// stops the start-up with a clear error).
pub async fn bind(addresses: &[(String, u16)]) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for (host, port) in addresses {
        let bind_host = if host.is_empty() { "0.0.0.0" } else { host };
        let port = *port;
        let l = TcpListener::bind((bind_host, port))
            .await
            .map_err(|e| anyhow::anyhow!("binding metrics listener {host}:{port}: {e}"))?;
        out.push(l);
    }
    Ok(out)
}

/// Serves the endpoint on `listener` until the task is aborted. The broker is held weakly: the
/// endpoint does not keep a stopped broker alive.
pub async fn serve(broker: Weak<Broker>, listener: TcpListener) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(broker);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the metrics endpoint stopped");
    }
}

fn gone() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "broker stopped\n").into_response()
}

async fn metrics(State(broker): State<Weak<Broker>>) -> Response {
    let Some(b) = broker.upgrade() else {
        return gone();
    };
    // Walking every partition takes its log's lock: off the async workers.
    let text = tokio::task::spawn_blocking(move || b.metrics.render(&b)).await;
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn live(State(broker): State<Weak<Broker>>) -> Response {
    match broker.upgrade() {
        Some(_) => (StatusCode::OK, "live\n").into_response(),
        None => gone(),
    }
}

/// Why the broker is not ready, or None when it is.
pub fn not_ready(broker: &Broker) -> Option<String> {
    if broker.is_shutting_down() {
        return Some("shutting down".to_string());
    }
    if broker.config.cluster.broker {
        if !broker.is_serving() {
            return Some(
                "not registered and unfenced yet (catching up with the metadata log)".to_string(),
            );
        }
        if let Some(why) = leaderships_not_taken(broker) {
            return Some(why);
        }
    } else if broker.controller_id().is_none() {
        return Some("the controller quorum has no leader yet".to_string());
    }
    None
}

/// The partitions the metadata names this broker leader of that it does not serve as leader
/// yet (replica not open, or the leadership not applied): described when there are any.
fn leaderships_not_taken(broker: &Broker) -> Option<String> {
    let node = broker.config.node_id;
    let image = broker.image();
    let mut missing = Vec::new();
    for t in image.topics.values() {
        for p in t.partitions.iter().filter(|p| p.leader == node) {
            let serving = broker
                .replicas
                .partition(&t.name, p.partition)
                .is_some_and(|r| r.state().leader == node);
            if !serving {
                missing.push(format!("{}-{}", t.name, p.partition));
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let n = missing.len();
    missing.truncate(5);
    Some(format!(
        "{n} partition(s) this broker leads are not served yet ({}{})",
        missing.join(", "),
        if n > 5 { ", ..." } else { "" }
    ))
}

async fn ready(State(broker): State<Weak<Broker>>) -> Response {
    let Some(b) = broker.upgrade() else {
        return gone();
    };
    match not_ready(&b) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}
