//! Accounts and API keys over the API, for admins: the same as `baton agents` and `baton keys`
//! on the command line. Every change is audited; a changed password, a removed account and a
//! revoked key take effect at once.

use crate::auth::{self, Who};
use crate::error::ApiError;
use crate::handlers::{ApiJson, ApiPath};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use baton_store::AccountRole;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

type St = State<Arc<AppState>>;
type AppResult<T> = Result<T, ApiError>;

/// A console account.
#[derive(Serialize, ToSchema)]
pub struct Account {
    /// The agent's id.
    id: String,
    /// `agent`, `supervisor` or `admin`.
    role: String,
}

/// Every console account.
#[derive(Serialize, ToSchema)]
pub struct AccountList {
    /// By id.
    accounts: Vec<Account>,
}

/// Every console account, by id.
#[utoipa::path(get, path = "/v1/accounts", tag = "console",
    responses((status = 200, description = "The accounts", body = AccountList)))]
pub async fn list_accounts(State(app): St, Who(actor): Who) -> AppResult<Json<AccountList>> {
    let accounts = app
        .service
        .accounts(&actor)
        .await?
        .into_iter()
        .map(|(id, role)| Account {
            id,
            role: role.as_str().to_owned(),
        })
        .collect();
    Ok(Json(AccountList { accounts }))
}

/// A new or changed account.
#[derive(Deserialize, ToSchema)]
pub struct AccountRequest {
    /// The agent's id.
    id: String,
    /// The password, at least 8 characters.
    password: String,
    /// `agent` (the default), `supervisor` or `admin`.
    #[serde(default)]
    role: Option<String>,
}

/// Creates or replaces an account; its sessions end.
#[utoipa::path(post, path = "/v1/accounts", tag = "console",
    request_body = AccountRequest,
    responses((status = 200, description = "The account as stored", body = Account)))]
pub async fn set_account(
    State(app): St,
    Who(actor): Who,
    ApiJson(req): ApiJson<AccountRequest>,
) -> AppResult<Json<Account>> {
    let id = baton_domain::AgentId::parse(req.id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let role = req.role.as_deref().unwrap_or("agent");
    let role = AccountRole::parse(role).ok_or_else(|| {
        ApiError::invalid(format!(
            "`role` is `{role}`: use agent, supervisor or admin"
        ))
    })?;
    if req.password.chars().count() < 8 {
        return Err(ApiError::invalid(
            "`password` is shorter than 8 characters: choose a longer one",
        ));
    }
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)?;
    app.service
        .set_account(&actor, id.as_str(), &hash, role)
        .await?;
    Ok(Json(Account {
        id: id.to_string(),
        role: role.as_str().to_owned(),
    }))
}

/// What a removal or revocation did.
#[derive(Serialize, ToSchema)]
pub struct Withdrawn {
    /// The account or key.
    id: String,
    /// True.
    withdrawn: bool,
}

impl Withdrawn {
    /// The answer for `id`, withdrawn.
    fn of(id: String) -> Json<Withdrawn> {
        Json(Withdrawn {
            id,
            withdrawn: true,
        })
    }
}

/// Removes an account: its sessions end at once.
#[utoipa::path(post, path = "/v1/accounts/{id}/remove", tag = "console",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "Removed", body = Withdrawn),
        (status = 404, response = crate::openapi::NotFound),
    ))]
pub async fn remove_account(
    State(app): St,
    Who(actor): Who,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<Withdrawn>> {
    app.service.remove_account(&actor, &id).await?;
    Ok(Withdrawn::of(id))
}

/// Every API key.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Oldest first.
    keys: Vec<baton_store::ApiKey>,
}

/// Every API key, oldest first, revoked ones included.
#[utoipa::path(get, path = "/v1/keys", tag = "console",
    responses((status = 200, description = "The keys", body = KeyList)))]
pub async fn list_keys(State(app): St, Who(actor): Who) -> AppResult<Json<KeyList>> {
    let keys = app.service.api_keys(&actor).await?;
    Ok(Json(KeyList { keys }))
}

/// A new API key.
#[derive(Deserialize, ToSchema)]
pub struct KeyRequest {
    /// What it is for.
    name: String,
    /// One or more of `bot`, `agent`, `admin`.
    scopes: Vec<String>,
}

/// A new key: shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewKey {
    /// Its id (to list or revoke it).
    id: String,
    /// The key: send it as `Authorization: Bearer KEY`. It is not shown again.
    key: String,
    /// What it is for.
    name: String,
    /// Its scopes.
    scopes: Vec<String>,
}

/// Creates an API key and answers it, once.
#[utoipa::path(post, path = "/v1/keys", tag = "console",
    request_body = KeyRequest,
    responses((status = 200, description = "The key, shown once", body = NewKey)))]
pub async fn create_key(
    State(app): St,
    Who(actor): Who,
    ApiJson(req): ApiJson<KeyRequest>,
) -> AppResult<Json<NewKey>> {
    if req.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "`name` is empty: say what the key is for",
        ));
    }
    if req.scopes.is_empty()
        || req
            .scopes
            .iter()
            .any(|s| baton_core::KeyScope::parse(s).is_none())
    {
        return Err(ApiError::invalid(format!(
            "`scopes` is {:?}: give one or more of bot, agent, admin",
            req.scopes
        )));
    }
    let (id, key, digest) = auth::new_api_key();
    app.service
        .create_api_key(&actor, &id, &digest, &req.name, &req.scopes)
        .await?;
    Ok(Json(NewKey {
        id,
        key,
        name: req.name,
        scopes: req.scopes,
    }))
}

/// Revokes an API key: it opens nothing from now on.
#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "console",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked", body = Withdrawn),
        (status = 404, response = crate::openapi::NotFound),
    ))]
pub async fn revoke_key(
    State(app): St,
    Who(actor): Who,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<Withdrawn>> {
    app.service.revoke_api_key(&actor, &id).await?;
    Ok(Withdrawn::of(id))
}
