//! Baton's HTTP API (CONTRACTS.md, "HTTP API").
//!
//! Why this crate exists: it is the only place that knows HTTP. Handlers extract the request
//! into domain types, call the handoff service ([`baton_core::Service`], which owns every
//! command, its one atomic change and routing), and map the typed answer or error to HTTP.
//! Errors map to HTTP in one place ([`error::ApiError`]): 4xx bodies say what to fix, 503s say
//! why storage cannot write, 500 bodies are opaque and the cause is logged. [`http`] is the
//! server loop (connection cap, timeouts, graceful stop). [`openapi`] generates the OpenAPI
//! document from the handlers and their types.

pub mod auth;
mod console;
mod credentials;
pub mod error;
mod handlers;
pub mod http;
pub mod openapi;
pub mod throttle;

use anyhow::Context;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use baton_core::{Service, SystemClock};
use baton_engine::Engine;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `baton serve` options. Precedence: flags, then `BATON_` environment variables, then defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stderr).
    #[arg(long, env = "BATON_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Database: `sqlite://PATH` (created if missing).
    #[arg(long, env = "BATON_DATABASE_URL", default_value = "sqlite://baton.db")]
    pub database_url: String,
    /// Policy file; the built-in default when absent.
    #[arg(long, env = "BATON_POLICY")]
    pub policy: Option<PathBuf>,
    /// Conversations kept in memory between turns; idle ones beyond this are dropped, least
    /// recently used first, and reloaded from the database when they speak again.
    #[arg(long, env = "BATON_SESSION_CACHE", default_value_t = 10_000)]
    pub session_cache: usize,
    /// Knowledge base: a folder of Markdown, text or JSON articles. Customer turns that carry no
    /// `kb_similarity` are compared with it, and `low_confidence` fires when no article covers
    /// them.
    #[arg(long, env = "BATON_KB")]
    pub kb: Option<PathBuf>,
    /// Open connections at most; beyond it new clients wait in the listen backlog.
    #[arg(long, env = "BATON_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (and an idle kept-alive connection
    /// stays open), and to send a request's body.
    #[arg(long, env = "BATON_CLIENT_TIMEOUT", default_value_t = 10)]
    pub client_timeout: u64,
    /// Serve other machines although no account or key exists yet, so that anyone who reaches
    /// the port may do everything: for a trusted network only; warned about at every start.
    /// Without it, such a server listens on a loopback address only. The first admin can come
    /// from `baton agents add ID --role admin` or, at start, from the environment:
    /// `BATON_ADMIN_PASSWORD` (and `BATON_ADMIN_ID`, default `admin`).
    #[arg(long, env = "BATON_OPEN_TO_NETWORK")]
    pub open_to_network: bool,
    /// The address users reach the server at, when it differs from `--listen` (behind a
    /// reverse proxy that ends TLS, e.g. `https://support.example.com`). With `https`, cookies
    /// are `Secure` and every answer carries `Strict-Transport-Security`; browsers' writes
    /// from this origin pass the cross-site check whatever `Host` the proxy sends.
    #[arg(long, env = "BATON_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Sites that may call the widget API from their own pages (CORS), comma-separated
    /// origins such as `https://shop.example.com`; such a page sends the conversation's token
    /// in the `X-Widget-Token` header. None by default: the widget API answers its own pages
    /// only.
    #[arg(long, env = "BATON_WIDGET_ORIGINS", value_delimiter = ',')]
    pub widget_origins: Vec<String>,
    /// Requests a second each signed-in person may make (bursts of 5 s' worth); 0: no limit.
    #[arg(long, env = "BATON_SESSION_RATE", default_value_t = throttle::Rates::default().per_session)]
    pub session_rate: u32,
    /// Requests a second each API key may make (bursts of 5 s' worth); 0: no limit.
    #[arg(long, env = "BATON_KEY_RATE", default_value_t = throttle::Rates::default().per_key)]
    pub key_rate: u32,
    /// Requests a second an address may make without valid credentials (bursts of 5 s'
    /// worth); 0: no limit.
    #[arg(long, env = "BATON_ANONYMOUS_RATE", default_value_t = throttle::Rates::default().per_anonymous_address)]
    pub anonymous_rate: u32,
}

