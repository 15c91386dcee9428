//! Who is calling, and what they may do.
//!
//! - Agents log in to the console with a password (argon2id, the OWASP-recommended password
//!   hash) and get a session cookie (`baton_session`, HttpOnly, SameSite=Strict, 12 hours).
//!   Roles: `agent`, `supervisor` (also the supervisor view), `admin` (also agent management).
//! - Programs send `Authorization: Bearer KEY` with an API key whose scopes are `bot`
//!   (conversations and turns), `agent` (agent actions) or `admin` (everything).
//! - The customer widget holds a token for its own conversation only.
//!
//! A fresh installation has no account and no key: then the API is open to this machine's
//! clients only (loopback), as the quick start needs, and `baton serve` refuses a non-loopback
//! address until a credential exists (or `--open-to-network`). From the first account or key
//! on, every call must say who it is; what each caller may do is decided by the service
//! ([`baton_core::access`]). Sessions, keys and widget tokens are stored as SHA-256
//! digests only.

use crate::error::ApiError;
use crate::AppState;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use baton_core::{Actor, KeyScope};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Session lifetime.
pub const SESSION_HOURS: i64 = 12;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "baton_session";
/// The widget's cookie: its conversation's token (HttpOnly, SameSite=Strict, `Path=/widget`).
pub const WIDGET_COOKIE: &str = "baton_widget";
/// The header a program sends the widget token in instead of the cookie.
pub const WIDGET_HEADER: &str = "x-widget-token";

/// Hashes a password with argon2id and a random salt (PHC string).
///
/// # Errors
/// Only if the system's random source fails.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Checks `password` against `hash` (an account's, or `None` for an unknown account) on a
/// blocking thread, so hashing never holds up the server's other work. An unknown account is
/// checked against a hash of the same cost, so it answers in the same time as a wrong
/// password (no account enumeration by timing).
pub async fn check_password(password: String, hash: Option<String>) -> bool {
    static UNKNOWN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let known = hash.is_some();
    tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| {
            UNKNOWN
                .get_or_init(|| hash_password("no account has this").unwrap_or_default())
                .clone()
        });
        verify_password(&password, &hash) && known
    })
    .await
    .unwrap_or(false)
}

