//! The handoff service: Baton's lifecycle in one place, free of HTTP.
//!
//! Why this crate exists: the HTTP API, the widget, the console and the CLI must act on a
//! conversation in exactly the same way, and faults (a client hanging up, a full disk, a crash)
//! must never split a command in two. So every command (post a turn, claim, decline, reply,
//! note, transfer, resolve, hand back, follow up, presence, agents, ratings) is a method of
//! [`Service`] that returns a typed answer ([`answers`]) or a [`CoreError`], and:
//!
//! - **one command is one change**: the turn, its decision, the transitions, the routing
//!   decisions it caused (for this and other conversations), the SLA timers and agent
//!   presence are one [`baton_store::Change`], written in one transaction or not at all;
//! - **answers follow durability**: a command answers only after its change is on disk; the
//!   store commits concurrent changes together (group commit), so routine turns share fsyncs;
//! - **a command runs to its end** whatever the caller does: each runs on its own task, so a
//!   client that hangs up cannot leave the store and memory disagreeing;
//! - **routing state has one owner**: the dispatcher, what the store holds for each
//!   conversation in routing and the running SLA timers live behind one lock (the `routing` module).
//!   Routine turns (a conversation not in routing that does not escalate) never take it. When a
//!   write fails, routing is rebuilt from the store, which is the truth;
//! - **events fan out without polling** ([`bus::Bus`]), in sequence order;
//! - **time is injected** ([`Clock`]), so timers can be tested on simulated time
//!   ([`Service::tick`]).
//!
//! Lock order: a conversation's slot, then the routing lock. The timer pass takes only the
//! routing lock.

pub mod access;
pub mod answers;
pub mod bus;
mod error;
mod routing;

pub use error::CoreError;

pub use access::{Action, Actor, KeyScope, Relation};
use answers::*;
use baton_domain::{
    Agent, AgentId, AgentStatus, ConversationId, Customer, HandoffState, IdError, QueueName, Role,
    Turn, TurnError,
};
use baton_engine::{transition, Engine, Session, Transition, TurnOutcome};
use baton_route::dispatch::{Explanation, QueueStats};
use baton_route::{Millis, WaitEstimate};
use baton_store::{
    AccountRole, Applied, Change, ConversationChange, ConversationRecord, ConversationUpdate,
    EventKind, EventRecord, Guard, NewEvent, NewTurn, SlaKind, SlaTimer, Store, StoreError,
    TurnRecord, User,
};
use routing::Routing;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot, Notify};

type CoreResult<T> = Result<T, CoreError>;

/// How often the timer pass sends wait updates and looks for agents changed in the store by
/// another process (ms).
const SWEEP_MS: Millis = 2000;

/// A source of the current time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now (ms).
    fn now(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        baton_store::now_ms()
    }
}

/// A clock that moves only when told to: for tests of timers on simulated time.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `at` (ms).
    pub fn new(at: Millis) -> Self {
        Self(AtomicI64::new(at))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::Acquire)
    }
}

/// A conversation's slot: its lock, and its session once loaded.
type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// Cached sessions: slot and last use (a tick).
#[derive(Default)]
struct Sessions {
    slots: HashMap<String, (Slot, u64)>,
    tick: u64,
}

/// A boxed future borrowing for `'a`, as a command on a session returns.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A change on its way to the store, and who waits for its outcome.
type Write = (
    baton_store::Pending,
    Vec<ConversationId>,
    oneshot::Sender<Result<Applied, StoreError>>,
);

/// A conversation with everything stored about it.
#[derive(Debug, Clone)]
pub struct ConversationDetails {
    /// The conversation row.
    pub record: ConversationRecord,
    /// Its turns, oldest first.
    pub turns: Vec<TurnRecord>,
    /// Its events, oldest first.
    pub events: Vec<EventRecord>,
    /// Its SLA timers.
    pub slas: Vec<SlaTimer>,
    /// Place in line and wait, while waiting.
    pub wait: Option<(usize, WaitEstimate)>,
}

/// The handoff service of one node.
pub struct Service {
    engine: Engine,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sessions: Mutex<Sessions>,
    session_cache: usize,
    routing: tokio::sync::Mutex<Routing>,
    bus: bus::Bus,
    /// Submits changes in order and hands them to the publisher task.
    writes: Mutex<mpsc::UnboundedSender<Write>>,
    /// Woken when a command set a timer that may fall due before the timer pass sleeps out.
    timers: Notify,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A turn that cannot be accepted (422).
fn invalid_turn(e: TurnError) -> CoreError {
    CoreError::invalid("invalid_turn", e.to_string())
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}

fn in_routing(state: HandoffState) -> bool {
    state.is_waiting() || state == HandoffState::Assigned
}

fn not_found(id: &ConversationId) -> CoreError {
    CoreError::NotFound(format!(
        "no conversation `{id}`: create it with POST /v1/conversations"
    ))
}

fn require_owner(session: &Session, agent_id: &str) -> CoreResult<()> {
    if session.state == HandoffState::Assigned && session.agent.as_deref() == Some(agent_id) {
        Ok(())
    } else {
        Err(CoreError::conflict(
            "not_owner",
            format!(
                "agent `{agent_id}` does not own this conversation (state `{}`): claim it first (POST /v1/conversations/{{id}}/claim) and send its `agent_id`",
                session.state
            ),
        ))
    }
}

fn transition_events(transitions: &[Transition]) -> Vec<NewEvent> {
    transitions
        .iter()
        .map(|t| NewEvent {
            kind: EventKind::Transition,
            from: Some(t.from),
            to: Some(t.to),
            actor: t.actor.clone(),
            reason: t.reason.clone(),
        })
        .collect()
}

/// A session's queue or agent (`field`) as the domain's type, for the store. Queues come from
/// the validated policy and owners from routing; only an agent id a client chose (a bot's
/// `target_agent`, a transcript's `agent_id`) can fail to parse: no agent has such an id, and
/// it is not stored (with a warning).
fn stored_id<T: TryFrom<String, Error = IdError>>(
    session: &Session,
    field: &'static str,
    value: Option<&String>,
) -> Option<T> {
    match T::try_from(value?.clone()) {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(conversation = %session.id, field, error = %e, "not stored: not a valid id");
            None
        }
    }
}

fn update_of(session: &Session, disposition: Option<String>, brief: bool) -> ConversationUpdate {
    ConversationUpdate {
        state: session.state,
        queue: stored_id::<QueueName>(session, "queue", session.queue.as_ref()),
        priority: session.priority,
        agent_id: stored_id::<AgentId>(session, "agent_id", session.agent.as_ref()),
        brief: if brief { session.brief.clone() } else { None },
        disposition,
        language: session.detect.language.clone(),
        requested_agent: stored_id::<AgentId>(
            session,
            "requested_agent",
            session.requested_agent.as_ref(),
        ),
    }
}

/// The conversation fields a turn may change (besides the brief).
#[derive(Debug, PartialEq)]
struct Fields {
    state: HandoffState,
    queue: Option<String>,
    priority: i64,
    agent: Option<String>,
    language: Option<String>,
    requested_agent: Option<String>,
}

impl Fields {
    fn of(s: &Session) -> Self {
        Self {
            state: s.state,
            queue: s.queue.clone(),
            priority: s.priority,
            agent: s.agent.clone(),
            language: s.detect.language.clone(),
            requested_agent: s.requested_agent.clone(),
        }
    }
}

/// [`access::authorize`], as the service's error.
fn allow(
    actor: &Actor,
    action: Action,
    as_agent: Option<&str>,
    relation: Relation,
) -> CoreResult<()> {
    access::authorize(actor, action, as_agent, relation)
        .map_err(|access::Refusal(why)| CoreError::Forbidden(why))
}

/// Where a turn comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A client of the API: the turn is checked against the conversation's state.
    Live,
    /// A recorded transcript: what happened is kept as it happened.
    Transcript,
}

/// Stores `answer` with the turn of `change` (the first conversation part is the turn's own),
/// for a retry with the same `client_turn_id`.
fn store_answer(change: &mut Change, answer: &TurnAnswer) -> CoreResult<()> {
    if let Some(t) = change
        .conversations
        .first_mut()
        .and_then(|c| c.turn.as_mut())
    {
        t.response = serde_json::to_value(answer).map_err(internal)?;
    }
    Ok(())
}

/// `ms` (milliseconds since the Unix epoch) as an RFC 3339 UTC timestamp; the number itself
/// when it is out of range.
pub fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

