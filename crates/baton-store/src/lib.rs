//! Baton's storage: everything accepted is persisted before it is acknowledged.
//!
//! Why this crate exists: "nothing acknowledged is ever lost" (DESIGN.md section 10) is a
//! property of the storage layer, so it lives here, behind one type the engine crates never see.
//! This version stores in an embedded SQLite file: WAL journal, `synchronous = FULL` (a commit
//! is on disk before it returns, so a `kill -9` or a power cut loses nothing acknowledged),
//! foreign keys on, schema migrations embedded in the binary. A turn, its decision, the state
//! change it caused and the API's answer are written in one transaction.

mod accounts;

pub use accounts::User;

use baton_domain::{Agent, AgentId, AgentStatus, Brief, Customer, HandoffState, Turn};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL was not understood.
    #[error("unsupported database URL `{0}`: use `sqlite://PATH` (PostgreSQL arrives with the multi-node work)")]
    UnsupportedUrl(String),
    /// A conversation with this id already exists.
    #[error("conversation `{0}` already exists")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored JSON did not parse (the file was edited or is from a newer version).
    #[error("stored data is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The store.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: SqlitePool,
}

/// A conversation row.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationRecord {
    /// Id.
    pub id: String,
    /// The customer.
    pub customer: Customer,
    /// The channel.
    pub channel: Option<String>,
    /// Handoff state.
    pub state: HandoffState,
    /// Queue, once routed.
    pub queue: Option<String>,
    /// Priority in the queue.
    pub priority: i64,
    /// When it joined the queue (ms).
    pub queued_at: Option<i64>,
    /// The owning agent.
    pub agent_id: Option<String>,
    /// The latest brief.
    pub brief: Option<Brief>,
    /// The resolution category.
    pub disposition: Option<String>,
    /// Created (ms).
    pub created_at: i64,
    /// The customer's language at handoff.
    pub language: Option<String>,
    /// The dedicated agent the handoff waits for first.
    pub requested_agent: Option<String>,
    /// When the current offer was made (ms).
    pub offered_at: Option<i64>,
    /// When the current agent was assigned (ms).
    pub assigned_at: Option<i64>,
}

/// A stored turn with its decision.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    /// Sequence number, increasing across all conversations (the server-sent events id).
    pub id: i64,
    /// The conversation.
    pub conversation_id: String,
    /// `transition`, `note`, `routing`, `sla_warning`, `sla_breach` or `wait_update`.
    pub kind: String,
    /// State before, for transitions.
    pub from_state: Option<String>,
    /// State after, for transitions.
    pub to_state: Option<String>,
    /// Who.
    pub actor: String,
    /// Why, or the note's text.
    pub reason: String,
    /// When (ms).
    pub at: i64,
}

/// An SLA timer (time to first human response, or next response).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaTimer {
    /// The conversation.
    pub conversation_id: String,
    /// `first_response` or `next_response`.
    pub kind: String,
    /// The queue whose SLA it is.
    pub queue: String,
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

/// A new event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `transition`, `note`, `routing`, `sla_warning`, `sla_breach` or `wait_update`.
    pub kind: &'static str,
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
#[derive(Debug, Clone)]
pub struct ConversationUpdate {
    /// New state.
    pub state: HandoffState,
    /// Queue.
    pub queue: Option<String>,
    /// Priority.
    pub priority: i64,
    /// Owning agent.
    pub agent_id: Option<String>,
    /// Latest brief, when it changed.
    pub brief: Option<Brief>,
    /// Disposition, when resolved.
    pub disposition: Option<String>,
    /// The customer's language, when it changed.
    pub language: Option<String>,
    /// The dedicated agent to wait for, when it changed.
    pub requested_agent: Option<String>,
}

/// A turn to append, with what it caused.
#[derive(Debug, Clone)]
pub struct NewTurn<'a> {
    /// 0-based index; must be the next one.
    pub seq: usize,
    /// The turn.
    pub turn: &'a Turn,
    /// Its decision.
    pub decision: serde_json::Value,
    /// Its signals.
    pub signals: serde_json::Value,
    /// The API's answer.
    pub response: serde_json::Value,
}

