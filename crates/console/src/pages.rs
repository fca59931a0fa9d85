//! The console's pages and the changes they make: login, overview, topics (create, delete,
//! configs), messages (browse, export, search without JavaScript, produce), consumer groups
//! (lag, offset reset with a dry run first, delete), ACLs, SCRAM users and quotas. Every change
//! needs the admin role and the session's CSRF token, and is logged with the user.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use minijinja::context;
use runnel_client::admin::{AlterOp, ConfigResource, NewTopic, ResetTarget};
use runnel_client::{Header, Producer, ProducerConfig, ProducerRecord};

use crate::auth::{self, AuthMode, Role};
use crate::data::{self, From};
use crate::render::{self, Format};
use crate::{session_cookie, Console, Ctx, Failure};

type Params = HashMap<String, String>;

/// A page over all partitions reads at most this many times its limit.
const NEWEST_SPREAD: i64 = 10;

/// Percent-encodes a query parameter value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn param<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The refusal of a change without the admin role or the session's CSRF token (None: allowed).
fn refused(c: &Console, ctx: &Ctx, form: &Params) -> Option<Response> {
    if form.get("csrf").map(String::as_str) != Some(ctx.csrf.as_str()) {
        return Some(c.fail(
            Some(ctx),
            Failure::new(
                StatusCode::FORBIDDEN,
                "The form's token does not match this session (reload the page and try again).",
            ),
        ));
    }
    if !ctx.admin_role() {
        return Some(c.fail(
            Some(ctx),
            Failure::new(
                StatusCode::FORBIDDEN,
                format!("{} is read-only: changes are refused.", ctx.user),
            ),
        ));
    }
    None
}

fn action(ctx: &Ctx, what: &str, detail: &str) {
    tracing::info!(target: "runnel_console", user = %ctx.user, action = what, "{detail}");
}

fn client_failure(c: &Console, ctx: &Ctx, e: &runnel_client::Error) -> Response {
    c.fail(Some(ctx), Failure::from_client(e, c.bootstrap()))
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// GET /login.
pub async fn login_form(State(c): State<Arc<Console>>, Query(q): Query<Params>) -> Response {
    c.page(
        None,
        StatusCode::OK,
        "login.html",
        context! { next => q.get("next").cloned().unwrap_or_else(|| "/".into()), error => None::<String> },
    )
}

/// POST /login: checks the users file or the cluster's SASL, opens a session.
pub async fn login(State(c): State<Arc<Console>>, Form(f): Form<Params>) -> Response {
    let user = f.get("username").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let next = f
        .get("next")
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .cloned()
        .unwrap_or_else(|| "/".into());
    let refuse = |why: &str| {
        tracing::info!(target: "runnel_console", user = %user, action = "login-refused", "{why}");
        c.page(
            None,
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! { next => next.clone(), error => Some(why.to_string()) },
        )
    };
    let (role, admin) = match &c.cfg.auth {
        AuthMode::None => (Role::Admin, None),
        AuthMode::File(users) => {
            // An unknown user costs the same hashing as a known one (no timing tell), and the
            // hashing (hundreds of ms) runs off the async workers.
            let found = users.iter().find(|u| u.name == user);
            let hash = found.map_or_else(|| auth::dummy_hash().to_string(), |u| u.hash.clone());
            let given = password.clone();
            let ok = tokio::task::spawn_blocking(move || auth::verify_password(&given, &hash))
                .await
                .unwrap_or(false);
            match found {
                Some(u) if ok => (u.role, None),
                _ => return refuse("Unknown user or wrong password."),
            }
        }
        AuthMode::Sasl { admins } => {
            let mut client = c.cfg.client.clone();
            let set = client
                .set("sasl.username", &user)
                .and_then(|_| client.set("sasl.password", &password));
            if let Err(e) = set {
                return refuse(&e.to_string());
            }
            match runnel_client::Admin::new(client).await {
                Ok(a) => match a.describe_cluster().await {
                    Ok(_) => {
                        let role = if admins.contains(&user) {
                            Role::Admin
                        } else {
                            Role::ReadOnly
                        };
                        (role, Some(Arc::new(a)))
                    }
                    Err(e) => return refuse(&format!("The cluster refused the login: {e}")),
                },
                Err(e) => return refuse(&format!("The cluster refused the login: {e}")),
            }
        }
    };
    let id = c.sessions.open(&user, role, admin);
    tracing::info!(target: "runnel_console", user = %user, action = "login", role = role.name(), "logged in");
    let mut r = see_other(&next);
    r.headers_mut()
        .append(header::SET_COOKIE, session_cookie(&id));
    r
}

/// POST /logout.
pub async fn logout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<Params>,
) -> Response {
    if let Some(id) = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| auth::cookie(v, auth::COOKIE))
    {
        if let Some(s) = c.sessions.get(id) {
            if f.get("csrf") == Some(&s.csrf) {
                c.sessions.close(id);
            }
        }
    }
    let mut r = see_other("/login");
    r.headers_mut()
        .append(header::SET_COOKIE, session_cookie(""));
    r
}

