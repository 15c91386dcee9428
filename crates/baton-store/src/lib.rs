//! Baton's storage: everything accepted is persisted before it is acknowledged.
//!
//! Why this crate exists: "nothing acknowledged is ever lost" is a property of the storage
//! layer, so it lives here, behind one trait ([`Store`]) that the handoff service talks to and
//! the engine crates never see. Every command of the service produces one [`Change`] (turn,
//! decision, transitions, routing events, SLA timers, agent presence), and [`Store::apply`]
//! writes it in one transaction or not at all.
//!
//! Implementations:
//! - [`sqlite::SqliteStore`]: an embedded SQLite file, WAL journal, `synchronous = FULL`, one
//!   writer thread that commits concurrent changes together (group commit: one transaction and
//!   one fsync for a batch, each change in its own savepoint so one stale change does not fail
//!   the others), readers on their own connections.
//!
//! Every implementation must pass [`conformance::run`].

mod accounts;
pub mod conformance;
pub mod sqlite;

pub use accounts::{ApiKey, AuditEntry, AuditRecord, Role as AccountRole, User};

use async_trait::async_trait;
use baton_domain::{
    Agent, AgentId, AgentStatus, Brief, ConversationId, Customer, HandoffState, QueueName, Turn,
};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL was not understood.
    #[error("unsupported database URL `{0}`: use `sqlite://PATH` (PostgreSQL arrives with the multi-node work)")]
    UnsupportedUrl(String),
    /// The database could not be opened (the message names the path and what to do).
    #[error("{0}")]
    Open(String),
    /// A conversation with this id already exists.
    #[error("conversation `{0}` already exists")]
    Conflict(ConversationId),
    /// A change's [`Guard::Exists`] failed: there is no conversation with this id. Nothing of
    /// the change was written.
    #[error("conversation `{0}` does not exist")]
    NotFound(ConversationId),
    /// A change's turn was already stored: the conversation has a turn with this `seq`, or one
    /// with the same `client_turn_id` (a concurrent or repeated write of the same turn). Nothing
    /// of the change was written; [`Store::turn_by_client_id`] finds the stored one.
    #[error("conversation `{conversation}` already has turn {seq} (or a turn with the same client_turn_id)")]
    Duplicate {
        /// The conversation.
        conversation: ConversationId,
        /// The turn's index in the refused change.
        seq: usize,
    },
    /// A change's [`Guard::State`] failed: the conversation was not in the state the change
    /// expected (or does not exist). Nothing of the change was written.
    #[error("conversation `{conversation}` is no longer `{expected}`: it changed meanwhile")]
    Stale {
        /// The conversation whose guard failed.
        conversation: ConversationId,
        /// The state the change expected.
        expected: HandoffState,
    },
    /// The database cannot write now (disk full, I/O error, read-only file). Nothing of the
    /// change was written; the store keeps trying with the next change, so service resumes by
    /// itself when the cause goes away.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(String),
    /// Stored data did not parse: JSON, an id, a state or a kind (the file was edited or is
    /// from a newer version).
    #[error("stored data is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// Results of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Milliseconds since the Unix epoch, now (the wall clock; the service injects its own).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Opens the store named by `url` (`sqlite://PATH`, created if missing) and migrates it.
///
/// # Errors
/// [`StoreError::UnsupportedUrl`] for another scheme; [`StoreError::Open`] when the file cannot
/// be opened (a missing directory is named).
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// What an event records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A turn was stored (consoles and widgets fetch it).
    Turn,
    /// A change of handoff state.
    Transition,
    /// A routing step that changes no state (an owner's wait ran out, a re-offer).
    Routing,
    /// An agent's internal note (never shown to the customer).
    Note,
    /// An SLA is at risk.
    SlaWarning,
    /// An SLA was breached.
    SlaBreach,
    /// A waiting customer's position or quoted wait moved.
    WaitUpdate,
    /// The customer rated the human part (CSAT).
    Csat,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Turn => "turn",
            EventKind::Transition => "transition",
            EventKind::Routing => "routing",
            EventKind::Note => "note",
            EventKind::SlaWarning => "sla_warning",
            EventKind::SlaBreach => "sla_breach",
            EventKind::WaitUpdate => "wait_update",
            EventKind::Csat => "csat",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        [
            EventKind::Turn,
            EventKind::Transition,
            EventKind::Routing,
            EventKind::Note,
            EventKind::SlaWarning,
            EventKind::SlaBreach,
            EventKind::WaitUpdate,
            EventKind::Csat,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which response an SLA timer measures.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    /// From joining the queue to the first human response.
    FirstResponse,
    /// From a customer message to the agent's next response.
    NextResponse,
}