/// What the API is configured with besides the service.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Without credentials, serve other machines' clients too (else loopback clients only).
    pub open_to_network: bool,
    /// How browsers reach the server.
    pub public: Public,
    /// Request rates per caller.
    pub rates: throttle::Rates,
    /// Origins allowed to call the widget API (CORS), each `scheme://host[:port]`.
    pub widget_origins: Vec<String>,
}

/// The origins of `--widget-origins`, checked.
///
/// # Errors
/// When one is not an http or https origin (no path).
pub fn widget_origins(given: &[String]) -> anyhow::Result<Vec<String>> {
    given
        .iter()
        .map(|o| {
            let o = o.trim().trim_end_matches('/');
            let public = Public::parse(Some(o))
                .with_context(|| format!("--widget-origins: `{o}`"))?;
            if public.origin.as_deref() != Some(o) {
                anyhow::bail!("--widget-origins: `{o}` is not an origin: give scheme://host[:port], without a path");
            }
            Ok(o.to_owned())
        })
        .collect()
}

/// How the server is reached from browsers: `--public-url`, parsed.
#[derive(Debug, Clone, Default)]
pub struct Public {
    /// The origin (`scheme://host[:port]`), if given.
    pub origin: Option<String>,
    /// Whether it is `https`: Secure cookies and HSTS.
    pub https: bool,
}

impl Public {
    /// From `--public-url`.
    ///
    /// # Errors
    /// When it is not an http or https URL.
    pub fn parse(url: Option<&str>) -> anyhow::Result<Public> {
        let Some(url) = url else {
            return Ok(Public::default());
        };
        let (scheme, rest) = url.split_once("://").with_context(|| {
            format!("--public-url `{url}` is not a URL: give e.g. https://support.example.com")
        })?;
        let host = rest.split('/').next().unwrap_or_default();
        if !matches!(scheme, "http" | "https") || host.is_empty() {
            anyhow::bail!("--public-url `{url}` is not an http or https URL: give e.g. https://support.example.com");
        }
        Ok(Public {
            origin: Some(format!("{scheme}://{host}")),
            https: scheme == "https",
        })
    }

    /// What a cookie set for this server adds to its attributes.
    pub fn cookie_attributes(&self) -> &'static str {
        if self.https {
            "; Secure"
        } else {
            ""
        }
    }
}

/// The environment variable with the first admin's password, read at start when no account
/// or key exists yet.
pub const ADMIN_PASSWORD_ENV: &str = "BATON_ADMIN_PASSWORD";
/// The environment variable with the first admin's id (default `admin`).
pub const ADMIN_ID_ENV: &str = "BATON_ADMIN_ID";

/// Makes the first admin from the environment when no credential exists yet; then whether
/// any credential exists.
async fn first_admin(service: &Service) -> anyhow::Result<bool> {
    if service.has_credentials().await? {
        return Ok(true);
    }
    let Ok(password) = std::env::var(ADMIN_PASSWORD_ENV) else {
        return Ok(false);
    };
    if password.chars().count() < 8 {
        anyhow::bail!("{ADMIN_PASSWORD_ENV} is shorter than 8 characters: choose a longer one");
    }
    let id = std::env::var(ADMIN_ID_ENV).unwrap_or_else(|_| "admin".to_owned());
    baton_domain::AgentId::parse(id.clone()).context(ADMIN_ID_ENV)?;
    let hash = auth::hash_password(&password)?;
    service
        .upsert_user(&id, &hash, baton_store::AccountRole::Admin)
        .await?;
    tracing::info!(admin = %id, "first admin created from {ADMIN_PASSWORD_ENV}");
    eprintln!("baton: admin `{id}` created from {ADMIN_PASSWORD_ENV}; sign in at /console");
    Ok(true)
}