impl Store {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and migrates it.
    ///
    /// # Errors
    /// [`StoreError`] when the URL is not SQLite, the file cannot be opened or migration fails.
    pub async fn connect(url: &str) -> Result<Store> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Creates a conversation in state `ai_active`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the id is taken.
    pub async fn create_conversation(
        &self,
        id: &str,
        customer: &Customer,
        channel: Option<&str>,
    ) -> Result<()> {
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO conversations (id, customer, channel, state, created_at, updated_at)
             VALUES (?, ?, ?, 'ai_active', ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(serde_json::to_string(customer)?)
        .bind(channel)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(id.to_owned()));
        }
        Ok(())
    }

    /// The conversation `id`, if it exists.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| conversation_from_row(&r)).transpose()
    }

    /// Every turn of `id`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn turns(&self, id: &str) -> Result<Vec<TurnRecord>> {
        let rows = sqlx::query("SELECT seq, body, decision, signals, created_at FROM turns WHERE conversation_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let parse = |col: &str| -> Result<Option<serde_json::Value>> {
                    r.get::<Option<String>, _>(col)
                        .map(|s| serde_json::from_str(&s))
                        .transpose()
                        .map_err(Into::into)
                };
                Ok(TurnRecord {
                    seq: r.get("seq"),
                    turn: serde_json::from_str(&r.get::<String, _>("body"))?,
                    decision: parse("decision")?,
                    signals: parse("signals")?,
                    created_at: r.get("created_at"),
                })
            })
            .collect()
    }

    /// Events of `id`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn events(&self, id: &str) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query("SELECT * FROM events WHERE conversation_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// Events after sequence number `after`, oldest first, at most `limit`; of one
    /// conversation, or of all.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn events_after(
        &self,
        after: i64,
        conversation: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE id > ? AND (? IS NULL OR conversation_id = ?) ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(conversation)
        .bind(conversation)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// The newest event's sequence number (0 when there is none).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn last_event_id(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get("id"))
    }

    /// Conversations offered to or held by `agent`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn agent_conversations(&self, agent: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM conversations WHERE agent_id = ? AND state IN ('offered', 'assigned') ORDER BY updated_at",
        )
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get("id")).collect())
    }

    /// Records events that change no state (notes, routing and SLA events, wait updates).
    ///
    /// # Errors
    /// [`StoreError`] on database failure; nothing is written then.
    pub async fn record(&self, id: &str, events: &[NewEvent]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_events(&mut tx, id, events, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The earlier turn with the same `client_turn_id`, and the answer it got.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn turn_by_client_id(
        &self,
        id: &str,
        client_turn_id: &str,
    ) -> Result<Option<(Turn, serde_json::Value)>> {
        let row = sqlx::query(
            "SELECT body, response FROM turns WHERE conversation_id = ? AND client_turn_id = ?",
        )
        .bind(id)
        .bind(client_turn_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let turn: Turn = serde_json::from_str(&row.get::<String, _>("body"))?;
        let response = match row.get::<Option<String>, _>("response") {
            Some(text) => serde_json::from_str(&text)?,
            None => serde_json::Value::Null,
        };
        Ok(Some((turn, response)))
    }

    /// Applies a change to a conversation in one transaction: an optional new turn, the events,
    /// and the new state, but only if the conversation is still in `expected` (optimistic
    /// concurrency). Returns false, changing nothing, when the state had moved on.
    ///
    /// # Errors
    /// [`StoreError`] on database failure; nothing is written then.
    pub async fn apply(
        &self,
        id: &str,
        expected: HandoffState,
        turn: Option<NewTurn<'_>>,
        events: &[NewEvent],
        update: &ConversationUpdate,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE conversations SET
                state = ?, queue = ?, priority = ?, agent_id = ?,
                brief = COALESCE(?, brief), disposition = COALESCE(?, disposition),
                language = COALESCE(?, language), requested_agent = COALESCE(?, requested_agent),
                queued_at = CASE WHEN ? = 'queued' AND state NOT IN ('queued', 'offered', 'assigned') THEN ? ELSE queued_at END,
                offered_at = CASE WHEN ? = 'offered' THEN ? ELSE offered_at END,
                assigned_at = CASE WHEN ? = 'assigned' AND state != 'assigned' THEN ? ELSE assigned_at END,
                resolved_at = CASE WHEN ? = 'resolved' THEN ? ELSE resolved_at END,
                updated_at = ?
             WHERE id = ? AND state = ?",
        )
        .bind(update.state.as_str())
        .bind(&update.queue)
        .bind(update.priority)
        .bind(&update.agent_id)
        .bind(update.brief.as_ref().map(serde_json::to_string).transpose()?)
        .bind(&update.disposition)
        .bind(&update.language)
        .bind(&update.requested_agent)
        .bind(update.state.as_str())
        .bind(now)
        .bind(update.state.as_str())
        .bind(now)
        .bind(update.state.as_str())
        .bind(now)
        .bind(update.state.as_str())
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(expected.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(t) = turn {
            sqlx::query(
                "INSERT INTO turns (conversation_id, seq, role, body, client_turn_id, decision, signals, response, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(i64::try_from(t.seq).unwrap_or(i64::MAX))
            .bind(t.turn.role.as_str())
            .bind(serde_json::to_string(t.turn)?)
            .bind(&t.turn.client_turn_id)
            .bind(t.decision.to_string())
            .bind(t.signals.to_string())
            .bind(t.response.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        insert_events(&mut tx, id, events, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The full records of the conversations waiting in `queue`, in one query.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn waiting_records(&self, queue: &str) -> Result<Vec<ConversationRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM conversations WHERE queue = ? AND state IN ('queued', 'offered')",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// Every conversation that routing holds (queued, offered or assigned), oldest first: what
    /// the dispatcher is rebuilt from after a restart.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn routing_records(&self) -> Result<Vec<ConversationRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM conversations WHERE state IN ('queued', 'offered', 'assigned') ORDER BY queued_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// The latest conversations that escalated (they have a brief), newest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn recent_escalations(&self, limit: u32) -> Result<Vec<ConversationRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM conversations WHERE brief IS NOT NULL ORDER BY updated_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// Running SLA timers that have breached.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn open_sla_breaches(&self) -> Result<Vec<SlaTimer>> {
        let rows = sqlx::query(
            "SELECT * FROM sla_timers WHERE stopped_at IS NULL AND breached = 1 ORDER BY due_at LIMIT 200",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(sla_from_row).collect())
    }

    /// Conversations of `queue` first assigned since `since` (ms), and how many of those were
    /// assigned within `sla_ms` of joining the queue: today's service level.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn answered_since(&self, queue: &str, since: i64, sla_ms: i64) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(assigned_at - queued_at <= ?), 0) AS ok FROM conversations
             WHERE queue = ? AND assigned_at >= ? AND queued_at IS NOT NULL",
        )
        .bind(sla_ms)
        .bind(queue)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        let count = |c: &str| u64::try_from(row.get::<i64, _>(c)).unwrap_or(0);
        Ok((count("n"), count("ok")))
    }

    /// Starts an SLA timer unless one of this kind is already running for the conversation.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn start_sla(&self, timer: &SlaTimer) -> Result<()> {
        sqlx::query(
            "INSERT INTO sla_timers (conversation_id, kind, queue, started_at, warn_at, due_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (conversation_id, kind) DO UPDATE SET
               queue = excluded.queue, started_at = excluded.started_at, warn_at = excluded.warn_at,
               due_at = excluded.due_at, warned = 0, breached = 0, stopped_at = NULL
             WHERE sla_timers.stopped_at IS NOT NULL",
        )
        .bind(&timer.conversation_id)
        .bind(&timer.kind)
        .bind(&timer.queue)
        .bind(timer.started_at)
        .bind(timer.warn_at)
        .bind(timer.due_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stops the conversation's running SLA timers of `kind` (every kind when `None`).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn stop_sla(&self, id: &str, kind: Option<&str>, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sla_timers SET stopped_at = ? WHERE conversation_id = ? AND (? IS NULL OR kind = ?) AND stopped_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .bind(kind)
        .bind(kind)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Running SLA timers whose warning or breach is due at `now` and has not fired.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn due_slas(&self, now: i64) -> Result<Vec<SlaTimer>> {
        let rows = sqlx::query(
            "SELECT * FROM sla_timers WHERE stopped_at IS NULL
               AND ((warned = 0 AND warn_at <= ?) OR (breached = 0 AND due_at <= ?))
             ORDER BY warn_at LIMIT 500",
        )
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(sla_from_row).collect())
    }

    /// When the next running SLA warning or breach falls due, if any.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn next_sla(&self) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN warned = 0 THEN warn_at ELSE due_at END) AS next FROM sla_timers
             WHERE stopped_at IS NULL AND breached = 0",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get("next"))
    }

    /// Marks an SLA timer's warning (`breach` false) or breach as fired and records its event,
    /// in one transaction; false, writing nothing, when it had already fired or stopped.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn fire_sla(&self, timer: &SlaTimer, breach: bool, event: &NewEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let sql = if breach {
            "UPDATE sla_timers SET breached = 1, warned = 1 WHERE conversation_id = ? AND kind = ? AND breached = 0 AND stopped_at IS NULL"
        } else {
            "UPDATE sla_timers SET warned = 1 WHERE conversation_id = ? AND kind = ? AND warned = 0 AND stopped_at IS NULL"
        };
        let done = sqlx::query(sql)
            .bind(&timer.conversation_id)
            .bind(&timer.kind)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_events(
            &mut tx,
            &timer.conversation_id,
            std::slice::from_ref(event),
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The conversation's SLA timers.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn slas(&self, id: &str) -> Result<Vec<SlaTimer>> {
        let rows = sqlx::query("SELECT * FROM sla_timers WHERE conversation_id = ? ORDER BY kind")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(sla_from_row).collect())
    }

    /// Adds or updates an agent.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn upsert_agent(&self, agent: &Agent) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (id, name, skills, languages, capacity, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, skills = excluded.skills,
               languages = excluded.languages, capacity = excluded.capacity, status = excluded.status,
               updated_at = excluded.updated_at",
        )
        .bind(agent.id.as_str())
        .bind(&agent.name)
        .bind(serde_json::to_string(&agent.skills)?)
        .bind(serde_json::to_string(&agent.languages)?)
        .bind(i64::from(agent.capacity))
        .bind(serde_json::to_value(agent.status)?.as_str().unwrap_or("online"))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets an agent's presence; false when there is no such agent.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn set_agent_status(&self, id: &str, status: AgentStatus) -> Result<bool> {
        let done = sqlx::query("UPDATE agents SET status = ?, updated_at = ? WHERE id = ?")
            .bind(serde_json::to_value(status)?.as_str().unwrap_or("online"))
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every agent.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query("SELECT * FROM agents ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// The agent `id`, if there is one.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn agent(&self, id: &str) -> Result<Option<Agent>> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// How many conversations each agent holds (state `assigned`), by agent id; agents holding
    /// none are absent.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn agent_loads(&self) -> Result<HashMap<String, u32>> {
        let rows = sqlx::query("SELECT agent_id, COUNT(*) AS n FROM conversations WHERE state = 'assigned' AND agent_id IS NOT NULL GROUP BY agent_id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get("agent_id"),
                    u32::try_from(r.get::<i64, _>("n")).unwrap_or(u32::MAX),
                )
            })
            .collect())
    }

    /// Mean handle time (assignment to resolution) of the last 200 resolved conversations of
    /// `queue`, in seconds, with how many it was measured on.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn handle_time(&self, queue: &str) -> Result<(Option<f64>, i64)> {
        let row = sqlx::query(
            "SELECT AVG(resolved_at - assigned_at) AS mean_ms, COUNT(*) AS n FROM (
                SELECT resolved_at, assigned_at FROM conversations
                WHERE queue = ? AND state = 'resolved' AND assigned_at IS NOT NULL AND resolved_at IS NOT NULL
                ORDER BY resolved_at DESC LIMIT 200)",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await?;
        Ok((
            row.get::<Option<f64>, _>("mean_ms").map(|ms| ms / 1000.0),
            row.get("n"),
        ))
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn agent_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Agent> {
    Ok(Agent {
        id: AgentId::parse(r.get::<String, _>("id"))
            .map_err(|e| serde_json::Error::io(std::io::Error::other(e)))?,
        name: r.get("name"),
        skills: serde_json::from_str(&r.get::<String, _>("skills"))?,
        languages: serde_json::from_str(&r.get::<String, _>("languages"))?,
        capacity: u32::try_from(r.get::<i64, _>("capacity")).unwrap_or(1),
        status: serde_json::from_value::<AgentStatus>(serde_json::Value::String(r.get("status")))?,
    })
}