impl SlaKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaKind::FirstResponse => "first_response",
            SlaKind::NextResponse => "next_response",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "first_response" => Some(SlaKind::FirstResponse),
            "next_response" => Some(SlaKind::NextResponse),
            _ => None,
        }
    }
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationRecord {
    /// Id.
    pub id: ConversationId,
    /// The customer.
    pub customer: Customer,
    /// The channel.
    pub channel: Option<String>,
    /// Handoff state.
    pub state: HandoffState,
    /// Queue, once routed.
    pub queue: Option<QueueName>,
    /// Priority in the queue.
    pub priority: i64,
    /// When it joined the queue (ms).
    pub queued_at: Option<i64>,
    /// The owning agent (or the agent it is offered to).
    pub agent_id: Option<AgentId>,
    /// The latest brief.
    pub brief: Option<Brief>,
    /// The resolution category.
    pub disposition: Option<String>,
    /// Created (ms).
    pub created_at: i64,
    /// The customer's language at handoff.
    pub language: Option<String>,
    /// The dedicated agent the handoff waits for first.
    pub requested_agent: Option<AgentId>,
    /// When the current offer was made (ms).
    pub offered_at: Option<i64>,
    /// When the current agent was assigned (ms).
    pub assigned_at: Option<i64>,
    /// The customer's rating of the human part, 1 to 5.
    pub csat: Option<u8>,
}

/// A stored turn with its decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRecord {
    /// 0-based index.
    pub seq: i64,
    /// The turn.
    pub turn: Turn,
    /// The decision, as JSON.
    pub decision: Option<serde_json::Value>,
    /// The signals, as JSON.
    pub signals: Option<serde_json::Value>,
    /// Stored (ms).
    pub created_at: i64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    /// Sequence number, increasing across all conversations (the server-sent events id).
    pub id: i64,
    /// The conversation.
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    /// What it records.
    pub kind: EventKind,
    /// State before, for transitions.
    pub from_state: Option<HandoffState>,
    /// State after, for transitions.
    pub to_state: Option<HandoffState>,
    /// Who: `policy`, `router`, `sla`, `customer`, `ai`, `agent:ID`.
    pub actor: String,
    /// Why, or the note's text.
    pub reason: String,
    /// When (ms).
    pub at: i64,
}

/// An SLA timer (time to first human response, or next response).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaTimer {
    /// The conversation.
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    /// Which response it measures.
    pub kind: SlaKind,
    /// The queue whose SLA it is.
    #[schema(value_type = String)]
    pub queue: QueueName,
    /// Started (ms).
    pub started_at: i64,
    /// Warning due (ms).
    pub warn_at: i64,
    /// Breach due (ms).
    pub due_at: i64,
    /// The warning fired.
    pub warned: bool,
    /// The breach fired.
    pub breached: bool,
    /// The agent answered (ms).
    pub stopped_at: Option<i64>,
}

/// A new event to record. Its time is the change's [`Change::at`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What it records.
    pub kind: EventKind,
    /// State before.
    pub from: Option<HandoffState>,
    /// State after.
    pub to: Option<HandoffState>,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// The conversation's fields after a change.
///
/// Besides these fields, writing an update sets `updated_at` to [`Change::at`] and keeps the
/// routing times: `queued_at` is set when the state enters routing (`queued`, `offered` or
/// `assigned`, also straight from `ai_active` when an agent is offered it at once) from a state
/// outside it (a transfer or re-offer between the three keeps it),
/// `offered_at` whenever the state becomes `offered`, `assigned_at` when it becomes `assigned`
/// from another state, and `resolved_at` when it becomes `resolved`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationUpdate {
    /// New state.
    pub state: HandoffState,
    /// Queue.
    pub queue: Option<QueueName>,
    /// Priority.
    pub priority: i64,
    /// Owning agent, or the agent it is offered to.
    pub agent_id: Option<AgentId>,
    /// Latest brief, when it changed (`None` keeps the stored one).
    pub brief: Option<Brief>,
    /// Disposition, when resolved (`None` keeps the stored one).
    pub disposition: Option<String>,
    /// The customer's language, when it changed (`None` keeps the stored one).
    pub language: Option<String>,
    /// The dedicated agent to wait for, when it changed (`None` keeps the stored one).
    pub requested_agent: Option<AgentId>,
}

