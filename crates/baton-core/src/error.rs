//! What a command can fail with: one enum, mapped to HTTP in one place by the server.

use baton_store::StoreError;

/// A command's failure. Every variant but [`CoreError::Internal`] and
/// [`CoreError::Unavailable`] is the caller's to fix, and its message says how.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// No such conversation, queue or agent (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (HTTP 400, code `invalid_request`).
    #[error("{0}")]
    BadRequest(String),
    /// The request parsed but a value is not acceptable (HTTP 422).
    #[error("{message}")]
    Invalid {
        /// Machine-readable code.
        code: &'static str,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// The request conflicts with the conversation's current state (HTTP 409).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// The caller may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// Storage cannot write now (disk full, I/O error): nothing was written (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// A failure on our side (HTTP 500); the cause is logged.
    #[error("{0}")]
    Internal(String),
}

impl CoreError {
    /// A 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Whether a command that failed with this may have left its session changed in memory
    /// (a write that failed, or a fault): the session is then dropped and loaded again from
    /// the store. Every refusal a command makes before it changes anything is another variant
    /// or code.
    pub(crate) fn taints_session(&self) -> bool {
        matches!(
            self,
            CoreError::Unavailable(_)
                | CoreError::Internal(_)
                | CoreError::Conflict {
                    code: "state_changed",
                    ..
                }
        )
    }

    /// A 422 with `code`.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// The answer to a conversation that moved on while the command was decided.
pub(crate) fn changed_meanwhile() -> CoreError {
    CoreError::conflict(
        "state_changed",
        "the conversation changed meanwhile (another agent may have acted on it): reload it and try again",
    )
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Stale { .. } | StoreError::Duplicate { .. } => changed_meanwhile(),
            StoreError::NotFound(id) => CoreError::NotFound(id.into()),
            StoreError::Conflict(id) => CoreError::conflict(
                "conversation_exists",
                format!("conversation `{id}` already exists: post its turns to /v1/conversations/{id}/turns, or create one with another id"),
            ),
            StoreError::Unavailable(why) => CoreError::Unavailable(format!(
                "storage cannot write now ({why}): nothing was stored; retry later"
            )),
            StoreError::Closed => {
                CoreError::Unavailable("the server is shutting down: retry on another node or later".into())
            }
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl From<baton_route::RouteError> for CoreError {
    fn from(e: baton_route::RouteError) -> Self {
        use baton_route::RouteError as R;
        match e {
            R::UnknownQueue(_) | R::UnknownConversation(_) | R::UnknownAgent(_) => {
                CoreError::NotFound(e.to_string())
            }
            R::AlreadyRouted(_) => CoreError::conflict("already_routed", e.to_string()),
            R::Refused(_) => CoreError::conflict("refused", e.to_string()),
        }
    }
}