fn conversation_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ConversationRecord> {
    let state: String = r.get("state");
    Ok(ConversationRecord {
        id: r.get("id"),
        customer: serde_json::from_str(&r.get::<String, _>("customer"))?,
        channel: r.get("channel"),
        state: HandoffState::parse(&state).unwrap_or(HandoffState::AiActive),
        queue: r.get("queue"),
        priority: r.get("priority"),
        queued_at: r.get("queued_at"),
        agent_id: r.get("agent_id"),
        brief: r
            .get::<Option<String>, _>("brief")
            .map(|b| serde_json::from_str(&b))
            .transpose()?,
        disposition: r.get("disposition"),
        created_at: r.get("created_at"),
        language: r.get("language"),
        requested_agent: r.get("requested_agent"),
        offered_at: r.get("offered_at"),
        assigned_at: r.get("assigned_at"),
    })
}

fn event_from_row(r: &sqlx::sqlite::SqliteRow) -> EventRecord {
    EventRecord {
        id: r.get("id"),
        conversation_id: r.get("conversation_id"),
        kind: r.get("kind"),
        from_state: r.get("from_state"),
        to_state: r.get("to_state"),
        actor: r.get("actor"),
        reason: r.get("reason"),
        at: r.get("at"),
    }
}

fn sla_from_row(r: &sqlx::sqlite::SqliteRow) -> SlaTimer {
    SlaTimer {
        conversation_id: r.get("conversation_id"),
        kind: r.get("kind"),
        queue: r.get("queue"),
        started_at: r.get("started_at"),
        warn_at: r.get("warn_at"),
        due_at: r.get("due_at"),
        warned: r.get::<i64, _>("warned") != 0,
        breached: r.get::<i64, _>("breached") != 0,
        stopped_at: r.get("stopped_at"),
    }
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    events: &[NewEvent],
    now: i64,
) -> Result<()> {
    for e in events {
        sqlx::query("INSERT INTO events (conversation_id, kind, from_state, to_state, actor, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(id)
            .bind(e.kind)
            .bind(e.from.map(HandoffState::as_str))
            .bind(e.to.map(HandoffState::as_str))
            .bind(&e.actor)
            .bind(&e.reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::Role;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (Store::connect(&url).await.expect("connect"), dir)
    }

    fn update(state: HandoffState) -> ConversationUpdate {
        ConversationUpdate {
            state,
            queue: Some("billing".into()),
            priority: 5,
            agent_id: None,
            brief: None,
            disposition: None,
            language: None,
            requested_agent: None,
        }
    }

    #[tokio::test]
    async fn a_turn_and_its_transition_are_stored_together_and_stale_writes_are_refused() {
        let (s, _dir) = store().await;
        s.create_conversation("c1", &Customer::default(), None)
            .await
            .expect("create");
        assert!(matches!(
            s.create_conversation("c1", &Customer::default(), None)
                .await,
            Err(StoreError::Conflict(_))
        ));
        let mut turn = Turn::new(Role::Customer, "refund please").expect("turn");
        turn.client_turn_id = Some("t-1".into());
        let new = NewTurn {
            seq: 0,
            turn: &turn,
            decision: serde_json::json!({}),
            signals: serde_json::json!([]),
            response: serde_json::json!({"ok": 1}),
        };
        let event = NewEvent {
            kind: "transition",
            from: Some(HandoffState::AiActive),
            to: Some(HandoffState::Queued),
            actor: "policy".into(),
            reason: "test".into(),
        };
        assert!(s
            .apply(
                "c1",
                HandoffState::AiActive,
                Some(new.clone()),
                &[event],
                &update(HandoffState::Queued)
            )
            .await
            .expect("apply"));
        // The same expected state again is stale: refused, nothing written.
        assert!(!s
            .apply(
                "c1",
                HandoffState::AiActive,
                Some(new),
                &[],
                &update(HandoffState::Queued)
            )
            .await
            .expect("apply"));
        assert_eq!(s.turns("c1").await.expect("turns").len(), 1);
        let (stored, answer) = s
            .turn_by_client_id("c1", "t-1")
            .await
            .expect("lookup")
            .expect("found");
        assert_eq!(stored, turn);
        assert_eq!(answer, serde_json::json!({"ok": 1}));
        let c = s.conversation("c1").await.expect("load").expect("exists");
        assert_eq!(c.state, HandoffState::Queued);
        assert!(c.queued_at.is_some());
        assert_eq!(
            s.waiting_records("billing").await.expect("waiting").len(),
            1
        );
        assert_eq!(s.routing_records().await.expect("routing").len(), 1);
        assert_eq!(s.events("c1").await.expect("events").len(), 1);
    }

    #[tokio::test]
    async fn agents_round_trip_and_loads_count_assignments() {
        let (s, _dir) = store().await;
        let agent = Agent {
            id: AgentId::parse("a1").expect("id"),
            name: "Ana".into(),
            skills: vec!["billing".into()],
            languages: vec!["en".into()],
            capacity: 2,
            status: AgentStatus::Online,
        };
        s.upsert_agent(&agent).await.expect("upsert");
        assert_eq!(s.agents().await.expect("agents"), vec![agent]);
        s.create_conversation("c1", &Customer::default(), None)
            .await
            .expect("create");
        let mut u = update(HandoffState::HandoffRequested);
        s.apply("c1", HandoffState::AiActive, None, &[], &u)
            .await
            .expect("apply");
        u.state = HandoffState::Queued;
        s.apply("c1", HandoffState::HandoffRequested, None, &[], &u)
            .await
            .expect("apply");
        u.state = HandoffState::Assigned;
        u.agent_id = Some("a1".into());
        s.apply("c1", HandoffState::Queued, None, &[], &u)
            .await
            .expect("apply");
        assert_eq!(s.agent_loads().await.expect("loads").get("a1"), Some(&1));
        assert_eq!(
            s.agent("a1").await.expect("agent").map(|a| a.capacity),
            Some(2)
        );
        assert_eq!(s.agent("nobody").await.expect("agent"), None);
    }

    #[tokio::test]
    async fn sla_timers_fire_once_each_across_a_reopen_and_stop_when_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let s = Store::connect(&url).await.expect("connect");
        s.create_conversation("c1", &Customer::default(), None)
            .await
            .expect("create");
        let timer = SlaTimer {
            conversation_id: "c1".into(),
            kind: "first_response".into(),
            queue: "billing".into(),
            started_at: 0,
            warn_at: 80,
            due_at: 100,
            warned: false,
            breached: false,
            stopped_at: None,
        };
        s.start_sla(&timer).await.expect("start");
        assert_eq!(s.next_sla().await.expect("next"), Some(80));
        assert!(s.due_slas(79).await.expect("due").is_empty());
        let due = s.due_slas(150).await.expect("due");
        assert_eq!(due.len(), 1);
        let event = |kind| NewEvent {
            kind,
            from: None,
            to: None,
            actor: "sla".into(),
            reason: "test".into(),
        };
        assert!(s
            .fire_sla(&due[0], false, &event("sla_warning"))
            .await
            .expect("warn"));
        assert!(!s
            .fire_sla(&due[0], false, &event("sla_warning"))
            .await
            .expect("again"));
        s.close().await;
        // Reopened (a restart): the breach is still due, the warning is not fired again.
        let s = Store::connect(&url).await.expect("reconnect");
        let due = s.due_slas(150).await.expect("due");
        assert_eq!(due.len(), 1);
        assert!(due[0].warned && !due[0].breached);
        assert!(s
            .fire_sla(&due[0], true, &event("sla_breach"))
            .await
            .expect("breach"));
        assert!(s.due_slas(150).await.expect("due").is_empty());
        let kinds: Vec<String> = s
            .events("c1")
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, vec!["sla_warning", "sla_breach"]);
        // A stopped timer never fires; starting it again resets it.
        let mut next = timer.clone();
        next.kind = "next_response".into();
        s.start_sla(&next).await.expect("start");
        s.stop_sla("c1", Some("next_response"), 50)
            .await
            .expect("stop");
        assert!(s.due_slas(1000).await.expect("due").is_empty());
        s.start_sla(&next).await.expect("restart");
        assert_eq!(s.due_slas(1000).await.expect("due").len(), 1);
        let all = s.events_after(0, Some("c1"), 10).await.expect("events");
        assert_eq!(all.len(), 2);
        assert!(s
            .events_after(all[1].id, None, 10)
            .await
            .expect("after")
            .is_empty());
    }
}
