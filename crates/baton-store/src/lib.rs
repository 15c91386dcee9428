//! Baton's storage: everything accepted is persisted before it is acknowledged.
//!
//! Why this crate exists: "nothing acknowledged is ever lost" (DESIGN.md section 10) is a
//! property of the storage layer, so it lives here, behind one type the engine crates never see.
//! This version stores in an embedded SQLite file: WAL journal, `synchronous = FULL` (a commit
//! is on disk before it returns, so a `kill -9` or a power cut loses nothing acknowledged),
//! foreign keys on, schema migrations embedded in the binary. A turn, its decision, the state
//! change it caused and the API's answer are written in one transaction.

use baton_domain::{Agent, AgentId, AgentStatus, Brief, Customer, HandoffState, Turn};
use baton_route::Waiting;
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
    pool: SqlitePool,
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
}

impl ConversationRecord {
    /// The conversation as routing sees a waiting one.
    pub fn waiting(&self) -> Waiting {
        Waiting {
            conversation_id: self.id.clone(),
            priority: self.priority,
            queued_at: self.queued_at.unwrap_or(0),
        }
    }
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
    /// `transition` or `note`.
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

/// A new event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `transition` or `note`.
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
        let rows = sqlx::query("SELECT kind, from_state, to_state, actor, reason, at FROM events WHERE conversation_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| EventRecord {
                kind: r.get("kind"),
                from_state: r.get("from_state"),
                to_state: r.get("to_state"),
                actor: r.get("actor"),
                reason: r.get("reason"),
                at: r.get("at"),
            })
            .collect())
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
                queued_at = CASE WHEN ? = 'queued' AND state != 'queued' THEN ? ELSE queued_at END,
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
        for e in events {
            sqlx::query("INSERT INTO events (conversation_id, kind, from_state, to_state, actor, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(id)
                .bind(e.kind)
                .bind(e.from.map(HandoffState::as_str))
                .bind(e.to.map(HandoffState::as_str))
                .bind(&e.actor)
                .bind(&e.reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Conversations waiting in `queue` (queued or offered), in no particular order.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn waiting(&self, queue: &str) -> Result<Vec<Waiting>> {
        Ok(self
            .waiting_records(queue)
            .await?
            .iter()
            .map(ConversationRecord::waiting)
            .collect())
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

    /// Adds or updates an agent.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn upsert_agent(&self, agent: &Agent) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (id, name, skills, capacity, status, updated_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, skills = excluded.skills,
               capacity = excluded.capacity, status = excluded.status, updated_at = excluded.updated_at",
        )
        .bind(agent.id.as_str())
        .bind(&agent.name)
        .bind(serde_json::to_string(&agent.skills)?)
        .bind(i64::from(agent.capacity))
        .bind(serde_json::to_value(agent.status)?.as_str().unwrap_or("online"))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every agent.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query("SELECT id, name, skills, capacity, status FROM agents ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// The agent `id`, if there is one.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or unreadable data.
    pub async fn agent(&self, id: &str) -> Result<Option<Agent>> {
        let row = sqlx::query("SELECT id, name, skills, capacity, status FROM agents WHERE id = ?")
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
    })
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
        assert_eq!(s.waiting("billing").await.expect("waiting").len(), 1);
        assert_eq!(s.events("c1").await.expect("events").len(), 1);
    }

    #[tokio::test]
    async fn agents_round_trip_and_loads_count_assignments() {
        let (s, _dir) = store().await;
        let agent = Agent {
            id: AgentId::parse("a1").expect("id"),
            name: "Ana".into(),
            skills: vec!["billing".into()],
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
}