/// A turn to append, with what it caused. Stored with `created_at` = [`Change::at`]; a turn
/// whose `seq` or `turn.client_turn_id` the conversation already has is refused with
/// [`StoreError::Duplicate`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewTurn {
    /// 0-based index; must be the next one.
    pub seq: usize,
    /// The turn.
    pub turn: Turn,
    /// Its decision.
    pub decision: serde_json::Value,
    /// Its signals.
    pub signals: serde_json::Value,
    /// The API's answer (returned again to a retry with the same `client_turn_id`).
    pub response: serde_json::Value,
}

/// What must hold for a conversation's part of a change to be written.
// `Create` carries the customer inline: a guard is built once per command and moved, never
// stored in bulk, so its size does not matter and callers keep a plain struct literal.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// The conversation must not exist yet; it is created in `ai_active` with this customer and
    /// channel ([`StoreError::Conflict`] when it exists).
    Create {
        /// The customer.
        customer: Customer,
        /// The channel.
        channel: Option<String>,
    },
    /// The conversation must exist and be in this state ([`StoreError::Stale`] otherwise).
    State(HandoffState),
    /// The conversation must exist, in any state ([`StoreError::NotFound`] otherwise).
    Exists,
}

/// An SLA timer change.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaChange {
    /// Starts a timer, unless one of its kind is already running (not stopped, breached or not)
    /// for the conversation; a stopped one is reset (not warned, not breached, not stopped).
    /// Of the given timer only `kind`, `queue`, `started_at`, `warn_at` and `due_at` are used:
    /// the conversation is the part's, and `warned`, `breached` and `stopped_at` start unset.
    Start(SlaTimer),
    /// Stops the conversation's running timers of this kind (every kind when `None`), with
    /// `stopped_at` = [`Change::at`].
    Stop(Option<SlaKind>),
    /// Marks a running timer's warning (`breach` false) or breach (which implies the warning)
    /// as fired, with the event that reports it. Writes nothing of this entry, and no error,
    /// when it had already fired or stopped (so a restart fires each once).
    Fire {
        /// The timer's kind.
        kind: SlaKind,
        /// The breach, not the warning.
        breach: bool,
        /// The event that reports it.
        event: NewEvent,
    },
}

/// One conversation's part of a change, written in this order: the guard (which creates the
/// conversation for [`Guard::Create`]), the update, the turn, the events, the SLA changes, the
/// rating.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationChange {
    /// The conversation.
    pub id: ConversationId,
    /// What must hold for this part (and so the whole change) to be written.
    pub guard: Guard,
    /// A new turn.
    pub turn: Option<NewTurn>,
    /// New conversation fields; `None` changes none of them (not even `updated_at`).
    pub update: Option<ConversationUpdate>,
    /// Events, in order.
    pub events: Vec<NewEvent>,
    /// SLA timer changes, in order.
    pub slas: Vec<SlaChange>,
    /// The customer's rating of the human part, 1 to 5.
    pub csat: Option<u8>,
}

impl ConversationChange {
    /// An empty part for conversation `id` under `guard`.
    pub fn new(id: ConversationId, guard: Guard) -> Self {
        Self {
            id,
            guard,
            turn: None,
            update: None,
            events: Vec::new(),
            slas: Vec::new(),
            csat: None,
        }
    }
}

/// An agent change.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentChange {
    /// Adds or replaces an agent (skills and languages are stored as JSON).
    Upsert(Agent),
    /// Sets an agent's presence (no error when there is no such agent).
    Status {
        /// The agent.
        id: AgentId,
        /// The new presence.
        status: AgentStatus,
    },
}