/// GET /: the overview.
pub async fn overview(State(c): State<Arc<Console>>, ctx: Ctx) -> Response {
    {
        match data::overview(&ctx.admin, &c.log_dirs).await {
            Ok(o) => c.page(
                Some(&ctx),
                StatusCode::OK,
                "overview.html",
                context! { o => o, nav => "overview" },
            ),
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// GET /topics.
pub async fn topics(State(c): State<Arc<Console>>, ctx: Ctx, Query(q): Query<Params>) -> Response {
    {
        let filter = param(&q, "q").unwrap_or("").to_string();
        let internal = param(&q, "internal").is_some();
        let page = param(&q, "page").and_then(|p| p.parse().ok()).unwrap_or(0);
        match data::topics(&ctx.admin, &c.log_dirs, &filter, internal, page).await {
            Ok(t) => c.page(
                Some(&ctx),
                StatusCode::OK,
                "topics.html",
                context! { t => t, q => filter, internal => internal, nav => "topics",
                flash => param(&q, "flash") },
            ),
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// POST /topics/create.
pub async fn create_topic(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Form(f): Form<Params>,
) -> Response {
    {
        if let Some(r) = refused(&c, &ctx, &f) {
            return r;
        }
        let Some(name) = param(&f, "name") else {
            return c.fail(
                Some(&ctx),
                Failure::new(StatusCode::BAD_REQUEST, "A topic needs a name."),
            );
        };
        let mut t = NewTopic::new(name, -1);
        match (
            param(&f, "partitions").map(str::parse::<i32>),
            param(&f, "replication").map(str::parse::<i16>),
        ) {
            (Some(Err(_)), _) | (_, Some(Err(_))) => {
                return c.fail(
                    Some(&ctx),
                    Failure::new(
                        StatusCode::BAD_REQUEST,
                        "Partitions and replication are whole numbers.",
                    ),
                )
            }
            (p, r) => {
                t.partitions = p.and_then(Result::ok).unwrap_or(-1);
                t.replication_factor = r.and_then(Result::ok).unwrap_or(-1);
            }
        }
        match ctx.admin.create_topic(&t).await {
            Ok(()) => {
                action(&ctx, "create-topic", &format!("created topic {name}"));
                see_other(&format!(
                    "/topics/{}?flash={}",
                    url_encode(name),
                    url_encode(&format!("Topic {name} created."))
                ))
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// GET /topics/{name}.
pub async fn topic(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    ctx: Ctx,
    Query(q): Query<Params>,
) -> Response {
    {
        match data::topic(&ctx.admin, &c.log_dirs, &name).await {
            Ok(t) => c.page(
                Some(&ctx),
                StatusCode::OK,
                "topic.html",
                context! { t => t, nav => "topics", flash => param(&q, "flash") },
            ),
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// POST /topics/{name}/configs: sets a key, or removes the topic's own value when empty.
pub async fn alter_config(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    ctx: Ctx,
    Form(f): Form<Params>,
) -> Response {
    {
        if let Some(r) = refused(&c, &ctx, &f) {
            return r;
        }
        let Some(key) = param(&f, "key") else {
            return c.fail(
                Some(&ctx),
                Failure::new(StatusCode::BAD_REQUEST, "Which config? The key is empty."),
            );
        };
        let op = match param(&f, "value") {
            Some(v) => AlterOp::Set(key.to_string(), v.to_string()),
            None => AlterOp::Delete(key.to_string()),
        };
        match ctx
            .admin
            .alter_configs(ConfigResource::Topic, &name, std::slice::from_ref(&op))
            .await
        {
            Ok(()) => {
                action(&ctx, "alter-config", &format!("topic {name}: {op:?}"));
                see_other(&format!(
                    "/topics/{}?flash={}",
                    url_encode(&name),
                    url_encode(&format!("Config {key} changed."))
                ))
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// POST /topics/{name}/delete: the topic's name must be typed again.
pub async fn delete_topic(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    ctx: Ctx,
    Form(f): Form<Params>,
) -> Response {
    {
        if let Some(r) = refused(&c, &ctx, &f) {
            return r;
        }
        if param(&f, "confirm") != Some(name.as_str()) {
            return c.fail(
                Some(&ctx),
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("Type the topic's name ({name}) to delete it."),
                ),
            );
        }
        match ctx.admin.delete_topics(std::slice::from_ref(&name)).await {
            Ok(()) => {
                action(&ctx, "delete-topic", &format!("deleted topic {name}"));
                see_other(&format!(
                    "/topics?flash={}",
                    url_encode(&format!("Topic {name} deleted."))
                ))
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// What a messages page asks for.
pub struct Browse {
    /// One partition, or all.
    pub partition: Option<i32>,
    /// Where to start.
    pub from: From,
    /// Records at most.
    pub limit: usize,
    /// How to show bytes.
    pub format: Format,
}

/// Reads a messages page's query; a bad value is a 400 with what to fix.
pub fn browse_params(q: &Params, max_limit: usize) -> Result<Browse, Failure> {
    let bad = |m: &str| Failure::new(StatusCode::BAD_REQUEST, m.to_string());
    let partition = match param(q, "partition") {
        None | Some("all") => None,
        Some(p) => Some(
            p.parse::<i32>()
                .map_err(|_| bad("The partition is a number or all."))?,
        ),
    };
    let from = if param(q, "newest").is_some() {
        From::Newest
    } else if let Some(o) = param(q, "offset") {
        From::Offset(o.parse().map_err(|_| bad("The offset is a number."))?)
    } else if let Some(t) = param(q, "time") {
        From::Time(render::parse_time(t).ok_or_else(|| {
            bad("The time is ms since the epoch or ISO 8601 UTC, e.g. 2026-12-03T10:00:00Z.")
        })?)
    } else {
        From::Newest
    };
    let limit = match param(q, "limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| bad("The limit is a number."))?,
    }
    .clamp(1, max_limit);
    Ok(Browse {
        partition,
        from,
        limit,
        format: Format::parse(param(q, "format")),
    })
}

/// The query string of `q` without `drop`'s keys.
fn query_without(q: &Params, drop: &[&str]) -> String {
    let mut keys: Vec<&String> = q.keys().filter(|k| !drop.contains(&k.as_str())).collect();
    keys.sort();
    keys.iter()
        .map(|k| format!("{}={}", url_encode(k), url_encode(&q[*k])))
        .collect::<Vec<_>>()
        .join("&")
}

async fn browse_records(
    ctx: &Ctx,
    topic: &str,
    b: &Browse,
) -> Result<(Vec<runnel_client::ConsumerRecord>, usize), runnel_client::Error> {
    let mut per = b.limit as i64;
    if b.partition.is_none() {
        // Over many partitions, read at most NEWEST_SPREAD x limit records in all: the first (or
        // newest) of each partition; exact up to NEWEST_SPREAD partitions, beyond that a
        // partition that holds all of the page's records shows fewer.
        let n = ctx
            .admin
            .describe_topic(topic)
            .await?
            .partitions
            .len()
            .max(1) as i64;
        per = per.min((NEWEST_SPREAD * per + n - 1) / n).max(1);
    }
    let (ranges, partitions) = data::plan(&ctx.admin, topic, b.partition, b.from, per).await?;
    let recs = data::records(
        ctx.client(),
        topic,
        &ranges,
        b.from == From::Newest,
        b.limit,
    )
    .await?;
    Ok((recs, partitions))
}

/// GET /topics/{name}/messages.
pub async fn messages(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    ctx: Ctx,
    Query(q): Query<Params>,
) -> Response {
    {
        let b = match browse_params(&q, 1000) {
            Ok(b) => b,
            Err(f) => return c.fail(Some(&ctx), f),
        };
        let live = param(&q, "live").is_some();
        let (recs, partitions) = if live {
            match ctx.admin.describe_topic(&name).await {
                Ok(t) => (Vec::new(), t.partitions.len()),
                Err(e) => return client_failure(&c, &ctx, &e),
            }
        } else {
            match browse_records(&ctx, &name, &b).await {
                Ok(r) => r,
                Err(e) => return client_failure(&c, &ctx, &e),
            }
        };
        let views: Vec<render::RecordView> =
            recs.iter().map(|r| render::view(r, b.format)).collect();
        // Older and newer pages of one partition read in offset order.
        let (older, newer) = match (b.partition, recs.iter().map(|r| r.offset).min()) {
            (Some(_), Some(lo)) => {
                let hi = recs.iter().map(|r| r.offset).max().unwrap_or(lo);
                let base = query_without(&q, &["offset", "newest", "time", "flash", "produced"]);
                (
                    Some(format!("{base}&offset={}", (lo - b.limit as i64).max(0))),
                    Some(format!("{base}&offset={}", hi + 1)),
                )
            }
            _ => (None, None),
        };
        let produced = param(&q, "produced").and_then(|p| {
            let (part, off) = p.split_once(':')?;
            Some((part.parse::<i32>().ok()?, off.parse::<i64>().ok()?))
        });
        c.page(
            Some(&ctx),
            StatusCode::OK,
            "messages.html",
            context! {
                topic => name,
                records => views,
                partitions => (0..partitions as i32).collect::<Vec<_>>(),
                partition => b.partition,
                offset => param(&q, "offset"),
                time => param(&q, "time"),
                newest => b.from == From::Newest,
                limit => b.limit,
                format => param(&q, "format").unwrap_or("text"),
                live => live,
                query => query_without(&q, &["flash", "produced", "live"]),
                older => older,
                newer => newer,
                produced => produced,
                nav => "topics",
                search => None::<()>,
            },
        )
    }
}

/// GET /topics/{name}/export: the records the same query shows, as JSON lines.
pub async fn export(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    ctx: Ctx,
    Query(q): Query<Params>,
) -> Response {
    {
        let b = match browse_params(&q, 10_000) {
            Ok(b) => b,
            Err(f) => return c.fail(Some(&ctx), f),
        };
        match browse_records(&ctx, &name, &b).await {
            Ok((recs, _)) => {
                let mut body = String::new();
                for r in &recs {
                    body.push_str(&render::export_line(r));
                    body.push('\n');
                }
                let file = name.replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '-', "_");
                (
                    [
                        (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
                        (
                            header::CONTENT_DISPOSITION,
                            format!("attachment; filename=\"{file}.jsonl\""),
                        ),
                    ],
                    body,
                )
                    .into_response()
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// What a search looks for.
pub struct Needle {
    /// Substring or regular expression.
    matcher: Matcher,
    /// Where: any, key, value or header.
    field: String,
}

enum Matcher {
    Sub(String),
    Re(regex::Regex),
}

impl Needle {
    /// From a search form; a bad regular expression is a 400.
    pub fn parse(q: &Params) -> Result<Needle, Failure> {
        let text = param(q, "q").unwrap_or("").to_string();
        if text.is_empty() {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "Search for what? The text is empty.",
            ));
        }
        let matcher = if param(q, "regex").is_some() {
            Matcher::Re(
                regex::RegexBuilder::new(&text)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        Failure::new(
                            StatusCode::BAD_REQUEST,
                            format!("Not a regular expression: {e}"),
                        )
                    })?,
            )
        } else {
            Matcher::Sub(text)
        };
        let field = param(q, "in").unwrap_or("any").to_string();
        Ok(Needle { matcher, field })
    }

    fn hit(&self, bytes: Option<&[u8]>) -> bool {
        let Some(b) = bytes else { return false };
        let t = String::from_utf8_lossy(b);
        match &self.matcher {
            Matcher::Sub(s) => t.contains(s.as_str()),
            Matcher::Re(r) => r.is_match(&t),
        }
    }

    /// Whether a record matches.
    pub fn matches(&self, r: &runnel_client::ConsumerRecord) -> bool {
        let f = self.field.as_str();
        (matches!(f, "any" | "key") && self.hit(r.key.as_deref()))
            || (matches!(f, "any" | "value") && self.hit(r.value.as_deref()))
            || (matches!(f, "any" | "header")
                && r.headers.iter().any(|h| {
                    let line = format!(
                        "{}: {}",
                        h.key,
                        String::from_utf8_lossy(h.value.as_deref().unwrap_or_default())
                    );
                    self.hit(Some(line.as_bytes()))
                }))
    }
}

/// Records scanned by a search at most (per search, over its partitions).
pub fn search_budget(q: &Params) -> i64 {
    param(q, "max")
        .and_then(|m| m.parse::<i64>().ok())
        .unwrap_or(10_000)
        .clamp(1, 1_000_000)
}

/// The ranges a search scans: the newest `max` records over its partitions, or from an offset.
pub async fn search_ranges(
    ctx: &Ctx,
    topic: &str,
    q: &Params,
) -> Result<Vec<data::Range>, Failure> {
    let max = search_budget(q);
    let partition = match param(q, "partition") {
        None | Some("all") => None,
        Some(p) => Some(p.parse::<i32>().map_err(|_| {
            Failure::new(StatusCode::BAD_REQUEST, "The partition is a number or all.")
        })?),
    };
    let from = match param(q, "offset") {
        Some(o) => From::Offset(
            o.parse()
                .map_err(|_| Failure::new(StatusCode::BAD_REQUEST, "The offset is a number."))?,
        ),
        None => From::Newest,
    };
    let t = ctx
        .admin
        .describe_topic(topic)
        .await
        .map_err(|e| Failure::from_client(&e, &ctx.client().bootstrap))?;
    let n = if partition.is_some() {
        1
    } else {
        t.partitions.len().max(1) as i64
    };
    let per = (max + n - 1) / n;
    data::plan(&ctx.admin, topic, partition, from, per)
        .await
        .map(|(r, _)| r)
        .map_err(|e| Failure::from_client(&e, &ctx.client().bootstrap))
}

/// GET /topics/{name}/search: the search without JavaScript (the page waits for the result).
pub async fn search(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    ctx: Ctx,
    Query(q): Query<Params>,
) -> Response {
    {
        let needle = match Needle::parse(&q) {
            Ok(n) => n,
            Err(f) => return c.fail(Some(&ctx), f),
        };
        let ranges = match search_ranges(&ctx, &name, &q).await {
            Ok(r) => r,
            Err(f) => return c.fail(Some(&ctx), f),
        };
        let format = Format::parse(param(&q, "format"));
        let mut found = Vec::new();
        let scanned = data::read(
            ctx.client(),
            &name,
            &ranges,
            Instant::now() + Duration::from_secs(30),
            |r| {
                if needle.matches(&r) {
                    found.push(render::view(&r, format));
                    if found.len() >= 500 {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            },
        )
        .await;
        let scanned = match scanned {
            Ok(n) => n,
            Err(e) => return client_failure(&c, &ctx, &e),
        };
        let total: i64 = ranges.iter().map(|r| (r.to - r.from).max(0)).sum();
        c.page(
            Some(&ctx),
            StatusCode::OK,
            "messages.html",
            context! {
                topic => name,
                records => Vec::<render::RecordView>::new(),
                partitions => Vec::<i32>::new(),
                limit => 50,
                format => param(&q, "format").unwrap_or("text"),
                newest => true,
                query => "",
                nav => "topics",
                search => context! {
                    q => param(&q, "q"), field => param(&q, "in").unwrap_or("any"),
                    regex => param(&q, "regex").is_some(), max => search_budget(&q),
                    matches => found, scanned => scanned, total => total,
                },
            },
        )
    }
}

/// POST /topics/{name}/produce: one record, then its page.
pub async fn produce(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    ctx: Ctx,
    Form(f): Form<Params>,
) -> Response {
    {
        if let Some(r) = refused(&c, &ctx, &f) {
            return r;
        }
        let mut record = ProducerRecord::new(name.clone());
        record.key = f
            .get("key")
            .filter(|k| !k.is_empty())
            .map(|k| Bytes::from(k.clone()));
        record.value = Some(Bytes::from(
            f.get("value")
                .cloned()
                .unwrap_or_default()
                .replace("\r\n", "\n"),
        ));
        for line in f.get("headers").map(String::as_str).unwrap_or("").lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return c.fail(
                    Some(&ctx),
                    Failure::new(
                        StatusCode::BAD_REQUEST,
                        format!("Header line {line:?} is not `key: value`."),
                    ),
                );
            };
            record.headers.push(Header {
                key: k.trim().to_string(),
                value: Some(Bytes::from(v.trim().to_string())),
            });
        }
        match param(&f, "partition").map(str::parse::<i32>) {
            Some(Ok(p)) => record.partition = Some(p),
            Some(Err(_)) => {
                return c.fail(
                    Some(&ctx),
                    Failure::new(StatusCode::BAD_REQUEST, "The partition is a number."),
                )
            }
            None => {}
        }
        let sent = async {
            let producer = Producer::new(ProducerConfig::new(ctx.client().clone())).await?;
            let delivery = producer.send(record).await;
            let result = match delivery {
                Ok(d) => d.await,
                Err(e) => Err(e),
            };
            let _ = producer.close().await;
            result
        }
        .await;
        match sent {
            Ok(md) => {
                action(
                    &ctx,
                    "produce",
                    &format!(
                        "produced to {name}-{} at offset {}",
                        md.partition, md.offset
                    ),
                );
                see_other(&format!(
                    "/topics/{}/messages?partition={}&offset={}&limit=1&produced={}:{}",
                    url_encode(&name),
                    md.partition,
                    md.offset,
                    md.partition,
                    md.offset
                ))
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// GET /groups.
pub async fn groups(State(c): State<Arc<Console>>, ctx: Ctx, Query(q): Query<Params>) -> Response {
    {
        match data::groups(&ctx.admin).await {
            Ok(g) => c.page(
                Some(&ctx),
                StatusCode::OK,
                "groups.html",
                context! { groups => g, nav => "groups", flash => param(&q, "flash") },
            ),
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// GET /groups/{id}.
pub async fn group(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    ctx: Ctx,
    Query(q): Query<Params>,
) -> Response {
    {
        match ctx.admin.group_lag(&id).await {
            Ok((desc, rows)) => {
                if desc.state == "Dead" && rows.is_empty() {
                    return c.fail(
                        Some(&ctx),
                        Failure::new(StatusCode::NOT_FOUND, format!("Group {id} does not exist.")),
                    );
                }
                let total: i64 = rows.iter().filter_map(|r| r.lag).sum();
                let mut topics: Vec<String> = rows.iter().map(|r| r.tp.0.clone()).collect();
                topics.dedup();
                let members: Vec<minijinja::Value> = desc
                    .members
                    .iter()
                    .map(|m| {
                        context! {
                            id => m.member_id, client_id => m.client_id, host => m.host,
                            instance => m.instance_id,
                            assignment => m.assignment.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>().join(", "),
                        }
                    })
                    .collect();
                let lag: Vec<minijinja::Value> = rows
                    .iter()
                    .map(|r| {
                        context! {
                            topic => r.tp.0, partition => r.tp.1, committed => r.committed,
                            end => r.log_end, lag => r.lag, member => r.member,
                        }
                    })
                    .collect();
                c.page(
                    Some(&ctx),
                    StatusCode::OK,
                    "group.html",
                    context! {
                        id => id, state => desc.state, protocol => desc.protocol,
                        members => members, lag => lag, total => total, topics => topics,
                        nav => "groups", flash => param(&q, "flash"),
                    },
                )
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// POST /groups/{id}/reset: a dry run, or with `execute=1` the reset itself.
pub async fn reset(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    ctx: Ctx,
    Form(f): Form<Params>,
) -> Response {
    {
        if let Some(r) = refused(&c, &ctx, &f) {
            return r;
        }
        let bad = |m: &str| {
            c.fail(
                Some(&ctx),
                Failure::new(StatusCode::BAD_REQUEST, m.to_string()),
            )
        };
        let value = param(&f, "value");
        let target = match param(&f, "strategy").unwrap_or("") {
            "earliest" => ResetTarget::Earliest,
            "latest" => ResetTarget::Latest,
            "offset" => match value.and_then(|v| v.parse().ok()) {
                Some(o) => ResetTarget::Offset(o),
                None => return bad("Reset to which offset? Give a number."),
            },
            "time" => match value.and_then(render::parse_time) {
                Some(t) => ResetTarget::Datetime(t),
                None => return bad("Reset to which time? ms or ISO 8601 UTC."),
            },
            _ => return bad("The strategy is earliest, latest, offset or time."),
        };
        let topics: Vec<String> = match param(&f, "topic") {
            None | Some("*") => match ctx.admin.committed_offsets(&id).await {
                Ok(m) => {
                    let mut t: Vec<String> = m.keys().map(|(t, _)| t.clone()).collect();
                    t.dedup();
                    t
                }
                Err(e) => return client_failure(&c, &ctx, &e),
            },
            Some(t) => vec![t.to_string()],
        };
        if topics.is_empty() {
            return bad("The group has no committed offsets: name a topic.");
        }
        let execute = param(&f, "execute") == Some("1");
        match ctx.admin.reset_offsets(&id, &topics, target, execute).await {
            Ok(plan) if execute => {
                action(
                    &ctx,
                    "reset-offsets",
                    &format!(
                        "group {id}: {} partition(s) of {} to {target:?}",
                        plan.len(),
                        topics.join(",")
                    ),
                );
                see_other(&format!(
                    "/groups/{}?flash={}",
                    url_encode(&id),
                    url_encode(&format!("Offsets of {} partition(s) reset.", plan.len()))
                ))
            }
            Ok(plan) => {
                let rows: Vec<minijinja::Value> = plan
                    .iter()
                    .map(|p| context! { topic => p.tp.0, partition => p.tp.1, current => p.current, target => p.target })
                    .collect();
                c.page(
                    Some(&ctx),
                    StatusCode::OK,
                    "reset.html",
                    context! {
                        id => id, plan => rows, nav => "groups",
                        topic => param(&f, "topic").unwrap_or("*"),
                        strategy => param(&f, "strategy"), value => value,
                    },
                )
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// POST /groups/{id}/delete.
pub async fn delete_group(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    ctx: Ctx,
    Form(f): Form<Params>,
) -> Response {
    {
        if let Some(r) = refused(&c, &ctx, &f) {
            return r;
        }
        match ctx.admin.delete_group(&id).await {
            Ok(()) => {
                action(&ctx, "delete-group", &format!("deleted group {id}"));
                see_other(&format!(
                    "/groups?flash={}",
                    url_encode(&format!("Group {id} deleted."))
                ))
            }
            Err(e) => client_failure(&c, &ctx, &e),
        }
    }
}

/// Kafka's SECURITY_DISABLED (no authorizer) or a refusal: a notice instead of a table.
fn notice_of(e: &runnel_client::Error) -> Option<String> {
    match e {
        runnel_client::Error::Kafka { code: 54, .. } => {
            Some("The cluster has no authorizer: there are no ACLs.".into())
        }
        runnel_client::Error::Kafka { code: 29..=31, .. } => {
            Some(format!("Not allowed to read this: {e}"))
        }
        runnel_client::Error::UnsupportedVersion { .. } => Some(e.to_string()),
        _ => None,
    }
}

/// GET /acls, /users, /quotas: read-only views of the cluster's security.
async fn security_page(c: Arc<Console>, ctx: Ctx, what: &'static str) -> Response {
    use runnel_client::acls::{
        name_of, AclFilter, OPERATIONS, PATTERN_TYPES, PERMISSIONS, RESOURCE_TYPES,
    };
    let rows: Result<Vec<minijinja::Value>, runnel_client::Error> = match what {
        "acls" => ctx.admin.describe_acls(&AclFilter::default()).await.map(|v| {
            v.iter()
                .map(|a| {
                    context! {
                        principal => a.principal, host => a.host,
                        operation => name_of(OPERATIONS, a.operation),
                        permission => name_of(PERMISSIONS, a.permission),
                        resource_type => name_of(RESOURCE_TYPES, a.resource_type),
                        resource_name => a.resource_name,
                        pattern => name_of(PATTERN_TYPES, a.pattern_type),
                    }
                })
                .collect()
        }),
        "users" => ctx.admin.describe_user_scram_credentials(None).await.map(|m| {
            m.iter()
                .map(|(u, creds)| {
                    context! {
                        name => u,
                        mechanisms => creds.iter().map(|(m, i)| format!("{} ({i} iterations)", m.name())).collect::<Vec<_>>().join(", "),
                    }
                })
                .collect()
        }),
        _ => ctx
            .admin
            .describe_client_quotas(&Default::default(), false)
            .await
            .map(|v| {
                v.iter()
                    .map(|(entity, values)| {
                        context! {
                            entity => entity.iter().map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>"))).collect::<Vec<_>>().join(", "),
                            values => values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
                        }
                    })
                    .collect()
            }),
    };
    let (rows, notice) = match rows {
        Ok(r) => (r, None),
        Err(e) => match notice_of(&e) {
            Some(n) => (Vec::new(), Some(n)),
            None => return client_failure(&c, &ctx, &e),
        },
    };
    c.page(
        Some(&ctx),
        StatusCode::OK,
        "security.html",
        context! { what => what, rows => rows, notice => notice, nav => what },
    )
}

macro_rules! security_handler {
    ($name:ident, $what:literal) => {
        #[doc = concat!("GET /", $what, ".")]
        pub async fn $name(State(c): State<Arc<Console>>, ctx: Ctx) -> Response {
            security_page(c, ctx, $what).await
        }
    };
}

security_handler!(acls, "acls");
security_handler!(users, "users");
security_handler!(quotas, "quotas");

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn browse_queries() {
        let b = browse_params(&q(&[]), 1000).ok().unwrap();
        assert_eq!((b.partition, b.from, b.limit), (None, From::Newest, 50));
        let b = browse_params(
            &q(&[("partition", "2"), ("offset", "7"), ("limit", "5000")]),
            1000,
        )
        .ok()
        .unwrap();
        assert_eq!(
            (b.partition, b.from, b.limit),
            (Some(2), From::Offset(7), 1000)
        );
        let b = browse_params(&q(&[("time", "1970-01-01T00:00:01Z")]), 10)
            .ok()
            .unwrap();
        assert_eq!(b.from, From::Time(1000));
        for bad in [
            ("partition", "x"),
            ("offset", "x"),
            ("time", "soon"),
            ("limit", "-1"),
        ] {
            let f = browse_params(&q(&[bad]), 10).err().unwrap();
            assert_eq!(f.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn needles_match_where_asked() {
        let rec = runnel_client::ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            timestamp: 0,
            log_append_time: false,
            key: Some(Bytes::from_static(b"order-17")),
            value: Some(Bytes::from_static(b"{\"total\": 42}")),
            headers: vec![Header {
                key: "trace".into(),
                value: Some(Bytes::from_static(b"abc")),
            }],
            leader_epoch: 0,
        };
        let n = |pairs: &[(&str, &str)]| Needle::parse(&q(pairs)).ok().unwrap();
        assert!(n(&[("q", "order-1")]).matches(&rec));
        assert!(!n(&[("q", "order-1"), ("in", "value")]).matches(&rec));
        assert!(n(&[("q", "\"total\": \\d+"), ("regex", "on"), ("in", "value")]).matches(&rec));
        assert!(n(&[("q", "trace: abc"), ("in", "header")]).matches(&rec));
        assert!(!n(&[("q", "xyz")]).matches(&rec));
        assert!(Needle::parse(&q(&[("q", "("), ("regex", "on")])).is_err());
        assert!(Needle::parse(&q(&[])).is_err());
        assert_eq!(url_encode("/a b?c=d"), "/a%20b%3Fc%3Dd");
    }
}