impl Service {
    /// A service over `engine` and `store`, caching at most `session_cache` idle
    /// conversations, on `clock`; routing is rebuilt from the store (SLA timers included) and
    /// what that decides is written. Call inside a Tokio runtime; start the timer pass with
    /// [`Service::spawn_timers`] (or drive it with [`Service::tick`]).
    ///
    /// # Errors
    /// When the store cannot be read or the rebuilt routing cannot be written.
    pub async fn open(
        engine: Engine,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        session_cache: usize,
    ) -> CoreResult<Arc<Self>> {
        let now = clock.now();
        let (routing, change) = Routing::rebuild(engine.policy(), store.as_ref(), now).await?;
        let last = store.last_event_id().await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
        let service = Arc::new(Self {
            engine,
            store,
            clock,
            sessions: Mutex::new(Sessions::default()),
            session_cache: session_cache.max(1),
            routing: tokio::sync::Mutex::new(routing),
            bus: bus::Bus::new(last),
            writes: Mutex::new(tx),
            timers: Notify::new(),
        });
        // The publisher: outcomes in submission order, events published in sequence order.
        let weak = Arc::downgrade(&service);
        tokio::spawn(async move {
            while let Some((pending, quiet, reply)) = rx.recv().await {
                let outcome = pending.await;
                if let (Ok(applied), Some(service)) = (&outcome, weak.upgrade()) {
                    service.bus.publish(&applied.events, &quiet);
                }
                let _ = reply.send(outcome);
            }
        });
        if !change.is_empty() {
            service.write(change).await?;
        }
        Ok(service)
    }

    /// The engine (detection, policy, briefs).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The event bus, for event streams.
    pub fn bus(&self) -> &bus::Bus {
        &self.bus
    }

