//! Runnel's web console: browse the topics, messages and consumer groups of any Kafka-compatible
//! cluster (Runnel or Apache Kafka) in a browser, through Runnel's Rust client. Server-rendered
//! HTML (minijinja templates and a little JavaScript, embedded in the binary) served by axum;
//! `runnel console` runs it alone, `runnel serve` beside the broker (`console.listeners`).
//!
//! This module owns the configuration, the shared state, the routes and who may use them
//! ([`auth`]); [`pages`] renders the pages and performs the changes, [`streams`] serves the
//! search and the live tail as server-sent events, [`data`] reads the cluster and [`render`]
//! formats records.

pub mod auth;
pub mod data;
pub mod pages;
pub mod render;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use runnel_client::{Admin, ClientConfig, Error};
use tokio::net::TcpListener;

use crate::auth::{AuthMode, Role, Sessions, COOKIE};

/// How the console reaches its cluster and who may use it.
#[derive(Clone)]
pub struct ConsoleConfig {
    /// The cluster's connection settings (bootstrap servers, TLS, SASL).
    pub client: ClientConfig,
    /// How logins are checked.
    pub auth: AuthMode,
    /// A session ends after this long without a request.
    pub session_timeout: Duration,
}

/// The console's state, shared by every request.
pub struct Console {
    cfg: ConsoleConfig,
    shared: tokio::sync::Mutex<Option<Arc<Admin>>>,
    sessions: Sessions,
    log_dirs: data::LogDirsCache,
    templates: Environment<'static>,
    /// The CSRF token of every page without authentication.
    anonymous_csrf: String,
}

/// Who is asking, and through which connection to the cluster.
pub struct Ctx {
    /// The user (`anonymous` without authentication).
    pub user: String,
    /// The role.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
    /// The admin client to use.
    pub admin: Arc<Admin>,
    /// Whether logins are required (a logout form is shown).
    pub auth: bool,
}

impl Ctx {
    /// Whether the user may change things.
    pub fn admin_role(&self) -> bool {
        self.role == Role::Admin
    }

    /// The client settings for producers and consumers of this user.
    pub fn client(&self) -> &ClientConfig {
        &self.admin.cluster().config
    }
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("error.html", include_str!("../templates/error.html")),
        ("overview.html", include_str!("../templates/overview.html")),
        ("topics.html", include_str!("../templates/topics.html")),
        ("topic.html", include_str!("../templates/topic.html")),
        ("records.html", include_str!("../templates/records.html")),
        ("messages.html", include_str!("../templates/messages.html")),
        ("groups.html", include_str!("../templates/groups.html")),
        ("group.html", include_str!("../templates/group.html")),
        ("reset.html", include_str!("../templates/reset.html")),
        ("security.html", include_str!("../templates/security.html")),
    ] {
        env.add_template(name, text)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env.add_filter("bytes", |n: i64| render::human_bytes(n));
    env
}

/// An error page, with the status that fits.
pub struct Failure {
    /// HTTP status.
    pub status: StatusCode,
    /// What a person can act on.
    pub message: String,
}

impl Failure {
    /// A failure with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A client error, as a person reads it: a cluster that cannot be reached, a topic or group
    /// that does not exist, or what the broker said.
    pub fn from_client(e: &Error, bootstrap: &[String]) -> Failure {
        match e {
            Error::Connect { .. } | Error::Disconnected(_) | Error::Timeout { .. } => Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "The cluster is unreachable at {}: {e}. Check that its brokers run and \
                         that this host reaches them.",
                    bootstrap.join(",")
                ),
            ),
            Error::NotFound(_) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
            Error::Kafka { code: 3, .. } => Failure::new(
                StatusCode::NOT_FOUND,
                format!("{e}: it does not exist (deleted?)"),
            ),
            Error::Kafka { code: 69, .. } => Failure::new(
                StatusCode::NOT_FOUND,
                format!("{e}: the group does not exist"),
            ),
            Error::Authentication(_) => Failure::new(StatusCode::UNAUTHORIZED, e.to_string()),
            Error::Kafka { code: 29..=31, .. } => {
                Failure::new(StatusCode::FORBIDDEN, e.to_string())
            }
            _ => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

impl Console {
    /// The console's state for `cfg`; nothing is connected yet.
    pub fn new(cfg: ConsoleConfig) -> Arc<Console> {
        Arc::new(Console {
            sessions: Sessions::new(cfg.session_timeout),
            cfg,
            shared: tokio::sync::Mutex::new(None),
            log_dirs: data::LogDirsCache::default(),
            templates: templates(),
            anonymous_csrf: auth::token(),
        })
    }

    /// The bootstrap servers, for messages.
    pub fn bootstrap(&self) -> &[String] {
        &self.cfg.client.bootstrap
    }

