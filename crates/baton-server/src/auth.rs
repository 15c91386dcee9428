//! Who is calling, and what they may do.
//!
//! - Agents log in to the console with a password (argon2id, the OWASP-recommended password
//!   hash) and get a session cookie (`baton_session`, HttpOnly, SameSite=Strict, 12 hours).
//!   Roles: `agent`, `supervisor` (also the supervisor view), `admin` (also agent management).
//! - Programs send `Authorization: Bearer KEY` with an API key whose scopes are `bot`
//!   (conversations and turns), `agent` (agent actions) or `admin` (everything).
//! - The customer widget holds a token for its own conversation only.
//!
//! A fresh installation has no account and no key: then the API is open, as CONTRACTS.md shows
//! it (listen on localhost until you create credentials). From the first account or key on,
//! every call must say who it is. Sessions, keys and widget tokens are stored as SHA-256
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
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Session lifetime.
pub const SESSION_HOURS: i64 = 12;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "baton_session";

/// Console roles, least to most.
pub const ROLES: &[&str] = &["agent", "supervisor", "admin"];
/// API key scopes.
pub const SCOPES: &[&str] = &["bot", "agent", "admin"];

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

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// No credentials exist yet: everything is open.
    Open,
    /// A logged-in console user.
    Agent {
        /// The agent's id.
        id: String,
        /// `agent`, `supervisor` or `admin`.
        role: String,
    },
    /// A program with an API key.
    Key {
        /// Its scopes.
        scopes: Vec<String>,
    },
    /// Credentials exist and the call carries none (or bad ones).
    Anonymous,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing (health, documents, login, the pages, the widget with its own token).
    Nothing,
    /// A bot key, or an agent (the console reads conversations too).
    Bot,
    /// An agent session, or an agent key.
    Agent,
    /// A supervisor or admin session, or an admin key.
    Supervisor,
    /// An admin session or key.
    Admin,
}

impl Caller {
    fn rank(role: &str) -> usize {
        ROLES.iter().position(|r| *r == role).unwrap_or(0)
    }

    fn has(&self, scope: &str) -> bool {
        matches!(self, Caller::Key { scopes } if scopes.iter().any(|s| s == scope || s == "admin"))
    }

    /// Whether the caller may use a route that needs `need`.
    pub fn may(&self, need: Need) -> bool {
        match (self, need) {
            (_, Need::Nothing) | (Caller::Open, _) => true,
            (Caller::Anonymous, _) => false,
            (Caller::Agent { .. }, Need::Bot | Need::Agent) => true,
            (Caller::Agent { role, .. }, Need::Supervisor) => Self::rank(role) >= 1,
            (Caller::Agent { role, .. }, Need::Admin) => Self::rank(role) >= 2,
            (Caller::Key { .. }, Need::Bot) => self.has("bot") || self.has("agent"),
            (Caller::Key { .. }, Need::Agent) => self.has("agent"),
            (Caller::Key { .. }, Need::Supervisor | Need::Admin) => self.has("admin"),
        }
    }

    /// Checks that the caller may act as agent `agent_id`: a console user only as themselves
    /// (a supervisor or admin as anyone); a key or an open server as anyone.
    ///
    /// # Errors
    /// 403 naming the mismatch.
    pub fn acts_as(&self, agent_id: &str) -> Result<(), ApiError> {
        match self {
            Caller::Agent { id, role } if id != agent_id && Self::rank(role) < 1 => {
                Err(ApiError::forbidden(format!(
                    "you are signed in as `{id}` and cannot act as agent `{agent_id}`"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The route's need, from its method and path.
pub fn need(method: &Method, path: &str) -> Need {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        (
            _,
            ["", "healthz"]
            | ["", "openapi.json"]
            | ["", "console", ..]
            | ["", "widget", ..]
            | ["", "assets", ..],
        ) => Need::Nothing,
        (_, ["", "v1", "login"] | ["", "v1", "logout"] | ["", "v1", "me"]) => Need::Nothing,
        ("POST", ["", "v1", "conversations"]) => Need::Bot,
        ("POST", ["", "v1", "conversations", _, "turns" | "followup"]) => Need::Bot,
        ("GET", ["", "v1", "conversations", _] | ["", "v1", "conversations", _, "brief"]) => {
            Need::Bot
        }
        ("POST", ["", "v1", "agents"]) => Need::Admin,
        (_, ["", "v1", "supervisor", ..]) => Need::Supervisor,
        _ => Need::Agent,
    }
}

/// Finds out who is calling: a bearer key, else a session cookie, else open or anonymous.
///
/// # Errors
/// Database failures.
pub async fn caller(app: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    if let Some(key) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Ok(
            match app.service.api_key_scopes(&digest(key.trim())).await? {
                Some(scopes) => Caller::Key { scopes },
                None => Caller::Anonymous,
            },
        );
    }
    if let Some(token) = session_token(headers) {
        if let Some(user) = app.service.session_user(&digest(&token)).await? {
            return Ok(Caller::Agent {
                id: user.id,
                role: user.role.as_str().to_owned(),
            });
        }
    }
    if credentials_exist(app).await? {
        Ok(Caller::Anonymous)
    } else {
        Ok(Caller::Open)
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

/// The session token from the `Cookie` header.
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Middleware: refuses calls the caller may not make (401 without credentials, 403 with
/// insufficient ones) and hands the [`Caller`] to the handlers.
pub async fn guard(State(app): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let need = need(request.method(), request.uri().path());
    if need == Need::Nothing {
        return next.run(request).await;
    }
    let who = match caller(&app, request.headers()).await {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    if !who.may(need) {
        let error = if who == Caller::Anonymous {
            ApiError::BadRequest {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthorized",
                message: "sign in at /console, or send `Authorization: Bearer KEY` with an API key (`baton keys add`)".into(),
            }
        } else {
            ApiError::forbidden(
                format!("this needs {need:?} rights, which you do not have").to_lowercase(),
            )
        };
        return error.into_response();
    }
    request.extensions_mut().insert(who);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Open))
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
    fn roles_and_scopes_open_what_they_should() {
        let agent = Caller::Agent {
            id: "ana".into(),
            role: "agent".into(),
        };
        let supervisor = Caller::Agent {
            id: "sue".into(),
            role: "supervisor".into(),
        };
        let bot = Caller::Key {
            scopes: vec!["bot".into()],
        };
        assert!(agent.may(Need::Agent) && !agent.may(Need::Supervisor));
        assert!(supervisor.may(Need::Supervisor) && !supervisor.may(Need::Admin));
        assert!(bot.may(Need::Bot) && !bot.may(Need::Agent));
        assert!(!Caller::Anonymous.may(Need::Bot) && Caller::Anonymous.may(Need::Nothing));
        assert!(Caller::Open.may(Need::Admin));
        assert!(agent.acts_as("ana").is_ok() && agent.acts_as("bo").is_err());
        assert!(supervisor.acts_as("bo").is_ok());
        assert_eq!(need(&Method::GET, "/v1/queues"), Need::Agent);
        assert_eq!(need(&Method::POST, "/v1/conversations/x/turns"), Need::Bot);
        assert_eq!(need(&Method::GET, "/v1/supervisor"), Need::Supervisor);
        assert_eq!(need(&Method::GET, "/console"), Need::Nothing);
        assert_eq!(need(&Method::POST, "/v1/agents"), Need::Admin);
    }
}
