//! The two pages that stream, as server-sent events: a search over a bounded range of a topic
//! (`progress`, `match` and `done` events; closing the page or its Cancel button ends the
//! scan) and the live tail of new records (`record` events until the page goes away).

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::pages::{search_ranges, Needle};
use crate::render::{self, Format};
use crate::{data, Ctx, Failure};

type Params = std::collections::HashMap<String, String>;

/// Matches sent at most by one search.
const MAX_MATCHES: usize = 1000;

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// A stream of one `failed` event: what went wrong before anything could be streamed.
fn failed(message: &str) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(1);
    let _ = tx.try_send(event("failed", &message));
    drop(tx);
    sse(rx)
}

fn sse(rx: mpsc::Receiver<Event>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// GET /topics/{name}/search/stream.
pub async fn search(Path(name): Path<String>, ctx: Ctx, Query(q): Query<Params>) -> Response {
    {
        let prepared = match Needle::parse(&q) {
            Ok(n) => search_ranges(&ctx, &name, &q).await.map(|r| (n, r)),
            Err(f) => Err(f),
        };
        let (needle, ranges) = match prepared {
            Ok(p) => p,
            Err(Failure { message, .. }) => return failed(&message),
        };
        let (tx, rx) = mpsc::channel::<Event>(256);
        let format = Format::parse(q.get("format").map(String::as_str));
        let total: i64 = ranges.iter().map(|r| (r.to - r.from).max(0)).sum();
        let client = ctx.client().clone();
        tracing::debug!(target: "runnel_console", user = %ctx.user, topic = %name, total, "search");
        tokio::spawn(async move {
            let mut scanned = 0i64;
            let mut found = 0usize;
            let mut last = Instant::now();
            let _ = tx
                .send(event(
                    "progress",
                    &serde_json::json!({"scanned": 0, "total": total}),
                ))
                .await;
            let result = data::read(
                &client,
                &name,
                &ranges,
                Instant::now() + Duration::from_secs(300),
                |r| {
                    if tx.is_closed() {
                        return ControlFlow::Break(());
                    }
                    scanned += 1;
                    if needle.matches(&r) && found < MAX_MATCHES {
                        found += 1;
                        // A full channel drops a match rather than stall the scan; the count
                        // in `done` says how many were found.
                        let _ = tx.try_send(event("match", &render::view(&r, format)));
                    }
                    if last.elapsed() > Duration::from_millis(200) {
                        last = Instant::now();
                        let _ = tx.try_send(event(
                            "progress",
                            &serde_json::json!({"scanned": scanned, "total": total}),
                        ));
                    }
                    ControlFlow::Continue(())
                },
            )
            .await;
            let end = match result {
                Ok(_) => serde_json::json!({"scanned": scanned, "total": total, "found": found}),
                Err(e) => {
                    serde_json::json!({"scanned": scanned, "total": total, "found": found, "error": e.to_string()})
                }
            };
            let _ = tx.send(event("done", &end)).await;
        });
        sse(rx)
    }
}

/// GET /topics/{name}/tail.
pub async fn tail(Path(name): Path<String>, ctx: Ctx, Query(q): Query<Params>) -> Response {
    {
        let format = Format::parse(q.get("format").map(String::as_str));
        let consumer = match data::tail(ctx.client(), &ctx.admin, &name).await {
            Ok(c) => c,
            Err(e) => return failed(&e.to_string()),
        };
        let (tx, rx) = mpsc::channel::<Event>(256);
        tokio::spawn(async move {
            let _ = tx.send(event("ready", &"live")).await;
            while !tx.is_closed() {
                match consumer.poll(Duration::from_millis(500)).await {
                    Ok(records) => {
                        for r in &records {
                            if tx
                                .send(event("record", &render::view(r, format)))
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(event("failed", &e.to_string())).await;
                        break;
                    }
                }
            }
            let _ = consumer.close().await;
        });
        sse(rx)
    }
}