/// Everything one command changes, written in one transaction: the conversations' parts in
/// order, then the agents' changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change {
    /// When the command ran (ms): the time of its events and state changes.
    pub at: i64,
    /// The conversations it changes, in order.
    pub conversations: Vec<ConversationChange>,
    /// The agents it changes, in order.
    pub agents: Vec<AgentChange>,
}

impl Change {
    /// An empty change at `at` (ms).
    pub fn at(at: i64) -> Self {
        Self {
            at,
            ..Self::default()
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.conversations.is_empty() && self.agents.is_empty()
    }

    /// The part of conversation `id`, added with guard [`Guard::Exists`] if absent.
    pub fn conversation(&mut self, id: &ConversationId) -> &mut ConversationChange {
        let i = match self.conversations.iter().position(|c| c.id == *id) {
            Some(i) => i,
            None => {
                self.conversations
                    .push(ConversationChange::new(id.clone(), Guard::Exists));
                self.conversations.len() - 1
            }
        };
        &mut self.conversations[i]
    }
}

/// What a change wrote: its events with their sequence numbers, in the order written (for each
/// conversation part, its [`ConversationChange::events`] and then the events of the
/// [`SlaChange::Fire`] entries that fired).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// The stored events.
    pub events: Vec<EventRecord>,
}

/// The outcome of a submitted change, once it is durable or failed.
pub type Pending =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Applied>> + Send + 'static>>;