/// Shared state of the API: the handoff service, and what the auth guard remembers.
pub struct AppState {
    service: Arc<Service>,
    /// An account or key has been seen: the API asks every caller who they are.
    credentials_seen: std::sync::atomic::AtomicBool,
    /// When the store was last asked whether credentials exist (ms).
    credentials_checked_at: std::sync::atomic::AtomicI64,
    /// Without credentials, other machines' clients are served too (`--open-to-network`).
    open_to_network: bool,
    /// How browsers reach the server (`--public-url`).
    public: Public,
    /// Request limits per session, key and anonymous address.
    caller_limits: throttle::CallerLimits,
    /// Origins allowed to call the widget API (`--widget-origins`).
    widget_origins: Vec<String>,
    /// The keys already audited as used this hour: (key id, hour since the epoch).
    key_uses: std::sync::Mutex<std::collections::HashSet<(String, i64)>>,
    /// Failed sign-ins per account and address.
    throttle: throttle::Throttle,
    /// The widget API's rate limits.
    widget_limits: throttle::WidgetLimits,
}

impl AppState {
    /// State over a running service, with `settings`.
    pub fn new(service: Arc<Service>, settings: Settings) -> Arc<Self> {
        Arc::new(Self {
            service,
            open_to_network: settings.open_to_network,
            public: settings.public,
            caller_limits: throttle::CallerLimits::new(settings.rates),
            widget_origins: settings.widget_origins,
            key_uses: std::sync::Mutex::default(),
            throttle: throttle::Throttle::default(),
            widget_limits: throttle::WidgetLimits::default(),
            credentials_seen: std::sync::atomic::AtomicBool::new(false),
            credentials_checked_at: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
        })
    }

    /// The handoff service.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }
}

/// One route: its method, its path and what serves it.
type Route = (Method, &'static str, MethodRouter<Arc<AppState>>);

/// `METHOD "path" => handler` lines to [`Route`]s, the method named once for both.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        vec![$((Method::$method, $path, axum::routing::on(MethodFilter::$method, $handler)),)*]
    };
}

/// Every route of the API. [`router`] serves exactly these, and the tests check that
/// /openapi.json documents exactly these.
fn routes() -> Vec<Route> {
    use handlers::*;
    routes! {
        GET "/healthz" => healthz,
        GET "/openapi.json" => openapi,
        POST "/v1/conversations" => create_conversation,
        GET "/v1/conversations/{id}" => get_conversation,
        POST "/v1/conversations/{id}/turns" => post_turn,
        GET "/v1/conversations/{id}/brief" => get_brief,
        POST "/v1/conversations/{id}/claim" => claim,
        POST "/v1/conversations/{id}/decline" => decline,
        POST "/v1/conversations/{id}/transfer" => transfer,
        POST "/v1/conversations/{id}/followup" => followup,
        GET "/v1/conversations/{id}/explain" => explain,
        GET "/v1/events" => event_stream,
        POST "/v1/conversations/{id}/reply" => reply,
        POST "/v1/conversations/{id}/notes" => note,
        POST "/v1/conversations/{id}/resolve" => resolve,
        POST "/v1/conversations/{id}/handback" => handback,
        GET "/v1/queues" => list_queues,
        GET "/v1/queues/{name}" => get_queue,
        GET "/v1/agents" => list_agents,
        POST "/v1/agents" => upsert_agent,
        POST "/v1/agents/{agent}/presence" => set_presence,
        POST "/v1/login" => console::login,
        POST "/v1/logout" => console::logout,
        GET "/v1/me" => console::me,
        GET "/v1/supervisor" => console::supervisor,
        GET "/v1/audit" => audit,
        GET "/v1/accounts" => credentials::list_accounts,
        POST "/v1/accounts" => credentials::set_account,
        POST "/v1/accounts/{id}/remove" => credentials::remove_account,
        GET "/v1/keys" => credentials::list_keys,
        POST "/v1/keys" => credentials::create_key,
        POST "/v1/keys/{id}/revoke" => credentials::revoke_key,
        GET "/v1/conversations/{id}/assist" => console::assist,
        GET "/console" => console::console_page,
        GET "/widget" => console::widget_page,
        GET "/assets/{file}" => console::static_asset,
        POST "/widget/api/start" => console::widget_start,
        POST "/widget/api/say" => console::widget_say,
        POST "/widget/api/rate" => console::widget_rate,
        POST "/widget/api/followup" => console::widget_followup,
        GET "/widget/api/state" => console::widget_state,
        GET "/widget/api/events" => console::widget_events,
    }
}