/// SHA-256 of a secret, hex: what the store keeps.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random secret (244 random bits from the OS), with a readable prefix.
pub fn new_secret(prefix: &str) -> String {
    format!(
        "{prefix}_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A new API key: `(id, key, digest)`. The key is shown once; the store keeps its SHA-256
/// digest and the id, `key-` and the digest's first 12 hex digits.
pub fn new_api_key() -> (String, String, String) {
    let key = new_secret("bk");
    let digest = digest(&key);
    (key_id(&digest), key, digest)
}

/// A key's id from its digest: `key-` and the digest's first 12 hex digits.
pub fn key_id(digest: &str) -> String {
    format!("key-{}", digest.get(..12).unwrap_or(digest))
}

/// Writes a key's first use in each hour to the audit log (`key_used`), so the log shows
/// which keys are in use, when, without a write per request.
async fn audit_key_use(app: &AppState, digest: &str, what: String) -> Result<(), ApiError> {
    let hour = app.service.now().div_euclid(3_600_000);
    let id = key_id(digest);
    let first = {
        let mut seen = app
            .key_uses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|(_, h)| *h == hour);
        seen.insert((id.clone(), hour))
    };
    if first {
        let detail = format!("first use this hour: {what}");
        app.service
            .record_audit(&format!("key:{id}"), "key_used", &id, &detail)
            .await?;
    }
    Ok(())
}

/// Whether a route is open to everyone (health, documents, sign-in, the pages, the widget
/// with its own token); every other route needs a known caller, and the service decides what
/// that caller may do ([`baton_core::access`]).
pub fn public(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(
        parts.as_slice(),
        ["", "healthz"]
            | ["", "openapi.json"]
            | ["", "console", ..]
            | ["", "widget", ..]
            | ["", "assets", ..]
            | ["", "v1", "login" | "logout" | "me"]
    )
}

/// Finds out who is calling: a bearer key, else a session cookie, else [`Actor::Open`] while
/// no credential exists; `None` for a caller with no (or bad) credentials once they do.
///
/// # Errors
/// Database failures.
pub async fn caller(
    app: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Actor>, ApiError> {
    if let Some(key) = bearer(headers) {
        let scopes = app.service.api_key_scopes(&digest(key)).await?;
        return Ok(scopes.map(|scopes| Actor::Key {
            scopes: scopes.iter().filter_map(|s| KeyScope::parse(s)).collect(),
        }));
    }
    if let Some(token) = session_token(headers) {
        if let Some(user) = app.service.session_user(&digest(&token)).await? {
            return Ok(Some(Actor::User {
                id: user.id,
                role: user.role,
            }));
        }
    }
    if credentials_exist(app).await? {
        Ok(None)
    } else {
        Ok(Some(Actor::Open))
    }
}

/// Whether any account or key exists. Once one does, the answer is kept (credentials are what
/// closes the API); until then the store is asked at most once a second, so an open server
/// adds no query to each call, and a first `baton agents add` takes effect within a second.
async fn credentials_exist(app: &AppState) -> Result<bool, ApiError> {
    use std::sync::atomic::Ordering::Relaxed;
    if app.credentials_seen.load(Relaxed) {
        return Ok(true);
    }
    let now = app.service.now();
    if now - app.credentials_checked_at.load(Relaxed) < 1000 {
        return Ok(false);
    }
    let exists = app.service.has_credentials().await?;
    app.credentials_checked_at.store(now, Relaxed);
    app.credentials_seen.store(exists, Relaxed);
    Ok(exists)
}

/// The API key of an `Authorization: Bearer KEY` header.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The session token from the `Cookie` header.
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of cookie `name` in the `Cookie` header.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Middleware: refuses calls without credentials to the routes that are not public (401) and
/// hands the [`Who`] to the handlers; what a known caller may do, the service decides.
pub async fn guard(State(app): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    if public(request.uri().path()) {
        return next.run(request).await;
    }
    let who = caller(&app, request.headers()).await;
    let limited = match &who {
        Ok(Some(Actor::User { id, .. })) => app.caller_limits.session(id),
        Ok(Some(Actor::Key { .. })) => match bearer(request.headers()).map(digest) {
            Some(key) => {
                let what = format!("{} {}", request.method(), request.uri().path());
                if let Err(e) = audit_key_use(&app, &key, what).await {
                    return e.into_response();
                }
                app.caller_limits.key(&key)
            }
            None => Ok(()),
        },
        Ok(None) => app.caller_limits.anonymous(
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ),
        Ok(Some(Actor::Open | Actor::Customer { .. })) | Err(_) => Ok(()),
    };
    if let Err(seconds) = limited {
        return ApiError::TooManyRequests {
            retry_after: seconds,
            message: format!("too many requests from this caller: try again in {seconds} s"),
        }
        .into_response();
    }
    match who {
        Ok(Some(Actor::Open)) if !app.open_to_network && !from_loopback(&request) => {
            ApiError::forbidden(
            "this server has no account or key yet, so it serves this machine only: create an \
             admin (`baton agents add ID --name NAME --role admin --password-stdin`, or \
             BATON_ADMIN_PASSWORD at start) and sign in, or send an API key (`baton keys add`)",
            )
            .into_response()
        }
        Ok(Some(actor @ Actor::User { .. })) if forged(&request, app.public.origin.as_deref()) => {
            tracing::warn!(?actor, path = %request.uri().path(), "cross-site write refused");
            ApiError::forbidden(
                "a write with the session cookie must come from Baton's own pages (same origin) \
                 as JSON: cross-site requests and other content types are refused",
            )
            .into_response()
        }
        Ok(Some(actor)) => {
            request.extensions_mut().insert(Who(actor));
            next.run(request).await
        }
        Ok(None) => ApiError::BadRequest {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "sign in at /console, or send `Authorization: Bearer KEY` with an API key (`baton keys add`)".into(),
        }
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Whether the request came from this machine (a request without a known peer, as in tests
/// that call the router directly, counts as local).
fn from_loopback(request: &Request) -> bool {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_none_or(|c| c.0.ip().is_loopback())
}

/// Whether a write that a browser may have sent on its own (the session cookie rides along)
/// could come from another site: an `Origin` other than the `Host` (and other than
/// `public_origin`, the `--public-url`'s), `Sec-Fetch-Site` other
/// than `same-origin` or `none`, or a body that is not JSON (a cross-site form can send
/// `text/plain` without a preflight). The OWASP CSRF cheat sheet's origin check plus a JSON-only
/// body.
fn forged(request: &Request, public_origin: Option<&str>) -> bool {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return false;
    }
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    let site = header(axum::http::HeaderName::from_static("sec-fetch-site"));
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return true;
    }
    if let Some(origin) = header(ORIGIN).filter(|o| Some(*o) != public_origin) {
        let host = origin.split_once("://").map(|(_, rest)| rest);
        if host.is_none() || host != header(HOST) {
            return true;
        }
    }
    let empty = header(CONTENT_LENGTH).is_none_or(|n| n.trim() == "0");
    let json = header(CONTENT_TYPE).is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    !empty && !json
}

/// The client's address, as the server loop recorded it (`None` when the router is called
/// directly, as in tests).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The caller of a route that is not public, as the guard found them.
#[derive(Debug, Clone, PartialEq)]
pub struct Who(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Who>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("the route has no caller: it is public"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(new_secret("bk"), new_secret("bk"));
        assert_eq!(digest("abc").len(), 64);
    }

    #[test]
    fn only_the_documents_pages_and_sign_in_are_public() {
        for path in [
            "/healthz",
            "/openapi.json",
            "/console",
            "/widget/api/say",
            "/v1/login",
        ] {
            assert!(public(path), "{path}");
        }
        for path in [
            "/v1/conversations",
            "/v1/events",
            "/v1/agents",
            "/v1/supervisor",
        ] {
            assert!(!public(path), "{path}");
        }
    }
}