    /// Now, on the service's clock (ms).
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Submits `change` in order; the future resolves once it is durable (or failed).
    fn write(
        &self,
        change: Change,
    ) -> impl std::future::Future<Output = Result<Applied, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        // Conversations whose turn in this change leaves them with the AI alone: their turn
        // events are not for followers of the handoff (see `bus::Scope`).
        let quiet = change
            .conversations
            .iter()
            .filter(|part| part.turn.is_some())
            .filter(|part| {
                let state = match (&part.update, &part.guard) {
                    (Some(update), _) => Some(update.state),
                    (None, Guard::State(state)) => Some(*state),
                    _ => None,
                };
                state.is_some_and(|s| !s.in_handoff())
            })
            .map(|part| part.id.clone())
            .collect();
        {
            let sender = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
            let pending = self.store.submit(change);
            if let Err(mpsc::error::SendError((_, _, tx))) = sender.send((pending, quiet, tx)) {
                let _ = tx.send(Err(StoreError::Closed));
            }
        }
        async move { rx.await.unwrap_or(Err(StoreError::Closed)) }
    }

    /// Runs `command` on its own task, so it ends (or fails) as a whole even when the caller
    /// goes away.
    async fn complete<T: Send + 'static>(
        command: impl std::future::Future<Output = CoreResult<T>> + Send + 'static,
    ) -> CoreResult<T> {
        tokio::spawn(command)
            .await
            .unwrap_or_else(|e| Err(CoreError::Internal(format!("command failed: {e}"))))
    }

    /// After a failed write: waits for every earlier change to land, then rebuilds routing
    /// from the store.
    async fn resync(&self) {
        let mut r = self.routing.lock().await;
        let now = self.clock.now();
        let _ = self.write(Change::at(now)).await;
        match Routing::rebuild(self.engine.policy(), self.store.as_ref(), now).await {
            Ok((fresh, change)) => {
                *r = fresh;
                if !change.is_empty() {
                    let pending = self.write(change);
                    drop(r);
                    if let Err(e) = pending.await {
                        tracing::warn!(error = %e, "routing decisions after a rebuild not stored");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "routing not rebuilt from the store"),
        }
    }

    /// Awaits a change submitted under the routing lock; on failure, rebuilds routing.
    async fn settle(
        &self,
        pending: impl std::future::Future<Output = Result<Applied, StoreError>>,
    ) -> CoreResult<Applied> {
        match pending.await {
            Ok(applied) => {
                self.timers.notify_one();
                Ok(applied)
            }
            Err(e) => {
                self.resync().await;
                Err(e.into())
            }
        }
    }

    /// A routing command that touches no session: `f` acts on routing at the command's time
    /// and adds to its change; what the dispatcher decided joins the change, which is
    /// submitted under the routing lock and awaited after it.
    async fn routing_command<T>(
        &self,
        f: impl FnOnce(&mut Routing, &mut Change, Millis) -> CoreResult<T>,
    ) -> CoreResult<T> {
        let mut r = self.routing.lock().await;
        let now = self.clock.now();
        let mut change = Change::at(now);
        let out = f(&mut r, &mut change, now)?;
        r.record(&mut change, now);
        let pending = self.write(change);
        drop(r);
        self.settle(pending).await?;
        Ok(out)
    }

    /// The slot of conversation `id`, created empty if absent. When the cache is over its size,
    /// the least recently used idle slots are dropped first (a slot someone holds is never
    /// dropped, so two slots never exist for one conversation).
    fn slot(&self, id: &str) -> Slot {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.tick += 1;
        let tick = sessions.tick;
        let entry = sessions.slots.entry(id.to_owned()).or_default();
        entry.1 = tick;
        let slot = entry.0.clone();
        if sessions.slots.len() > self.session_cache {
            let keep = self.session_cache - self.session_cache / 4;
            let mut idle: Vec<(u64, String)> = sessions
                .slots
                .iter()
                .filter(|(_, (s, _))| Arc::strong_count(s) == 1)
                .map(|(k, (_, used))| (*used, k.clone()))
                .collect();
            idle.sort_unstable();
            let excess = sessions.slots.len().saturating_sub(keep);
            for (_, key) in idle.into_iter().take(excess) {
                sessions.slots.remove(&key);
            }
        }
        slot
    }

    /// The session in `slot`, loaded from the store if needed.
    async fn load(&self, slot: &mut Option<Session>, id: &ConversationId) -> CoreResult<()> {
        if slot.is_none() {
            let record = self
                .store
                .conversation(id)
                .await?
                .ok_or_else(|| not_found(id))?;
            let turns = self
                .store
                .turns(id)
                .await?
                .into_iter()
                .map(|t| t.turn)
                .collect();
            let mut session =
                self.engine
                    .start(id.clone(), record.customer.clone(), record.channel.clone());
            session.brief = record.brief;
            session.state = record.state;
            session.queue = record.queue.map(String::from);
            session.priority = record.priority;
            session.agent = record.agent_id.map(String::from);
            session.requested_agent = record.requested_agent.map(String::from);
            *slot = Some(self.engine.restore(session, turns));
        }
        Ok(())
    }

    /// Copies the routing fields of a conversation in routing into its session.
    fn sync(session: &mut Session, r: &Routing) {
        if let Some(h) = r.held.get(&session.id) {
            session.state = h.state;
            session.queue = Some(h.queue.as_str().to_owned());
            session.priority = h.priority;
            session.agent = h.agent.as_ref().map(|a| a.as_str().to_owned());
        }
    }

    /// Runs `f` on conversation `id`'s session (loaded if needed), under its slot lock, on a
    /// task of its own (see [`Service::complete`]). Commands change the session in place; when
    /// `f` fails after it may have changed it ([`CoreError::taints_session`]), the session is
    /// dropped, to be loaded again from the store.
    async fn session_command<T, F>(self: &Arc<Self>, id: ConversationId, f: F) -> CoreResult<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Service, &'a mut Session) -> BoxFuture<'a, CoreResult<T>>
            + Send
            + 'static,
    {
        let this = self.clone();
        Self::complete(async move {
            let slot = this.slot(id.as_str());
            let mut guard = slot.lock().await;
            this.load(&mut guard, &id).await?;
            let session = guard
                .as_mut()
                .ok_or_else(|| internal("session slot empty after load"))?;
            let result = f(&this, session).await;
            if result.as_ref().is_err_and(CoreError::taints_session) {
                *guard = None;
            }
            result
        })
        .await
    }

    /// Creates a conversation in `ai_active` (a new UUID when `id` is `None`).
    ///
    /// # Errors
    /// [`CoreError::Conflict`] (`conversation_exists`) when the id is taken;
    /// [`CoreError::Unavailable`] when storage cannot write.
    #[tracing::instrument(name = "command", skip_all, fields(command = "create_conversation"))]
    pub async fn create_conversation(
        self: &Arc<Self>,
        actor: &Actor,
        id: Option<ConversationId>,
        customer: Customer,
        channel: Option<String>,
    ) -> CoreResult<Created> {
        self.authorize(actor, Action::CreateConversation, None, None)
            .await?;
        self.insert_conversation(id, customer, channel).await
    }

    /// Creates a conversation, authorised (or the widget's, which anyone may start).
    async fn insert_conversation(
        self: &Arc<Self>,
        id: Option<ConversationId>,
        customer: Customer,
        channel: Option<String>,
    ) -> CoreResult<Created> {
        let id = match id {
            Some(id) => id,
            None => ConversationId::parse(uuid::Uuid::new_v4().to_string()).map_err(internal)?,
        };
        let this = self.clone();
        Self::complete(async move {
            let mut change = Change::at(this.clock.now());
            change.conversations.push(ConversationChange::new(
                id.clone(),
                Guard::Create { customer, channel },
            ));
            this.write(change).await?;
            Ok(Created {
                id: id.to_string(),
                state: HandoffState::AiActive,
                warnings: Vec::new(),
            })
        })
        .await
    }

    /// Applies one turn (the API's `POST .../turns`, the widget's messages, an agent's reply):
    /// detection, decision, routing, persistence, in one change; returns the answer. A turn
    /// with a known `client_turn_id` gets the stored answer again.
    ///
    /// # Errors
    /// 422 for an empty turn or an unknown `target_queue`; 404 for an unknown conversation;
    /// 409 `ai_locked_out`, `not_owner` or `client_turn_id_reused`; 503 when storage cannot
    /// write.
    #[tracing::instrument(name = "command", skip_all, fields(command = "post_turn", conversation = %id))]
    pub async fn post_turn(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        mut turn: Turn,
    ) -> CoreResult<TurnAnswer> {
        if let Actor::User { id: me, .. } = actor {
            if turn.role == Role::Agent && turn.agent_id.is_none() {
                turn.agent_id = Some(me.clone());
            }
        }
        let as_agent = turn.agent_id.clone().filter(|_| turn.role == Role::Agent);
        self.authorize(
            actor,
            Action::PostTurn(turn.role),
            as_agent.as_deref(),
            Some(&id),
        )
        .await?;
        self.apply_turn(id, turn).await
    }

    /// A live turn, authorised: checked, then applied.
    async fn apply_turn(
        self: &Arc<Self>,
        id: ConversationId,
        turn: Turn,
    ) -> CoreResult<TurnAnswer> {
        turn.require_content().map_err(invalid_turn)?;
        if let Some(q) = &turn.target_queue {
            let policy = self.engine.policy();
            if policy.queue(q).is_none() {
                let valid: Vec<&str> = policy.queues().iter().map(|q| q.name.as_str()).collect();
                return Err(CoreError::invalid(
                    "unknown_queue",
                    format!("`target_queue` is `{q}`, which is not a queue of the policy: use one of {}", valid.join(", ")),
                ));
            }
        }
        self.session_command(id, move |this, session| {
            Box::pin(async move { this.take_turn(session, turn, Source::Live).await })
        })
        .await
    }

    /// Applies one turn of a recorded transcript (`baton replay`): the pipeline of
    /// [`Service::post_turn`], with the transcript as the truth. What a live client is refused
    /// is kept as it happened: an empty turn, an AI turn while a person owns the conversation,
    /// an agent's turn on a conversation another agent (or no one) holds, a `target_queue` the
    /// policy does not have (routed as the policy decides). An agent's turn while the
    /// conversation waits means that person took it outside routing: it leaves the line and
    /// is `assigned` to them, and routing does not hold it.
    ///
    /// # Errors
    /// 404 for an unknown conversation; 409 `client_turn_id_reused`; 503 when storage cannot
    /// write.
    #[tracing::instrument(name = "command", skip_all, fields(command = "record_turn", conversation = %id))]
    pub async fn record_turn(
        self: &Arc<Self>,
        id: ConversationId,
        turn: Turn,
    ) -> CoreResult<TurnAnswer> {
        self.session_command(id, move |this, session| {
            Box::pin(async move { this.take_turn(session, turn, Source::Transcript).await })
        })
        .await
    }

    async fn take_turn(
        &self,
        session: &mut Session,
        turn: Turn,
        source: Source,
    ) -> CoreResult<TurnAnswer> {
        if let Some(client_id) = &turn.client_turn_id {
            if session
                .turns
                .iter()
                .any(|t| t.client_turn_id.as_deref() == Some(client_id.as_str()))
            {
                let (earlier, answer) = self
                    .store
                    .turn_by_client_id(&session.id, client_id)
                    .await?
                    .ok_or_else(|| internal("a turn of the session is not in the store"))?;
                if earlier != turn {
                    return Err(CoreError::conflict(
                        "client_turn_id_reused",
                        format!("`client_turn_id` `{client_id}` was already used for a different turn in this conversation: give every new turn its own id, and resend a retry unchanged"),
                    ));
                }
                return serde_json::from_value(answer).map_err(internal);
            }
        }
        // A conversation in routing takes its routing fields from routing first; one that is
        // not can only be moved by its own commands, which hold its slot.
        let routed = in_routing(session.state);
        let mut lock = if routed {
            let r = self.routing.lock().await;
            Self::sync(session, &r);
            Some(r)
        } else {
            None
        };
        if source == Source::Live {
            self.engine
                .check(session, &turn)
                .map_err(|e| CoreError::conflict("ai_locked_out", e.to_string()))?;
            if turn.role == Role::Agent {
                require_owner(session, turn.agent_id.as_deref().unwrap_or_default())?;
            }
        }
        // From here the session changes in place: an error evicts it (`taints_session`), and
        // it is loaded again from the store, which is the truth.
        let before = Fields::of(session);
        let outcome = self.engine.process(session, turn.clone());
        let mut answer = self.answer(session, &outcome);
        let mut change = self.turn_change(&before, session, &turn, &outcome, self.clock.now())?;
        if lock.is_none() && outcome.route.is_none() {
            // A routine turn: no routing involved.
            store_answer(&mut change, &answer)?;
            self.write(change).await?;
            return Ok(answer);
        }
        let mut r = match lock.take() {
            Some(r) => r,
            None => self.routing.lock().await,
        };
        let now = self.clock.now();
        change.at = now;
        if let Err(e) = self.route_turn(
            &mut r,
            session,
            &turn,
            &outcome,
            (routed, source),
            &mut answer,
            &mut change,
            now,
        ) {
            drop(r);
            self.resync().await;
            return Err(e);
        }
        store_answer(&mut change, &answer)?;
        let pending = self.write(change);
        drop(r);
        self.settle(pending).await?;
        Ok(answer)
    }

    /// What routing does with a processed turn, into its change and answer.
    #[allow(clippy::too_many_arguments)]
    fn route_turn(
        &self,
        r: &mut Routing,
        session: &mut Session,
        turn: &Turn,
        outcome: &TurnOutcome,
        (routed, source): (bool, Source),
        answer: &mut TurnAnswer,
        change: &mut Change,
        now: Millis,
    ) -> CoreResult<()> {
        let id = session.id.clone();
        let policy = self.engine.policy();
        let queue = session
            .queue
            .as_deref()
            .and_then(|q| policy.queue(q))
            .cloned();
        if let Some(route) = &outcome.route {
            let queue_name = QueueName::parse(route.queue.clone()).map_err(internal)?;
            let new = baton_route::NewConversation {
                id: id.clone(),
                queue: route.queue.clone(),
                priority: route.priority,
                language: session.detect.language.clone(),
                // No agent has an id that does not parse: such a request names no one.
                owner: session
                    .requested_agent
                    .as_deref()
                    .and_then(|a| AgentId::parse(a).ok()),
                queued_at: now,
                why: route.why.clone(),
            };
            r.enter(id.clone(), queue_name, new, now)
                .map_err(internal)?;
            r.record(change, now);
            self.describe_placement(r, session, answer, now);
            if let Some(q) = &queue {
                r.start_sla(
                    change,
                    policy,
                    &id,
                    q,
                    (SlaKind::FirstResponse, q.sla_seconds),
                    now,
                );
            }
        } else if routed && !in_routing(session.state) {
            // The customer cancelled back to the AI.
            r.leave(change, &id, false, now);
        } else if source == Source::Transcript
            && turn.role == Role::Agent
            && r.held.get(&id).is_some_and(|h| h.state.is_waiting())
        {
            // The person the transcript names took the conversation, outside routing.
            r.leave(change, &id, false, now);
        } else if !r.held.contains_key(&id) {
            // Held by a person outside routing (a transcript's): nothing to route.
        } else if session.state == HandoffState::Assigned && turn.role == Role::Customer {
            r.d.customer_wrote(id.as_str(), now).map_err(internal)?;
            if let Some(q) = queue
                .as_ref()
                .filter(|q| q.next_response_sla_seconds.is_some())
            {
                let secs = q.next_response_sla_seconds.unwrap_or(q.sla_seconds);
                r.start_sla(change, policy, &id, q, (SlaKind::NextResponse, secs), now);
            }
            r.record(change, now);
        } else if session.state == HandoffState::Assigned && turn.role == Role::Agent {
            r.d.agent_replied(id.as_str()).map_err(internal)?;
            r.stop_sla(change, &id, None);
            r.record(change, now);
        } else if session.state.is_waiting() {
            if let (Some(p), Some(w)) = (r.d.position(id.as_str()), r.d.estimate(id.as_str())) {
                answer.position = Some(p);
                answer.estimated_wait_seconds = Some(w.quoted_seconds);
                answer.expected_wait_seconds = Some(w.expected_seconds);
            }
        }
        Self::sync(session, r);
        if outcome.route.is_some() {
            answer.state = session.state;
            answer.ai_may_reply = session.state.ai_may_reply();
            answer.agent_id = session
                .agent
                .clone()
                .filter(|_| session.state != HandoffState::Queued);
        }
        Ok(())
    }

    /// The answer to a processed turn, before routing adds to it.
    fn answer(&self, session: &Session, o: &TurnOutcome) -> TurnAnswer {
        let d = &o.decision;
        TurnAnswer {
            conversation_id: session.id.to_string(),
            turn: o.turn,
            role: o.role,
            escalate: d.escalate,
            mode: d.mode,
            score: d.score,
            threshold: d.threshold,
            reasons: d.reasons.clone(),
            state: o.state,
            queue: session.queue.clone(),
            signals: o.signals.clone(),
            contributions: d.contributions.clone(),
            rules_fired: d.rules_fired.clone(),
            ai_may_reply: o.state.ai_may_reply(),
            skipped_rules: d.skipped_rules.clone(),
            shadow: d.shadow,
            brief: o.brief.clone(),
            position: None,
            estimated_wait_seconds: None,
            expected_wait_seconds: None,
            agent_id: None,
            queue_open: None,
            opens_at: None,
            alternatives: None,
            meeting_link: None,
            customer_message: None,
            warnings: Vec::new(),
        }
    }

    /// The change of a processed turn: the turn with its decision (its answer is added by
    /// [`store_answer`] once routing has completed it), the new conversation fields, a `turn`
    /// event (consoles and widgets fetch it) and the transitions.
    fn turn_change(
        &self,
        before: &Fields,
        next: &Session,
        turn: &Turn,
        o: &TurnOutcome,
        now: Millis,
    ) -> CoreResult<Change> {
        let mut part = ConversationChange::new(next.id.clone(), Guard::State(before.state));
        part.turn = Some(NewTurn {
            seq: o.turn,
            turn: turn.clone(),
            decision: serde_json::to_value(&o.decision).map_err(internal)?,
            signals: serde_json::to_value(&o.signals).map_err(internal)?,
            response: serde_json::Value::Null,
        });
        // Most turns change no field of the conversation: then only the turn is written.
        if o.brief.is_some() || *before != Fields::of(next) {
            part.update = Some(update_of(next, None, o.brief.is_some()));
        }
        part.events.push(NewEvent {
            kind: EventKind::Turn,
            from: None,
            to: None,
            actor: match (turn.role, &turn.agent_id) {
                (Role::Agent, Some(agent)) => format!("agent:{agent}"),
                (role, _) => role.as_str().to_owned(),
            },
            reason: format!("turn {}", o.turn),
        });
        part.events.extend(transition_events(&o.transitions));
        let mut change = Change::at(now);
        change.conversations.push(part);
        Ok(change)
    }

    /// Adds position, wait, the customer message and, when the queue is closed or the wait too
    /// long, the async alternatives to an escalation's answer.
    fn describe_placement(
        &self,
        r: &mut Routing,
        session: &Session,
        answer: &mut TurnAnswer,
        now: Millis,
    ) {
        let id = session.id.as_str();
        let policy = self.engine.policy();
        let routing = &policy.file.routing;
        let (position, wait) = match (r.d.position(id), r.d.estimate(id)) {
            (Some(p), Some(w)) => (p, w),
            // Offered or assigned at once: first in line, the smallest quote.
            _ => (1, baton_route::estimate_wait(1, 1, 0, 1.0, routing)),
        };
        r.announced
            .insert(session.id.clone(), (position, wait.quoted_seconds));
        let queue_name = session.queue.clone().unwrap_or_default();
        let closed = policy
            .schedule(&queue_name)
            .filter(|s| !s.is_open(now))
            .map(|s| s.next_open(now));
        let too_long = policy
            .queue(&queue_name)
            .and_then(|q| q.max_wait_seconds)
            .is_some_and(|max| wait.quoted_seconds > max);
        answer.position = Some(position);
        answer.estimated_wait_seconds = Some(wait.quoted_seconds);
        answer.expected_wait_seconds = Some(wait.expected_seconds);
        let messages = &policy.file.messages;
        let options = routing.async_options.join(", ");
        let quote = wait.quoted_seconds;
        let message = match closed {
            Some(opens) => {
                answer.queue_open = Some(false);
                answer.opens_at = opens.map(rfc3339);
                let when = opens.map_or_else(
                    || "later".to_owned(),
                    |at| {
                        format!(
                            "in {}",
                            baton_engine::human_duration(
                                u64::try_from((at - now).max(0) / 1000).unwrap_or(0)
                            )
                        )
                    },
                );
                self.engine.message(
                    session,
                    &messages.closed,
                    position,
                    quote,
                    &[("opens", when), ("options", options)],
                )
            }
            None if too_long => self.engine.message(
                session,
                &messages.long_wait,
                position,
                quote,
                &[("options", options)],
            ),
            None => self.engine.escalation_message(session, position, quote),
        };
        if closed.is_some() || too_long {
            answer.alternatives = Some(routing.async_options.clone());
            answer.meeting_link = routing.meeting_link.clone();
        }
        answer.customer_message = Some(message);
    }

    /// The agent `id`, or a 404 that says how to add it.
    pub async fn agent(&self, id: &str) -> CoreResult<Agent> {
        let found = match AgentId::parse(id) {
            Ok(agent) => self.store.agent(&agent).await?,
            // No stored agent has an id that does not parse.
            Err(_) => None,
        };
        found.ok_or_else(|| {
            CoreError::NotFound(format!("no agent `{id}`: add it with POST /v1/agents"))
        })
    }

    /// Claims a conversation: accepts the offer made to this agent, or takes a waiting one the
    /// agent is eligible for (capacity permitting).
    ///
    /// # Errors
    /// 404 for an unknown agent or conversation; 409 `not_waiting` or `not_eligible`; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "claim", conversation = %id))]
    pub async fn claim(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        agent_id: String,
    ) -> CoreResult<Claimed> {
        self.authorize(actor, Action::Claim, Some(&agent_id), Some(&id))
            .await?;
        let agent = self.agent(&agent_id).await?;
        self.session_command(id, move |this, session| {
            Box::pin(async move {
                let mut r = this.routing.lock().await;
                let now = this.clock.now();
                Self::sync(session, &r);
                if !session.state.is_waiting() {
                    return Err(CoreError::conflict(
                        "not_waiting",
                        format!("conversation `{}` is `{}`, not waiting in a queue: only queued or offered conversations can be claimed", session.id, session.state),
                    ));
                }
                r.d.claim(session.id.as_str(), agent.id.as_str(), now)
                    .map_err(|e| CoreError::conflict("not_eligible", e.to_string()))?;
                let mut change = Change::at(now);
                r.record(&mut change, now);
                Self::sync(session, &r);
                let pending = this.write(change);
                drop(r);
                this.settle(pending).await?;
                Ok(Claimed {
                    conversation_id: session.id.to_string(),
                    state: HandoffState::Assigned,
                    agent_id: agent.id.to_string(),
                    brief: session.brief.clone(),
                    ai_may_reply: false,
                })
            })
        })
        .await
    }

    /// Declines the conversation offered to this agent: it goes to the next agent.
    ///
    /// # Errors
    /// 404 for an unknown agent; 409 `not_offered`; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "decline", conversation = %id))]
    pub async fn decline(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        agent_id: String,
    ) -> CoreResult<Declined> {
        self.authorize(actor, Action::Decline, Some(&agent_id), Some(&id))
            .await?;
        self.agent(&agent_id).await?;
        let this = self.clone();
        Self::complete(async move {
            this.routing_command(|r, _, now| {
                r.d.decline(id.as_str(), &agent_id, now)
                    .map_err(|e| CoreError::conflict("not_offered", e.to_string()))
            })
            .await?;
            Ok(Declined {
                conversation_id: id.to_string(),
                declined: true,
            })
        })
        .await
    }

    /// The owning agent's message to the customer.
    ///
    /// # Errors
    /// 422 for an empty text; 404; 409 `not_owner`; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "reply", conversation = %id))]
    pub async fn reply(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        agent_id: String,
        text: String,
    ) -> CoreResult<Replied> {
        self.authorize(actor, Action::Reply, Some(&agent_id), Some(&id))
            .await?;
        let mut turn = Turn::new(Role::Agent, text).map_err(invalid_turn)?;
        turn.agent_id = Some(agent_id);
        let answer = self.apply_turn(id, turn).await?;
        Ok(Replied {
            conversation_id: answer.conversation_id,
            turn: answer.turn,
            role: Role::Agent,
            state: answer.state,
            ai_may_reply: answer.ai_may_reply,
        })
    }

    /// An agent's internal note on a conversation (never shown to the customer).
    ///
    /// # Errors
    /// 400 for an empty note; 404; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "note", conversation = %id))]
    pub async fn note(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        agent_id: String,
        text: String,
    ) -> CoreResult<Noted> {
        self.authorize(actor, Action::Note, Some(&agent_id), Some(&id))
            .await?;
        if text.trim().is_empty() {
            return Err(CoreError::BadRequest("a note needs `text`".into()));
        }
        self.agent(&agent_id).await?;
        let this = self.clone();
        Self::complete(async move {
            let mut change = Change::at(this.clock.now());
            change.conversation(&id).events.push(NewEvent {
                kind: EventKind::Note,
                from: None,
                to: None,
                actor: format!("agent:{agent_id}"),
                reason: text,
            });
            this.write(change).await?;
            Ok(Noted {
                conversation_id: id.to_string(),
                noted: true,
            })
        })
        .await
    }

    /// One step of the state machine by the owning agent (`require_owner`) or the customer,
    /// with the routing consequence `leave` (`Some(handled)`: the conversation leaves routing),
    /// in one change.
    async fn step(
        &self,
        session: &mut Session,
        to: HandoffState,
        actor: &str,
        reason: &str,
        owner: Option<&str>,
        disposition: Option<String>,
    ) -> CoreResult<()> {
        let mut r = self.routing.lock().await;
        let now = self.clock.now();
        Self::sync(session, &r);
        if let Some(agent) = owner {
            require_owner(session, agent)?;
        }
        let before = session.state;
        // A refused transition changes nothing; from here the session changes in place.
        let t = transition(session, to, actor, reason)
            .map_err(|e| CoreError::conflict("invalid_transition", e.to_string()))?;
        let mut part = ConversationChange::new(session.id.clone(), Guard::State(before));
        part.update = Some(update_of(session, disposition, false));
        part.events = transition_events(&[t]);
        let mut change = Change::at(now);
        change.conversations.push(part);
        if in_routing(before) {
            r.leave(&mut change, &session.id, to == HandoffState::Resolved, now);
        }
        let pending = self.write(change);
        drop(r);
        self.settle(pending).await?;
        Ok(())
    }

    /// The owning agent resolves the conversation with a disposition (resolution category).
    ///
    /// # Errors
    /// 400 without a disposition; 404; 409 `not_owner`; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "resolve", conversation = %id))]
    pub async fn resolve(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        agent_id: String,
        disposition: String,
    ) -> CoreResult<Resolved> {
        self.authorize(actor, Action::Resolve, Some(&agent_id), Some(&id))
            .await?;
        if disposition.trim().is_empty() {
            return Err(CoreError::BadRequest(
                "resolving needs a `disposition` (the resolution category, e.g. `refund_issued`)"
                    .into(),
            ));
        }
        self.session_command(id, move |this, session| {
            Box::pin(async move {
                let actor = format!("agent:{agent_id}");
                this.step(
                    session,
                    HandoffState::Resolved,
                    &actor,
                    &format!("resolved: {disposition}"),
                    Some(&agent_id),
                    Some(disposition.clone()),
                )
                .await?;
                Ok(Resolved {
                    conversation_id: session.id.to_string(),
                    state: session.state,
                    disposition,
                    ai_may_reply: true,
                })
            })
        })
        .await
    }

    /// The owning agent hands the conversation back to the AI.
    ///
    /// # Errors
    /// 404; 409 `not_owner`; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "handback", conversation = %id))]
    pub async fn handback(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        agent_id: String,
        why: Option<String>,
    ) -> CoreResult<HandedBack> {
        self.authorize(actor, Action::Handback, Some(&agent_id), Some(&id))
            .await?;
        self.session_command(id, move |this, session| {
            Box::pin(async move {
                let actor = format!("agent:{agent_id}");
                let why = why.unwrap_or_else(|| "handed back to the AI".to_owned());
                this.step(
                    session,
                    HandoffState::ReturnedToAi,
                    &actor,
                    &why,
                    Some(&agent_id),
                    None,
                )
                .await?;
                Ok(HandedBack {
                    conversation_id: session.id.to_string(),
                    state: session.state,
                    ai_may_reply: true,
                    customer_message: this.engine.policy().file.messages.handback.clone(),
                })
            })
        })
        .await
    }

    /// The customer chooses the async path (`via`: one of the policy's `async_options`)
    /// instead of waiting; the conversation leaves the queue, the brief stays.
    ///
    /// # Errors
    /// 400 for an unknown `via`; 404; 409 `invalid_transition`; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "followup", conversation = %id))]
    pub async fn followup(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        via: String,
        contact: Option<String>,
    ) -> CoreResult<FollowedUp> {
        self.authorize(actor, Action::Followup, None, Some(&id))
            .await?;
        let routing = &self.engine.policy().file.routing;
        if !routing.async_options.contains(&via) {
            return Err(CoreError::BadRequest(format!(
                "`via` is `{via}`: choose one of {}",
                routing.async_options.join(", ")
            )));
        }
        self.session_command(id, move |this, session| {
            Box::pin(async move {
                let why = format!(
                    "the customer chose a {via} follow-up{}",
                    contact
                        .as_deref()
                        .map_or_else(String::new, |c| format!(" ({c})"))
                );
                this.step(
                    session,
                    HandoffState::AsyncFollowup,
                    "customer",
                    &why,
                    None,
                    None,
                )
                .await?;
                let meeting_link = (via == "meeting")
                    .then(|| this.engine.policy().file.routing.meeting_link.clone())
                    .flatten();
                Ok(FollowedUp {
                    conversation_id: session.id.to_string(),
                    state: session.state,
                    via,
                    ai_may_reply: true,
                    meeting_link,
                })
            })
        })
        .await
    }

    /// The owning agent transfers the conversation to another queue (and, with `to_agent`, to
    /// a colleague, who is waited for first): it waits there keeping its place in time, with a
    /// new first-response SLA.
    ///
    /// # Errors
    /// 404 for an unknown queue or agent; 409 `not_owner`; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "transfer", conversation = %id))]
    pub async fn transfer(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        agent_id: String,
        queue: String,
        to_agent: Option<String>,
        text: Option<String>,
    ) -> CoreResult<Transferred> {
        self.authorize(actor, Action::Transfer, Some(&agent_id), Some(&id))
            .await?;
        let target = self.engine.policy().queue(&queue).cloned().ok_or_else(|| {
            CoreError::NotFound(format!(
                "no queue `{queue}`: the policy's queues are listed at GET /v1/queues"
            ))
        })?;
        if let Some(to) = &to_agent {
            self.agent(to)
                .await
                .map_err(|_| CoreError::NotFound(format!("no agent `{to}` to transfer to")))?;
        }
        self.session_command(id, move |this, session| {
            Box::pin(async move {
                let mut r = this.routing.lock().await;
                let now = this.clock.now();
                Self::sync(session, &r);
                require_owner(session, &agent_id)?;
                let target_queue = QueueName::parse(target.name.clone()).map_err(internal)?;
                let why = format!(
                    "transferred to queue `{}`{}{}",
                    target.name,
                    to_agent
                        .as_deref()
                        .map_or_else(String::new, |a| format!(", for agent `{a}`")),
                    text.as_deref()
                        .map_or_else(String::new, |t| format!(": {t}"))
                );
                // A refused transition changes nothing; from here the session changes in place.
                let t = transition(
                    session,
                    HandoffState::Queued,
                    &format!("agent:{agent_id}"),
                    &why,
                )
                .map_err(|e| CoreError::conflict("invalid_transition", e.to_string()))?;
                if let Some(to) = &to_agent {
                    session.requested_agent = Some(to.clone());
                }
                session.queue = Some(target.name.clone());
                let sid = session.id.clone();
                r.d.transfer(sid.as_str(), &target.name, to_agent.as_deref(), now)
                    .map_err(internal)?;
                let mut part =
                    ConversationChange::new(sid.clone(), Guard::State(HandoffState::Assigned));
                part.update = Some(update_of(session, None, false));
                part.events = transition_events(&[t]);
                let mut change = Change::at(now);
                change.conversations.push(part);
                if let Some(h) = r.held.get_mut(&sid) {
                    h.state = HandoffState::Queued;
                    h.queue = target_queue;
                    h.agent = None;
                }
                r.stop_sla(&mut change, &sid, None);
                r.start_sla(
                    &mut change,
                    this.engine.policy(),
                    &sid,
                    &target,
                    (SlaKind::FirstResponse, target.sla_seconds),
                    now,
                );
                r.record(&mut change, now);
                Self::sync(session, &r);
                let pending = this.write(change);
                drop(r);
                this.settle(pending).await?;
                Ok(Transferred {
                    conversation_id: session.id.to_string(),
                    state: session.state,
                    queue: target.name.clone(),
                })
            })
        })
        .await
    }

    /// Adds or replaces an agent; routable at once.
    ///
    /// # Errors
    /// 400 for a capacity of 0 or an empty name; 409 when the capacity is below what the agent
    /// holds; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "upsert_agent"))]
    pub async fn upsert_agent(self: &Arc<Self>, actor: &Actor, agent: Agent) -> CoreResult<Agent> {
        self.authorize(actor, Action::UpsertAgent, None, None)
            .await?;
        if agent.capacity == 0 {
            return Err(CoreError::BadRequest("`capacity` is 0: give the number of conversations the agent can hold at once, at least 1".into()));
        }
        if agent.name.trim().is_empty() {
            return Err(CoreError::BadRequest(
                "`name` is empty: give the agent's display name".into(),
            ));
        }
        let this = self.clone();
        Self::complete(async move {
            this.routing_command(|r, change, now| {
                r.upsert_agent(agent.clone(), now)?;
                change
                    .agents
                    .push(baton_store::AgentChange::Upsert(agent.clone()));
                Ok(())
            })
            .await?;
            Ok(agent)
        })
        .await
    }

    /// Sets an agent's presence: `online` takes new conversations, `away` keeps current ones,
    /// `offline` also releases those waiting for the agent as their dedicated agent.
    ///
    /// # Errors
    /// 404 for an unknown agent; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "set_presence", agent = %agent_id))]
    pub async fn set_presence(
        self: &Arc<Self>,
        actor: &Actor,
        agent_id: String,
        status: AgentStatus,
    ) -> CoreResult<PresenceSet> {
        self.authorize(actor, Action::SetPresence, Some(&agent_id), None)
            .await?;
        let agent = self.agent(&agent_id).await?.id;
        let this = self.clone();
        Self::complete(async move {
            this.routing_command(|r, change, now| {
                r.set_presence(&agent, status, now)?;
                change.agents.push(baton_store::AgentChange::Status {
                    id: agent.clone(),
                    status,
                });
                Ok(())
            })
            .await?;
            Ok(PresenceSet { agent_id, status })
        })
        .await
    }

    /// The customer's rating (1 to 5) of the human part.
    ///
    /// # Errors
    /// 400 for a score outside 1 to 5; 404; 503.
    #[tracing::instrument(name = "command", skip_all, fields(command = "rate", conversation = %id))]
    pub async fn rate(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConversationId,
        score: u8,
    ) -> CoreResult<Rated> {
        self.authorize(actor, Action::Rate, None, Some(&id)).await?;
        if !(1..=5).contains(&score) {
            return Err(CoreError::BadRequest(format!(
                "`score` is {score}: rate from 1 (poor) to 5 (excellent)"
            )));
        }
        let this = self.clone();
        Self::complete(async move {
            let mut change = Change::at(this.clock.now());
            let part = change.conversation(&id);
            part.csat = Some(score);
            part.events.push(NewEvent {
                kind: EventKind::Csat,
                from: None,
                to: None,
                actor: "customer".into(),
                reason: format!("rated the human part {score} of 5"),
            });
            this.write(change).await?;
            Ok(Rated {
                conversation_id: id.to_string(),
                csat: score,
            })
        })
        .await
    }

    /// One pass of the timers at the clock's now: offers that expired, silent agents, queue
    /// steps, dedicated-agent waits, SLA warnings and breaches, and every two seconds wait
    /// updates and agents changed in the store by another process. Returns when the next pass
    /// is due.
    ///
    /// # Errors
    /// 503 when the pass's change cannot be written (routing is rebuilt from the store then).
    pub async fn tick(&self) -> CoreResult<Option<Millis>> {
        let mut r = self.routing.lock().await;
        let now = self.clock.now();
        let mut change = Change::at(now);
        let sweep_due = now - r.last_sweep >= SWEEP_MS;
        if sweep_due {
            // Agents another process added or changed: routable at once. Every earlier change
            // has landed first, so what the store says is not older than what routing knows.
            self.write(Change::at(now)).await?;
            let stored = self.store.agents().await?;
            r.take_agents(stored, now);
        }
        r.d.advance(now);
        r.record(&mut change, now);
        r.fire_slas(&mut change, now);
        if sweep_due {
            r.last_sweep = now;
            let share = self.engine.policy().file.routing.update_change;
            r.announce_waits(&mut change, share);
        }
        let sweep = Some(r.last_sweep + SWEEP_MS);
        let next = [r.d.next_timer(), r.next_sla(), sweep]
            .into_iter()
            .flatten()
            .min();
        if change.is_empty() {
            return Ok(next);
        }
        let pending = self.write(change);
        drop(r);
        self.settle(pending).await?;
        Ok(next)
    }

    /// Starts the timer pass on the wall clock: it sleeps until the next timer falls due (or a
    /// command sets an earlier one), so an idle node does no work. Ends when the bus closes.
    pub fn spawn_timers(self: &Arc<Self>) {
        let this = self.clone();
        let mut closed = self.bus.closed();
        tokio::spawn(async move {
            loop {
                let next = match this.tick().await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!(error = %e, "routing timers failed; retrying in 1 s");
                        Some(this.clock.now() + 1000)
                    }
                };
                let pause = next.map(|at| {
                    let ms = (at - this.clock.now()).clamp(1, 60_000);
                    std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(1000))
                });
                let sleep = async {
                    match pause {
                        Some(p) => tokio::time::sleep(p).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = sleep => {},
                    () = this.timers.notified() => {},
                    _ = closed.changed() => return,
                }
            }
        });
    }

    /// Ends event streams and the timer pass, waits for queued writes and closes the store.
    pub async fn shutdown(&self) {
        self.bus.close();
        let _ = self.write(Change::at(self.clock.now())).await;
        self.store.close().await;
    }

    /// Ends every event stream (the first step of a graceful shutdown).
    pub fn close_streams(&self) {
        self.bus.close();
    }

    /// Checks that routing and the store agree: every dispatcher invariant holds (nothing held
    /// twice, nobody over capacity, nothing waiting while an eligible agent has room), every
    /// conversation the store has in routing is in routing here with the same state, queue and
    /// agent, and no agent holds more than its capacity in the store. For tests and audits.
    ///
    /// # Errors
    /// The first disagreement, in words.
    pub async fn audit(&self) -> Result<(), String> {
        let r = self.routing.lock().await;
        let _ = self.write(Change::at(self.clock.now())).await;
        r.d.audit()?;
        let records = self
            .store
            .routing_records()
            .await
            .map_err(|e| e.to_string())?;
        if records.len() != r.held.len() {
            return Err(format!(
                "the store has {} conversations in routing, routing holds {}",
                records.len(),
                r.held.len()
            ));
        }
        for rec in &records {
            let h = r.held.get(&rec.id).ok_or_else(|| {
                format!(
                    "{} is `{}` in the store but not in routing",
                    rec.id, rec.state
                )
            })?;
            if (h.state, Some(&h.queue), &h.agent) != (rec.state, rec.queue.as_ref(), &rec.agent_id)
            {
                return Err(format!(
                    "{}: routing holds {h:?}, the store {:?} {:?} {:?}",
                    rec.id, rec.state, rec.queue, rec.agent_id
                ));
            }
            let holder =
                r.d.holder(rec.id.as_str())
                    .map(|(a, accepted)| (a.to_owned(), accepted));
            let expected = match rec.state {
                HandoffState::Assigned | HandoffState::Offered => rec
                    .agent_id
                    .as_ref()
                    .map(|a| (a.as_str().to_owned(), rec.state == HandoffState::Assigned)),
                _ => None,
            };
            if holder != expected {
                return Err(format!(
                    "{}: the dispatcher's holder {holder:?}, the store's {expected:?}",
                    rec.id
                ));
            }
        }
        let loads = self.store.agent_loads().await.map_err(|e| e.to_string())?;
        for agent in self.store.agents().await.map_err(|e| e.to_string())? {
            let held = loads.get(&agent.id).copied().unwrap_or(0);
            if held > agent.capacity {
                return Err(format!(
                    "agent {} holds {held} of capacity {}",
                    agent.id, agent.capacity
                ));
            }
        }
        Ok(())
    }

    // ----- access --------------------------------------------------------------------------

    /// The one authorisation decision ([`access::authorize`]): whether `actor` may do
    /// `action`, acting as agent `as_agent`, on conversation `on` (whose relation to the
    /// caller is looked up: held, offered, waiting in one of their queues, held before).
    ///
    /// # Errors
    /// [`CoreError::Forbidden`] saying why; store failures.
    async fn authorize(
        &self,
        actor: &Actor,
        action: Action,
        as_agent: Option<&str>,
        on: Option<&ConversationId>,
    ) -> CoreResult<()> {
        let relation = match on {
            Some(id) => self.relation(actor, id).await?,
            None => Relation::None,
        };
        allow(actor, action, as_agent, relation)
    }

    /// The caller's relation to conversation `id`; only agents' and customers' matter (every
    /// other caller's rights do not depend on it).
    async fn relation(&self, actor: &Actor, id: &ConversationId) -> CoreResult<Relation> {
        let me = match actor {
            Actor::Customer { conversation } => {
                return Ok(if id == conversation.as_str() {
                    Relation::Customer
                } else {
                    Relation::None
                })
            }
            Actor::User {
                id: me,
                role: AccountRole::Agent,
            } => me,
            _ => return Ok(Relation::None),
        };
        {
            let r = self.routing.lock().await;
            if let Some(h) = r.held.get(id) {
                let mine = h.agent.as_ref().is_some_and(|a| a == me.as_str());
                return Ok(match h.state {
                    HandoffState::Assigned if mine => Relation::Holds,
                    HandoffState::Offered if mine => Relation::Offered,
                    s if s.is_waiting() && r.d.eligible(id.as_str(), me) => Relation::Waiting,
                    _ => Relation::None,
                });
            }
        }
        // Held before: the agent acted on it (their turns, notes, resolution, hand-back or
        // transfer are recorded with the actor `agent:ID`).
        let actor = format!("agent:{me}");
        let held_before = self
            .store
            .events(id)
            .await?
            .iter()
            .any(|e| e.actor == actor);
        Ok(if held_before {
            Relation::Held
        } else {
            Relation::None
        })
    }

    /// Decides a read of conversation `id` (`action`: [`Action::Read`] or
    /// [`Action::Explain`]) and returns the caller's relation to it; a person reading a
    /// conversation they neither hold nor were offered is written to the audit log.
    ///
    /// # Errors
    /// [`CoreError::Forbidden`]; store failures.
    async fn may_read(
        &self,
        actor: &Actor,
        action: Action,
        id: &ConversationId,
    ) -> CoreResult<Relation> {
        let relation = self.relation(actor, id).await?;
        allow(actor, action, None, relation)?;
        if let Actor::User { role, .. } = actor {
            if !matches!(relation, Relation::Holds | Relation::Offered) {
                self.record_audit(
                    &access::label(actor),
                    "read",
                    id.as_str(),
                    &format!("{role}, {relation:?}").to_lowercase(),
                )
                .await?;
            }
        }
        Ok(relation)
    }

    /// Appends a line to the audit log, at the service's now.
    ///
    /// # Errors
    /// Store failures.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> CoreResult<()> {
        Ok(self
            .store
            .record_audit(baton_store::AuditEntry {
                at: self.clock.now(),
                actor: actor.to_owned(),
                action: action.to_owned(),
                subject: subject.to_owned(),
                detail: detail.to_owned(),
            })
            .await?)
    }

    /// The audit log, newest first: up to `limit` lines with ids below `before`.
    ///
    /// # Errors
    /// 403 unless the caller may open the supervisor view; store failures.
    pub async fn audit_log(
        &self,
        actor: &Actor,
        before: Option<i64>,
        limit: u32,
    ) -> CoreResult<Vec<baton_store::AuditRecord>> {
        self.authorize(actor, Action::Supervise, None, None).await?;
        Ok(self.store.audit_log(before, limit).await?)
    }

    /// What `actor` may see of conversation `id`'s events: `(events, notes)` (the event
    /// stream's filter; internal notes need [`Action::ReadNotes`], the others [`Action::Read`]).
    ///
    /// # Errors
    /// Store failures.
    pub async fn visibility(&self, actor: &Actor, id: &ConversationId) -> CoreResult<(bool, bool)> {
        let relation = self.relation(actor, id).await?;
        let may = |action| allow(actor, action, None, relation).is_ok();
        Ok((may(Action::Read), may(Action::ReadNotes)))
    }

    // ----- reads ---------------------------------------------------------------------------

    /// The stored conversation `id`, for a caller who may do `action` on it ([`Action::Read`],
    /// or [`Action::Explain`] for suggestions).
    ///
    /// # Errors
    /// 403 when the caller may not; 404 when there is none.
    pub async fn conversation(
        &self,
        actor: &Actor,
        action: Action,
        id: &ConversationId,
    ) -> CoreResult<ConversationRecord> {
        self.may_read(actor, action, id).await?;
        self.record(id).await
    }

    async fn record(&self, id: &ConversationId) -> CoreResult<ConversationRecord> {
        self.store
            .conversation(id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no conversation `{id}`")))
    }

    /// The conversation with its turns, events, SLA timers and, while it waits, its place.
    ///
    /// # Errors
    /// 404 when there is none.
    pub async fn conversation_details(
        &self,
        actor: &Actor,
        id: &ConversationId,
    ) -> CoreResult<ConversationDetails> {
        let relation = self.may_read(actor, Action::Read, id).await?;
        let notes = allow(actor, Action::ReadNotes, None, relation).is_ok();
        let record = self.record(id).await?;
        let turns = self.store.turns(id).await?;
        let mut events = self.store.events(id).await?;
        events.retain(|e| notes || e.kind != EventKind::Note);
        let slas = self.store.slas(id).await?;
        let wait = if record.state.is_waiting() {
            self.wait(id).await
        } else {
            None
        };
        Ok(ConversationDetails {
            record,
            turns,
            events,
            slas,
            wait,
        })
    }

    /// The turns of `id`, oldest first, for a caller who may do `action` on it (as
    /// [`Service::conversation`]).
    ///
    /// # Errors
    /// 403 when the caller may not; store failures.
    pub async fn turns(
        &self,
        actor: &Actor,
        action: Action,
        id: &ConversationId,
    ) -> CoreResult<Vec<TurnRecord>> {
        self.may_read(actor, action, id).await?;
        Ok(self.store.turns(id).await?)
    }

    /// Place in line and wait of a waiting conversation.
    pub async fn wait(&self, id: &ConversationId) -> Option<(usize, WaitEstimate)> {
        let r = self.routing.lock().await;
        Some((r.d.position(id.as_str())?, r.d.estimate(id.as_str())?))
    }

    /// Why a conversation is in its queue, and every agent's eligibility.
    ///
    /// # Errors
    /// 404; 409 `not_in_routing`.
    pub async fn explain(&self, actor: &Actor, id: &ConversationId) -> CoreResult<Explanation> {
        self.may_read(actor, Action::Explain, id).await?;
        let record = self.record(id).await?;
        let r = self.routing.lock().await;
        r.d.explain(id.as_str(), self.clock.now()).map_err(|_| {
            CoreError::conflict(
                "not_in_routing",
                format!("conversation `{id}` is `{}`: explain covers conversations that are queued, offered or assigned", record.state),
            )
        })
    }

    /// Live statistics of every queue of the policy, in policy order.
    ///
    /// # Errors
    /// Store failures.
    pub async fn queue_stats(&self, actor: &Actor) -> CoreResult<Vec<QueueStats>> {
        self.authorize(actor, Action::ListQueues, None, None)
            .await?;
        let now = self.clock.now();
        let r = self.routing.lock().await;
        let mut out = Vec::new();
        for q in self.engine.policy().queues() {
            out.push(r.d.queue_stats(&q.name, now)?);
        }
        Ok(out)
    }

    /// Live statistics of one queue.
    ///
    /// # Errors
    /// 404 for a queue the policy does not have.
    pub async fn queue_stat(&self, actor: &Actor, queue: &str) -> CoreResult<QueueStats> {
        self.authorize(actor, Action::ListQueues, None, None)
            .await?;
        let now = self.clock.now();
        Ok(self.routing.lock().await.d.queue_stats(queue, now)?)
    }

    /// Conversations of `queue` assigned since `since` (ms) and how many within `sla_ms`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn answered_since(
        &self,
        queue: &str,
        since: i64,
        sla_ms: i64,
    ) -> CoreResult<(u64, u64)> {
        // No stored conversation is in a queue whose name does not parse.
        let Ok(queue) = QueueName::parse(queue) else {
            return Ok((0, 0));
        };
        Ok(self.store.answered_since(&queue, since, sla_ms).await?)
    }

    /// The conversations waiting in `queue`, each with its place and wait, in line order.
    ///
    /// # Errors
    /// Store failures.
    pub async fn waiting(
        &self,
        queue: &str,
    ) -> CoreResult<Vec<(ConversationRecord, Option<(usize, WaitEstimate)>)>> {
        // No stored conversation is in a queue whose name does not parse.
        let records = match QueueName::parse(queue) {
            Ok(queue) => self.store.waiting_records(&queue).await?,
            Err(_) => Vec::new(),
        };
        let r = self.routing.lock().await;
        let mut out: Vec<_> = records
            .into_iter()
            .map(|rec| {
                let w =
                    r.d.position(rec.id.as_str())
                        .zip(r.d.estimate(rec.id.as_str()));
                (rec, w)
            })
            .collect();
        out.sort_by_key(|(_, w)| w.map_or(usize::MAX, |(p, _)| p));
        Ok(out)
    }

    /// Every agent with how many conversations each holds.
    ///
    /// # Errors
    /// Store failures.
    pub async fn agents(&self, actor: &Actor) -> CoreResult<Vec<(Agent, u32)>> {
        self.authorize(actor, Action::ListAgents, None, None)
            .await?;
        let agents = self.store.agents().await?;
        let loads = self.store.agent_loads().await?;
        Ok(agents
            .into_iter()
            .map(|a| {
                let held = loads.get(&a.id).copied().unwrap_or(0);
                (a, held)
            })
            .collect())
    }

    /// Conversations offered to or held by `agent`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn agent_conversations(&self, agent: &AgentId) -> CoreResult<Vec<ConversationId>> {
        Ok(self.store.agent_conversations(agent).await?)
    }

    /// The latest escalations, newest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn recent_escalations(
        &self,
        actor: &Actor,
        limit: u32,
    ) -> CoreResult<Vec<ConversationRecord>> {
        self.authorize(actor, Action::Supervise, None, None).await?;
        Ok(self.store.recent_escalations(limit).await?)
    }

    /// Running SLA timers that have breached.
    ///
    /// # Errors
    /// Store failures.
    pub async fn open_sla_breaches(&self, actor: &Actor) -> CoreResult<Vec<SlaTimer>> {
        self.authorize(actor, Action::Supervise, None, None).await?;
        Ok(self.store.open_sla_breaches().await?)
    }

    /// Stored events after `after`, at most `limit`, of one conversation or all.
    ///
    /// # Errors
    /// Store failures.
    pub async fn events_after(
        &self,
        after: i64,
        conversation: Option<&ConversationId>,
        limit: u32,
    ) -> CoreResult<Vec<EventRecord>> {
        Ok(self.store.events_after(after, conversation, limit).await?)
    }

    // ----- accounts ------------------------------------------------------------------------

    /// The console account of agent `id`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn user(&self, id: &str) -> CoreResult<Option<User>> {
        Ok(self.store.user(id).await?)
    }

    /// Every console account (id and role), for an admin.
    ///
    /// # Errors
    /// 403; store failures.
    pub async fn accounts(&self, actor: &Actor) -> CoreResult<Vec<(String, AccountRole)>> {
        self.authorize(actor, Action::ManageCredentials, None, None)
            .await?;
        Ok(self
            .store
            .users()
            .await?
            .into_iter()
            .map(|u| (u.id, u.role))
            .collect())
    }

    /// Creates or replaces account `id` (`password_hash`: argon2 PHC string), for an admin;
    /// the account's sessions end. Audited.
    ///
    /// # Errors
    /// 403; store failures.
    pub async fn set_account(
        &self,
        actor: &Actor,
        id: &str,
        password_hash: &str,
        role: AccountRole,
    ) -> CoreResult<()> {
        self.authorize(actor, Action::ManageCredentials, None, None)
            .await?;
        self.store.upsert_user(id, password_hash, role).await?;
        let detail = format!("added or replaced, role {role}");
        self.record_audit(&access::label(actor), "account_changed", id, &detail)
            .await
    }

    /// Removes account `id`, for an admin: its sessions end. Audited.
    ///
    /// # Errors
    /// 403; 404 when there is no such account; store failures.
    pub async fn remove_account(&self, actor: &Actor, id: &str) -> CoreResult<()> {
        self.authorize(actor, Action::ManageCredentials, None, None)
            .await?;
        if self.store.user(id).await?.is_none() {
            return Err(CoreError::NotFound(format!(
                "no account `{id}`: GET /v1/accounts lists them"
            )));
        }
        self.store.delete_user(id).await?;
        self.record_audit(
            &access::label(actor),
            "account_removed",
            id,
            "sessions ended",
        )
        .await
    }

    /// Every API key, for an admin (never the keys themselves).
    ///
    /// # Errors
    /// 403; store failures.
    pub async fn api_keys(&self, actor: &Actor) -> CoreResult<Vec<baton_store::ApiKey>> {
        self.authorize(actor, Action::ManageCredentials, None, None)
            .await?;
        Ok(self.store.api_keys().await?)
    }

    /// Stores a new API key (`key_hash`: SHA-256 hex of the key), for an admin. Audited.
    ///
    /// # Errors
    /// 403; store failures.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        id: &str,
        key_hash: &str,
        name: &str,
        scopes: &[String],
    ) -> CoreResult<()> {
        self.authorize(actor, Action::ManageCredentials, None, None)
            .await?;
        self.store
            .create_api_key(id, key_hash, name, scopes)
            .await?;
        let detail = format!("`{name}`, scopes {}", scopes.join(","));
        self.record_audit(&access::label(actor), "key_created", id, &detail)
            .await
    }

    /// Revokes API key `id`, for an admin: it opens nothing from now on. Audited.
    ///
    /// # Errors
    /// 403; 404 for an unknown key; store failures.
    pub async fn revoke_api_key(&self, actor: &Actor, id: &str) -> CoreResult<()> {
        self.authorize(actor, Action::ManageCredentials, None, None)
            .await?;
        if !self.store.api_keys().await?.iter().any(|k| k.id == id) {
            return Err(CoreError::NotFound(format!(
                "no key `{id}`: GET /v1/keys lists them"
            )));
        }
        self.store.revoke_api_key(id, self.clock.now()).await?;
        self.record_audit(&access::label(actor), "key_revoked", id, "revoked")
            .await
    }

    /// Creates or replaces a console account (`password_hash`: argon2 PHC string), at start
    /// (the first admin); the account's sessions end.
    ///
    /// # Errors
    /// Store failures.
    pub async fn upsert_user(
        &self,
        id: &str,
        password_hash: &str,
        role: AccountRole,
    ) -> CoreResult<()> {
        Ok(self.store.upsert_user(id, password_hash, role).await?)
    }

    /// Whether any account or key exists.
    ///
    /// # Errors
    /// Store failures.
    pub async fn has_credentials(&self) -> CoreResult<bool> {
        Ok(self.store.has_credentials().await?)
    }

    /// Stores a session (SHA-256 hex of the token) until `expires_at` (ms).
    ///
    /// # Errors
    /// Store failures.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        expires_at: i64,
    ) -> CoreResult<()> {
        Ok(self
            .store
            .create_session(token_hash, user, expires_at)
            .await?)
    }

    /// The account of a live session.
    ///
    /// # Errors
    /// Store failures.
    pub async fn session_user(&self, token_hash: &str) -> CoreResult<Option<User>> {
        Ok(self
            .store
            .session_user(token_hash, self.clock.now())
            .await?)
    }

    /// Ends a session.
    ///
    /// # Errors
    /// Store failures.
    pub async fn delete_session(&self, token_hash: &str) -> CoreResult<()> {
        Ok(self.store.delete_session(token_hash).await?)
    }

    /// The scopes of an unrevoked API key (SHA-256 hex).
    ///
    /// # Errors
    /// Store failures.
    pub async fn api_key_scopes(&self, key_hash: &str) -> CoreResult<Option<Vec<String>>> {
        Ok(self.store.api_key_scopes(key_hash).await?)
    }

    /// Starts a widget conversation for a customer, with its token's hash.
    ///
    /// # Errors
    /// Store failures.
    pub async fn start_widget(
        self: &Arc<Self>,
        customer: Customer,
        token_hash: String,
    ) -> CoreResult<Created> {
        let id = ConversationId::parse(uuid::Uuid::new_v4().to_string()).map_err(internal)?;
        let created = self
            .insert_conversation(Some(id.clone()), customer, Some("widget".into()))
            .await?;
        self.store.create_widget_token(&token_hash, &id).await?;
        Ok(created)
    }

    /// The conversation of a widget token (SHA-256 hex).
    ///
    /// # Errors
    /// Store failures.
    pub async fn widget_conversation(
        &self,
        token_hash: &str,
    ) -> CoreResult<Option<ConversationId>> {
        Ok(self.store.widget_conversation(token_hash).await?)
    }
}

#[cfg(test)]
mod tests;