/// The API's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    use handlers::{method_not_allowed, not_found};
    let router = routes()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024));
    let hsts = state.public.https.then(|| {
        tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        )
    });
    let router = router.layer(tower::util::option_layer(hsts));
    let router = router.layer(tower::util::option_layer(widget_cors(
        &state.widget_origins,
    )));
    let router = SECURITY_HEADERS
        .into_iter()
        .fold(router, |router, (name, value)| {
            router.layer(
                tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                    name,
                    axum::http::HeaderValue::from_static(value),
                ),
            )
        });
    router
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<axum::body::Body>| {
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
                },
            ),
        )
        .with_state(state)
}

/// The headers every answer carries (OWASP Secure Headers project): a Content-Security-Policy
/// with no inline or foreign script and no framing, `X-Frame-Options` for older browsers,
/// `nosniff`, and no `Referer` leaving the console.
const SECURITY_HEADERS: [(axum::http::HeaderName, &str); 4] = [
    (
        axum::http::header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'self'; object-src 'none'",
    ),
    (axum::http::header::X_FRAME_OPTIONS, "DENY"),
    (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (axum::http::header::REFERRER_POLICY, "no-referrer"),
];

/// CORS for the widget API from `origins` (none: no CORS at all): `GET`/`POST`, the
/// `Content-Type` and `X-Widget-Token` headers, no cookies. Other paths never get CORS
/// headers.
fn widget_cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, parts| {
                parts.uri.path().starts_with("/widget/api/") && allowed.contains(origin)
            }))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                HeaderName::from_static(auth::WIDGET_HEADER),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Runs the server until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the database cannot be opened or the address cannot be bound.