/// The storage behind the handoff service. Every implementation passes [`conformance::run`].
///
/// Writes go through [`Store::apply`] (one command, one transaction); reads see everything
/// applied before they began.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Queues `change` for writing and returns at once; the returned future resolves when the
    /// change is durable (or failed). Changes are written in the order of `submit` calls, so a
    /// caller that submits under its own lock (the routing lock) gets its changes written in
    /// the order it decided them, without holding the lock through the commit. Concurrent
    /// changes may share one transaction and one fsync (group commit); each is still all or
    /// nothing.
    ///
    /// # Errors (of the future)
    /// [`StoreError::Conflict`], [`StoreError::Stale`] or [`StoreError::NotFound`] when a
    /// guard fails, [`StoreError::Duplicate`] when its turn is already stored,
    /// [`StoreError::Unavailable`] when the database cannot write now,
    /// [`StoreError::Closed`] after [`Store::close`]; nothing of the change is written then.
    /// An empty change writes nothing and succeeds.
    fn submit(&self, change: Change) -> Pending;

    /// [`Store::submit`] and wait for it.
    ///
    /// # Errors
    /// As [`Store::submit`].
    async fn apply(&self, change: Change) -> Result<Applied> {
        self.submit(change).await
    }

    /// The conversation `id`, if it exists.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn conversation(&self, id: &ConversationId) -> Result<Option<ConversationRecord>>;

    /// Every turn of `id`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn turns(&self, id: &ConversationId) -> Result<Vec<TurnRecord>>;

    /// The earlier turn of `id` with this `client_turn_id`, and the answer it got.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn turn_by_client_id(
        &self,
        id: &ConversationId,
        client_turn_id: &str,
    ) -> Result<Option<(Turn, serde_json::Value)>>;

    /// Events of `id`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn events(&self, id: &ConversationId) -> Result<Vec<EventRecord>>;

    /// Events after sequence number `after`, oldest first, at most `limit`; of one
    /// conversation, or of all.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn events_after(
        &self,
        after: i64,
        conversation: Option<&ConversationId>,
        limit: u32,
    ) -> Result<Vec<EventRecord>>;

    /// The newest event's sequence number (0 when there is none).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn last_event_id(&self) -> Result<i64>;

    /// Conversations offered to or held by `agent`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn agent_conversations(&self, agent: &AgentId) -> Result<Vec<ConversationId>>;

    /// The conversations waiting (queued or offered) in `queue`, by priority (highest first),
    /// then `queued_at`, then id.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn waiting_records(&self, queue: &QueueName) -> Result<Vec<ConversationRecord>>;

    /// Every conversation routing holds (queued, offered or assigned), by `queued_at` then id:
    /// what routing is rebuilt from after a restart.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn routing_records(&self) -> Result<Vec<ConversationRecord>>;

    /// The latest conversations that escalated (they have a brief), newest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn recent_escalations(&self, limit: u32) -> Result<Vec<ConversationRecord>>;

    /// Conversations of `queue` first assigned since `since` (ms), and how many of those were
    /// assigned within `sla_ms` of joining the queue: the service level.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn answered_since(
        &self,
        queue: &QueueName,
        since: i64,
        sla_ms: i64,
    ) -> Result<(u64, u64)>;

    /// Mean handle time (assignment to resolution) of the last 200 resolved conversations of
    /// `queue`, in seconds, with how many it was measured on.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn handle_time(&self, queue: &QueueName) -> Result<(Option<f64>, i64)>;

    /// The conversation's SLA timers, by kind.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn slas(&self, id: &ConversationId) -> Result<Vec<SlaTimer>>;

    /// Every SLA timer that still has something to fire: not stopped and not breached (a
    /// breached timer has fired all it ever will; [`Store::open_sla_breaches`] lists those).
    /// Ordered by the next instant it falls due (`warn_at`, or `due_at` once warned, whichever
    /// comes first), then conversation and kind: what the timer wheel is rebuilt from after a
    /// restart.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn running_slas(&self) -> Result<Vec<SlaTimer>>;

    /// SLA timers that have breached and are not stopped yet (nobody answered), by `due_at`, at
    /// most 200.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn open_sla_breaches(&self) -> Result<Vec<SlaTimer>>;

    /// Every agent, by id.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn agents(&self) -> Result<Vec<Agent>>;

    /// The agent `id`, if there is one.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn agent(&self, id: &AgentId) -> Result<Option<Agent>>;

    /// How many conversations each agent holds (state `assigned`); agents holding none are
    /// absent.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn agent_loads(&self) -> Result<HashMap<AgentId, u32>>;

    /// Creates or replaces the console account of agent `id` (`password_hash`: an argon2 PHC
    /// string), ending the account's sessions: a changed password or role takes effect at
    /// once.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn upsert_user(&self, id: &str, password_hash: &str, role: AccountRole) -> Result<()>;

    /// Every console account, by id.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn users(&self) -> Result<Vec<User>>;

    /// Removes the console account of agent `id` and ends its sessions (nothing when there is
    /// none).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn delete_user(&self, id: &str) -> Result<()>;

    /// The account of agent `id`.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn user(&self, id: &str) -> Result<Option<User>>;

    /// Whether any account or unrevoked API key exists.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn has_credentials(&self) -> Result<bool>;

    /// Stores a console session (`token_hash`: SHA-256 hex of the token) for `user` until
    /// `expires_at` (ms).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn create_session(&self, token_hash: &str, user: &str, expires_at: i64) -> Result<()>;

    /// The account of a live session (not expired at `now`, ms).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<User>>;

    /// Ends a session.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn delete_session(&self, token_hash: &str) -> Result<()>;

    /// Stores an API key (`key_hash`: SHA-256 hex) with its scopes (`bot`, `agent`, `admin`).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn create_api_key(
        &self,
        id: &str,
        key_hash: &str,
        name: &str,
        scopes: &[String],
    ) -> Result<()>;

    /// Every API key, oldest first, revoked ones included.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn api_keys(&self) -> Result<Vec<ApiKey>>;

    /// Revokes key `id` at `at` (ms): from then on it opens nothing (a revoked key stays
    /// revoked; an unknown id changes nothing).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn revoke_api_key(&self, id: &str, at: i64) -> Result<()>;

    /// Appends a line to the audit log.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn record_audit(&self, entry: AuditEntry) -> Result<()>;

    /// Up to `limit` audit lines, newest first, with ids below `before` (all when `None`).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn audit_log(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>>;

    /// The scopes of an unrevoked key.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn api_key_scopes(&self, key_hash: &str) -> Result<Option<Vec<String>>>;

    /// Stores a widget token (SHA-256 hex) for `conversation`.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn create_widget_token(
        &self,
        token_hash: &str,
        conversation: &ConversationId,
    ) -> Result<()>;

    /// The conversation of a widget token.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    async fn widget_conversation(&self, token_hash: &str) -> Result<Option<ConversationId>>;

    /// Waits for pending writes and closes the store; later calls fail with
    /// [`StoreError::Closed`]. Closing twice is harmless.
    async fn close(&self);
}
