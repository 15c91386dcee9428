//! Console accounts (migration 0003): who may sign in, and with which role.
//!
//! Secrets never reach the store in a usable form: callers pass argon2 PHC strings for
//! passwords and SHA-256 digests for session tokens, API keys and widget tokens. The methods
//! that read and write accounts are on [`crate::Store`].

use serde::{Deserialize, Serialize};

/// What a console account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes conversations.
    Agent,
    /// Also watches queues and moves conversations between agents.
    Supervisor,
    /// Also manages accounts, keys and configuration.
    Admin,
}

impl Role {
    /// The stored and wire name: `agent`, `supervisor` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// The role named `s` (`agent`, `supervisor`, `admin`), if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A console account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The agent's id.
    pub id: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
}

/// An API key as listed (never the key itself, which is shown once when it is made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// The key's id (what `baton keys revoke` takes).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its scopes (`bot`, `agent`, `admin`).
    pub scopes: Vec<String>,
    /// Created (ms).
    pub created_at: i64,
    /// Revoked (ms), if it was.
    pub revoked_at: Option<i64>,
}

/// One line of the audit log: who did what, to what (ASVS 4.0 section 7.2: authentication
/// decisions and access to sensitive data are logged).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When (ms since the epoch).
    pub at: i64,
    /// Who: `agent:ID`, `key:ID`, `address:IP` or `cli`.
    pub actor: String,
    /// What: `sign_in`, `sign_in_failed`, `read`, `account_changed`, `account_removed`,
    /// `key_created`, `key_revoked`.
    pub action: String,
    /// The account, key or conversation acted on.
    pub subject: String,
    /// More, in words.
    pub detail: String,
}

/// A stored audit line with its id (increasing).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Its id.
    pub id: i64,
    /// The line.
    #[serde(flatten)]
    pub entry: AuditEntry,
}