    /// The console's own cluster connection, made on first use (and again after a failure).
    async fn shared_admin(&self) -> Result<Arc<Admin>, Failure> {
        let mut slot = self.shared.lock().await;
        if let Some(a) = &*slot {
            return Ok(a.clone());
        }
        let admin = Admin::new(self.cfg.client.clone())
            .await
            .map(Arc::new)
            .map_err(|e| Failure::from_client(&e, self.bootstrap()))?;
        *slot = Some(admin.clone());
        Ok(admin)
    }

    /// Renders a template with the page's common context (user, role, CSRF token, ...).
    pub fn page(
        &self,
        ctx: Option<&Ctx>,
        status: StatusCode,
        template: &str,
        vars: minijinja::Value,
    ) -> Response {
        let common = minijinja::context! {
            user => ctx.map(|c| c.user.clone()),
            role => ctx.map(|c| c.role.name()),
            is_admin => ctx.is_some_and(|c| c.admin_role()),
            csrf => ctx.map(|c| c.csrf.clone()),
            auth => ctx.is_some_and(|c| c.auth),
            bootstrap => self.bootstrap().join(","),
        };
        let all = minijinja::context! { ..vars, ..common };
        match self
            .templates
            .get_template(template)
            .and_then(|t| t.render(all))
        {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering {template}: {e:#}"),
            )
                .into_response(),
        }
    }

    /// The error page of `f`.
    pub fn fail(&self, ctx: Option<&Ctx>, f: Failure) -> Response {
        self.page(
            ctx,
            f.status,
            "error.html",
            minijinja::context! { message => f.message },
        )
    }
}

/// A `Set-Cookie` header value for a session id (empty id: remove the cookie).
pub fn session_cookie(id: &str) -> HeaderValue {
    let v = if id.is_empty() {
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    } else {
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict")
    };
    HeaderValue::from_str(&v).expect("a valid cookie")
}

/// Who is asking, for every handler that takes a [`Ctx`]: the session of the request's cookie,
/// or, without authentication, the anonymous admin (whose CSRF token is the console's own: a page
/// of another site cannot read it). Without a session a GET goes to the login page and anything
/// else is refused; a cluster that cannot be reached is the 503 page.
impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Arc<Console>) -> Result<Ctx, Response> {
        let (user, role, csrf, own_admin, auth) = if matches!(c.cfg.auth, AuthMode::None) {
            let anon = "anonymous".to_string();
            (anon, Role::Admin, c.anonymous_csrf.clone(), None, false)
        } else {
            let session = parts
                .headers
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| auth::cookie(v, COOKIE))
                .and_then(|id| c.sessions.get(id));
            match session {
                Some(s) => (s.user, s.role, s.csrf, s.admin, true),
                None if parts.method == Method::GET => {
                    let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    let to = format!("/login?next={}", pages::url_encode(next));
                    return Err(Redirect::to(&to).into_response());
                }
                None => {
                    return Err(c.fail(None, Failure::new(StatusCode::FORBIDDEN, "Log in first.")))
                }
            }
        };
        let admin = match own_admin {
            Some(a) => a,
            None => c.shared_admin().await.map_err(|f| c.fail(None, f))?,
        };
        Ok(Ctx {
            user,
            role,
            csrf,
            admin,
            auth,
        })
    }
}

async fn static_file(Path(name): Path<String>) -> Response {
    let (body, ctype) = match name.as_str() {
        "console.css" => (include_str!("../static/console.css"), "text/css"),
        "console.js" => (include_str!("../static/console.js"), "text/javascript"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/topics", get(pages::topics))
        .route("/topics/create", post(pages::create_topic))
        .route("/topics/{name}", get(pages::topic))
        .route("/topics/{name}/configs", post(pages::alter_config))
        .route("/topics/{name}/delete", post(pages::delete_topic))
        .route("/topics/{name}/messages", get(pages::messages))
        .route("/topics/{name}/export", get(pages::export))
        .route("/topics/{name}/search", get(pages::search))
        .route("/topics/{name}/search/stream", get(streams::search))
        .route("/topics/{name}/tail", get(streams::tail))
        .route("/topics/{name}/produce", post(pages::produce))
        .route("/groups", get(pages::groups))
        .route("/groups/{id}", get(pages::group))
        .route("/groups/{id}/reset", post(pages::reset))
        .route("/groups/{id}/delete", post(pages::delete_group))
        .route("/acls", get(pages::acls))
        .route("/users", get(pages::users))
        .route("/quotas", get(pages::quotas))
        .route("/static/{name}", get(static_file))
        .fallback(not_found)
        .with_state(console)
}

async fn not_found(State(console): State<Arc<Console>>) -> Response {
    console.fail(None, Failure::new(StatusCode::NOT_FOUND, "No such page."))
}

/// Binds `addr` (host:port; port 0 picks one).
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the console to {addr}: {e}"))
}

/// Serves the console on `listener` until the process ends.
pub async fn serve(listener: TcpListener, cfg: ConsoleConfig) -> anyhow::Result<()> {
    let app = router(Console::new(cfg));
    axum::serve(listener, app).await?;
    Ok(())
}