pub async fn serve(args: ServeArgs, engine: Engine) -> anyhow::Result<()> {
    let store = baton_store::connect(&args.database_url)
        .await
        .with_context(|| format!("cannot open database `{}`", args.database_url))?;
    let service = Service::open(engine, store, Arc::new(SystemClock), args.session_cache)
        .await
        .map_err(|e| anyhow::anyhow!("cannot restore routing: {e}"))?;
    service.spawn_timers();
    let addr: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "`{}` is not an address: use HOST:PORT, e.g. 127.0.0.1:8080",
            args.listen
        )
    })?;
    let public = Public::parse(args.public_url.as_deref())?;
    let widget_origins = widget_origins(&args.widget_origins)?;
    let secured = first_admin(&service).await?;
    if !secured && !addr.ip().is_loopback() {
        if !args.open_to_network {
            anyhow::bail!(
                "no account or key exists yet, so anyone reaching {addr} could do everything: \
                 create an admin first (`baton agents add ID --name NAME --role admin \
                 --password-stdin`, or set {ADMIN_PASSWORD_ENV}), listen on 127.0.0.1, or pass \
                 --open-to-network on a trusted network"
            );
        }
        tracing::warn!(%addr, "no account or key exists and --open-to-network is set: anyone who reaches this port may do everything");
        eprintln!("baton: WARNING: open to the network with no account or key: anyone who reaches {addr} may do everything");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    eprintln!("baton: listening on http://{local}");
    tracing::info!(%local, database = %args.database_url, "baton serve started");
    let state = AppState::new(
        service.clone(),
        Settings {
            open_to_network: args.open_to_network,
            public,
            rates: throttle::Rates {
                per_session: args.session_rate,
                per_key: args.key_rate,
                per_anonymous_address: args.anonymous_rate,
            },
            widget_origins,
        },
    );
    let stopping = service.clone();
    let limits = http::Limits {
        max_connections: args.max_connections,
        header_timeout: std::time::Duration::from_secs(args.client_timeout.max(1)),
        drain: std::time::Duration::from_secs(4),
    };
    let app = router(state).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.header_timeout,
    ));
    http::run(listener, app, limits, async move {
        shutdown_signal().await;
        tracing::info!(
            "shutting down: no new connections, event streams ended, in-flight commands finishing"
        );
        stopping.close_streams();
    })
    .await?;
    service.shutdown().await;
    tracing::info!("baton serve stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_policy::Policy;

    /// A running service on a fresh SQLite file in `dir`.
    async fn state(dir: &std::path::Path) -> Arc<AppState> {
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = baton_store::connect(&url).await.expect("store");
        let engine = Engine::new(Policy::builtin().expect("policy"));
        let service = Service::open(engine, store, Arc::new(SystemClock), 64)
            .await
            .expect("service");
        AppState::new(service, Settings::default())
    }

    /// Behind `--public-url https://...`: HSTS on every answer, `Secure` cookies, and a write
    /// from the public origin passes the cross-site check whatever `Host` the proxy sends.
    #[tokio::test]
    async fn a_public_https_url_makes_cookies_secure_and_adds_hsts() {
        use tower::ServiceExt;
        assert!(Public::parse(Some("ftp://x")).is_err());
        assert!(Public::parse(Some("support.example.com")).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = state(dir.path()).await;
        let public = Public::parse(Some("https://support.example.com/baton")).expect("url");
        assert_eq!(
            public.origin.as_deref(),
            Some("https://support.example.com")
        );
        let app = router(AppState::new(
            plain.service.clone(),
            Settings {
                public,
                ..Settings::default()
            },
        ));
        let hash = auth::hash_password("long enough password").expect("hash");
        plain
            .service
            .upsert_user("ana", &hash, baton_store::AccountRole::Agent)
            .await
            .expect("account");
        let login = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                r#"{"agent_id": "ana", "password": "long enough password"}"#,
            ))
            .expect("request");
        let answer = app.clone().oneshot(login).await.expect("answer");
        assert_eq!(answer.status(), axum::http::StatusCode::OK);
        assert!(answer.headers().contains_key("strict-transport-security"));
        let cookie = answer.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .to_owned();
        assert!(cookie.contains("; Secure"), "{cookie}");
        let session = cookie.split(';').next().expect("pair").to_owned();
        let note = |origin: &str| {
            axum::http::Request::builder()
                .method("POST")
                .uri("/v1/agents/ana/presence")
                .header("content-type", "application/json")
                .header("host", "10.0.0.5:8080")
                .header("origin", origin)
                .header("cookie", session.clone())
                .body(axum::body::Body::from(r#"{"status": "online"}"#))
                .expect("request")
        };
        let proxied = app
            .clone()
            .oneshot(note("https://support.example.com"))
            .await
            .expect("answer");
        assert_ne!(proxied.status(), axum::http::StatusCode::FORBIDDEN);
        let elsewhere = app
            .oneshot(note("https://evil.example"))
            .await
            .expect("answer");
        assert_eq!(elsewhere.status(), axum::http::StatusCode::FORBIDDEN);
    }

    /// `--widget-origins`: the widget API answers those sites' pages, and nothing else gets
    /// CORS headers.
    #[tokio::test]
    async fn only_the_configured_sites_may_call_the_widget_api() {
        use tower::ServiceExt;
        assert!(widget_origins(&["https://shop.example/page".into()]).is_err());
        assert!(widget_origins(&["shop.example".into()]).is_err());
        let origins = widget_origins(&["https://shop.example/".into()]).expect("origins");
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = state(dir.path()).await;
        let app = router(AppState::new(
            plain.service.clone(),
            Settings {
                widget_origins: origins,
                ..Settings::default()
            },
        ));
        let preflight = |path: &str, origin: &str| {
            axum::http::Request::builder()
                .method("OPTIONS")
                .uri(path)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "x-widget-token")
                .body(axum::body::Body::empty())
                .expect("request")
        };
        let allowed = |r: &axum::response::Response| {
            r.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let shop = app
            .clone()
            .oneshot(preflight("/widget/api/say", "https://shop.example"))
            .await
            .expect("answer");
        assert_eq!(allowed(&shop).as_deref(), Some("https://shop.example"));
        let evil = app
            .clone()
            .oneshot(preflight("/widget/api/say", "https://evil.example"))
            .await
            .expect("answer");
        assert_eq!(allowed(&evil), None);
        let api = app
            .oneshot(preflight("/v1/conversations", "https://shop.example"))
            .await
            .expect("answer");
        assert_eq!(allowed(&api), None, "only the widget API");
    }

    /// With no credential, a client from another machine is refused; one from this machine
    /// is served.
    #[tokio::test]
    async fn an_open_server_serves_this_machine_only() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let app = router(state(dir.path()).await);
        let from = |ip: [u8; 4]| {
            let mut request = axum::http::Request::builder()
                .uri("/v1/queues")
                .body(axum::body::Body::empty())
                .expect("request");
            request.extensions_mut().insert(axum::extract::ConnectInfo(
                std::net::SocketAddr::from((ip, 40000)),
            ));
            request
        };
        let remote = app
            .clone()
            .oneshot(from([10, 1, 2, 3]))
            .await
            .expect("answer");
        assert_eq!(remote.status(), axum::http::StatusCode::FORBIDDEN);
        let local = app.oneshot(from([127, 0, 0, 1])).await.expect("answer");
        assert_eq!(local.status(), axum::http::StatusCode::OK);
    }

    /// An ignored input field is named in `warnings`, never dropped in silence; the input is
    /// still accepted.
    #[tokio::test]
    async fn ignored_fields_are_named_in_warnings() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let app = router(state(dir.path()).await);
        let call = |uri: &str, body: serde_json::Value| {
            let request = axum::http::Request::builder()
                .method("POST")
                .uri(uri)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .expect("request");
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.expect("response");
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .expect("body");
                let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                (status, body)
            }
        };
        let (status, created) = call(
            "/v1/conversations",
            serde_json::json!({"id": "w1", "customer": {"teir": "vip", "plan": "pro"}}),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let warnings = created["warnings"].to_string();
        assert!(
            warnings.contains("customer.teir") && warnings.contains("`tier`"),
            "{warnings}"
        );
        assert!(!warnings.contains("plan"), "{warnings}");
        let (status, answer) = call(
            "/v1/conversations/w1/turns",
            serde_json::json!({"role": "customer", "text": "hello", "txet": "typo"}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["warnings"].to_string().contains("`txet`"),
            "{answer}"
        );
        let (_, clean) = call(
            "/v1/conversations/w1/turns",
            serde_json::json!({"role": "customer", "text": "thanks"}),
        )
        .await;
        assert!(clean.get("warnings").is_none(), "{clean}");
    }

    /// The (method, path) pairs /openapi.json documents.
    fn documented() -> std::collections::BTreeSet<(String, String)> {
        let doc: serde_json::Value =
            serde_json::from_str(openapi::json()).expect("/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut out = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if [
                    "get", "post", "put", "delete", "patch", "head", "options", "trace",
                ]
                .contains(&method.as_str())
                {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// Every route of the router is in /openapi.json, and the document names no other.
    #[test]
    fn every_route_is_documented() {
        let routed: std::collections::BTreeSet<(String, String)> = routes()
            .into_iter()
            .map(|(method, path, _)| (method.to_string(), path.to_owned()))
            .collect();
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from /openapi.json: {missing:?}"
        );
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    }

    /// What the document says of each operation: security on every route that is not public, error
    /// answers in the error shape, event streams as `text/event-stream`, request bodies with
    /// schemas, and no dangling `$ref`.
    #[test]
    fn the_document_describes_auth_errors_and_streams() {
        let doc: serde_json::Value = serde_json::from_str(openapi::json()).expect("JSON");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["api_key"]["scheme"], "bearer");
        assert_eq!(schemes["session"]["in"], "cookie");
        assert_eq!(schemes["session"]["name"], auth::SESSION_COOKIE);
        for (method, path) in documented() {
            let op = &doc["paths"][&path][method.to_lowercase()];
            let public = auth::public(&openapi::concrete_path(&path));
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(
                !public,
                secured && op["responses"]["403"].is_object(),
                "{method} {path}"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path}"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let r = response["$ref"].as_str().unwrap_or_default();
                    assert!(
                        r.starts_with("#/components/responses/"),
                        "{method} {path} {status}"
                    );
                }
            }
            if path.ends_with("/events") {
                assert!(
                    op["responses"]["200"]["content"]["text/event-stream"].is_object(),
                    "{path}"
                );
            }
            let bodiless = [
                "/v1/logout",
                "/v1/accounts/{id}/remove",
                "/v1/keys/{id}/revoke",
            ];
            if method == "POST" && !bodiless.contains(&path.as_str()) {
                assert!(
                    op["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{path}"
                );
            }
        }
        let text = openapi::json();
        let marker = "\"$ref\": \"#/components/";
        for (at, _) in text.match_indices(marker) {
            let target = &text[at + marker.len()..];
            let target = &target[..target.find('"').expect("end of ref")];
            let (kind, name) = target.split_once('/').expect("kind/name");
            assert!(
                doc["components"][kind][name].is_object(),
                "dangling $ref {target}"
            );
        }
        let errors = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(
            errors["properties"]["error"]["$ref"],
            "#/components/schemas/ErrorDetail"
        );
    }

    /// The stored records' ids are the domain's types, documented (and sent) as plain strings.
    #[test]
    fn ids_of_stored_records_are_documented_as_strings() {
        let doc: serde_json::Value = serde_json::from_str(openapi::json()).expect("JSON");
        let schemas = &doc["components"]["schemas"];
        for (schema, field) in [
            ("EventRecord", "conversation_id"),
            ("SlaTimer", "conversation_id"),
            ("SlaTimer", "queue"),
        ] {
            assert_eq!(
                schemas[schema]["properties"][field]["type"], "string",
                "{schema}.{field}: {}",
                schemas[schema]
            );
        }
    }

    /// Every path and method in /openapi.json is served (none reaches the fallback), so the
    /// document cannot name a route that does not exist.
    #[tokio::test]
    async fn every_documented_route_exists() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let app = router(state(dir.path()).await);
        let documented = documented();
        assert!(documented.len() >= 30);
        for (method, path) in documented {
            let concrete = openapi::concrete_path(&path);
            {
                let request = axum::http::Request::builder()
                    .method(method.as_str())
                    .uri(&concrete)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from("{}"))
                    .expect("request");
                let response = app.clone().oneshot(request).await.expect("response");
                let status = response.status();
                let streaming = response
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
                // An event stream never ends: its status and type are the answer.
                let body = if streaming {
                    axum::body::Bytes::new()
                } else {
                    axum::body::to_bytes(response.into_body(), 1 << 20)
                        .await
                        .expect("body")
                };
                let text = String::from_utf8_lossy(&body);
                assert!(
                    !text.contains("no such route"),
                    "{method} {path}: {status} {text}"
                );
                assert_ne!(
                    status,
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert!(
                    !status.is_server_error(),
                    "{method} {path}: {status} {text}"
                );
            }
        }
    }

    /// Whatever arrives, the API answers with a JSON body and never a 5xx (CONTRACTS.md).
    #[test]
    fn no_input_gets_a_server_error() {
        use proptest::prelude::*;
        use tower::ServiceExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let app = runtime.block_on(async {
            let state = state(dir.path()).await;
            let id = baton_domain::ConversationId::parse("p".to_owned()).expect("id");
            state
                .service
                .create_conversation(
                    &baton_core::Actor::Open,
                    Some(id),
                    baton_domain::Customer::default(),
                    None,
                )
                .await
                .expect("create");
            router(state)
        });
        let field = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
        ];
        let turn = (
            prop_oneof![Just("customer"), Just("ai"), Just("agent"), Just("bot")],
            ".{0,200}",
            proptest::collection::btree_map(
                prop_oneof![
                    Just("ai_confidence"),
                    Just("kb_similarity"),
                    Just("client_turn_id"),
                    Just("action"),
                    Just("agent_id"),
                    Just("kb_articles")
                ],
                field,
                0..4,
            ),
        )
            .prop_map(|(role, text, extra)| {
                let mut v = serde_json::json!({"role": role, "text": text});
                for (k, x) in extra {
                    v[k] = x;
                }
                v.to_string().into_bytes()
            });
        let body = prop_oneof![proptest::collection::vec(any::<u8>(), 0..300), turn];
        let paths = prop_oneof![
            Just("/v1/conversations/p/turns"),
            Just("/v1/conversations/p/claim"),
            Just("/v1/conversations/p/resolve"),
            Just("/v1/conversations"),
            Just("/v1/agents"),
        ];
        let config = ProptestConfig {
            cases: 200,
            ..ProptestConfig::default()
        };
        proptest!(config, |(path in paths, body in body)| {
            let request = axum::http::Request::builder()
                .method("POST")
                .uri(path)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .expect("request");
            let (status, bytes) = runtime.block_on(async {
                let response = app.clone().oneshot(request).await.expect("response");
                let status = response.status();
                (status, axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body"))
            });
            prop_assert!(!status.is_server_error(), "{path}: {status}");
            let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
            prop_assert!(parsed.is_ok(), "{path}: {status} body is not JSON");
        });
    }

    /// Many clients at once (escalations, claims, declines, replies, resolves, hand-backs,
    /// presence changes, agent updates), on a multi-threaded runtime: afterwards every
    /// dispatcher invariant holds (nothing held twice, nobody over capacity, nothing waiting
    /// while an eligible agent has room), and the store agrees with the dispatcher on who holds
    /// what.
    #[test]
    fn concurrent_api_calls_keep_routing_consistent() {
        use proptest::prelude::*;
        use tower::ServiceExt;
        // 12 cases by default (each runs a server); proptest's PROPTEST_CASES asks for more.
        let defaults = ProptestConfig::default();
        let config = ProptestConfig {
            cases: if std::env::var_os("PROPTEST_CASES").is_some() {
                defaults.cases
            } else {
                12
            },
            ..defaults
        };
        let script =
            proptest::collection::vec(proptest::collection::vec((0u8..7, 0usize..5), 1..8), 4..24);
        proptest!(config, |(scripts in script, capacities in proptest::collection::vec(1u32..3, 5))| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let state = state(dir.path()).await;
                state.service.spawn_timers();
                let app = router(state.clone());
                let call = move |method: &'static str, uri: String, body: serde_json::Value| {
                    let app = app.clone();
                    async move {
                        let request = axum::http::Request::builder()
                            .method(method)
                            .uri(uri)
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(body.to_string()))
                            .expect("request");
                        let response = app.oneshot(request).await.expect("response");
                        assert!(!response.status().is_server_error(), "{}", response.status());
                    }
                };
                for (i, cap) in capacities.iter().enumerate() {
                    call("POST", "/v1/agents".into(), serde_json::json!({"id": format!("a{i}"), "name": "A", "skills": ["billing"], "capacity": cap})).await;
                }
                let mut tasks = Vec::new();
                for (n, steps) in scripts.into_iter().enumerate() {
                    let call = call.clone();
                    tasks.push(tokio::spawn(async move {
                        let id = format!("c{n}");
                        call("POST", "/v1/conversations".into(), serde_json::json!({"id": id})).await;
                        call("POST", format!("/v1/conversations/{id}/turns"), serde_json::json!({"role": "customer", "text": "", "action": "request_human"})).await;
                        for (op, agent) in steps {
                            let agent = format!("a{agent}");
                            let (path, body) = match op {
                                0 => ("claim", serde_json::json!({"agent_id": agent})),
                                1 => ("decline", serde_json::json!({"agent_id": agent})),
                                2 => ("reply", serde_json::json!({"agent_id": agent, "text": "hello"})),
                                3 => ("resolve", serde_json::json!({"agent_id": agent, "disposition": "done"})),
                                4 => ("handback", serde_json::json!({"agent_id": agent})),
                                5 => ("turns", serde_json::json!({"role": "customer", "text": "", "action": "request_human"})),
                                _ => {
                                    let status = ["online", "away", "offline"][n % 3];
                                    call("POST", format!("/v1/agents/{agent}/presence"), serde_json::json!({"status": status})).await;
                                    continue;
                                }
                            };
                            call("POST", format!("/v1/conversations/{id}/{path}"), body).await;
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("task");
                }
                state.service.audit().await.expect("routing and the store agree");
            });
        });
    }
}
