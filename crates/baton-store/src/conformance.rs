//! The conformance suite: what every [`Store`] implementation must do.
//!
//! [`run`] takes a fresh, empty store and checks the contract of the trait's docs: guards
//! and atomicity, turns and their idempotent answers, event order, SLA timers, agents and
//! routing views, the service level, accounts, and many concurrent writers. It panics with a
//! message naming the broken rule at the first failure. It writes only rows whose ids start
//! with `conf-`, with times near [`T0`]; it leaves them in the store.
//!
//! ```no_run
//! # async fn example() {
//! let store = baton_store::connect("sqlite://conformance.db").await.expect("open");
//! baton_store::conformance::run(store).await;
//! # }
//! ```

use crate::{
    AccountRole, AgentChange, Applied, AuditEntry, Change, ConversationChange, ConversationRecord,
    ConversationUpdate, EventKind, EventRecord, Guard, NewEvent, NewTurn, Result, SlaChange,
    SlaKind, SlaTimer, Store, StoreError,
};
use baton_domain::{
    Agent, AgentId, AgentStatus, Brief, ConversationId, Customer, HandoffState, QueueName, Role,
    Skill, Turn,
};
use std::collections::HashSet;
use std::sync::Arc;

/// The suite's base time (ms since the Unix epoch, 2023-11-14): every change it writes is
/// at `T0` plus a few seconds.
pub const T0: i64 = 1_700_000_000_000;

/// Concurrent writer tasks in the concurrency check.
const TASKS: usize = 50;
/// Changes each writer task applies (one creates its conversation).
const CHANGES_PER_TASK: usize = 4;

/// Runs the whole suite on `store`, which must be fresh and empty.
///
/// # Panics
/// At the first broken rule, with a message naming it.
pub async fn run(store: Arc<dyn Store>) {
    let s = &*store;
    fresh(s).await;
    create_and_guards(s).await;
    turns(s).await;
    atomicity(s).await;
    events(s).await;
    slas(s).await;
    agents(s).await;
    routing(s).await;
    service_level(s).await;
    escalations(s).await;
    accounts(s).await;
    concurrency(Arc::clone(&store)).await;
}

/// The value of `r`, or a panic naming `what` and the error.
fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what}: unexpected error: {e} ({e:?})"),
    }
}

/// The error of `r`, or a panic naming `what`.
fn err<T: std::fmt::Debug>(r: Result<T>, what: &str) -> StoreError {
    match r {
        Ok(v) => panic!("conformance: {what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

/// The conversation id `id`, or a panic.
pub(crate) fn cid(id: &str) -> ConversationId {
    match ConversationId::parse(id) {
        Ok(id) => id,
        Err(e) => panic!("conformance: conversation id: {e}"),
    }
}

/// The agent id `id`, or a panic.
fn aid(id: &str) -> AgentId {
    match AgentId::parse(id) {
        Ok(id) => id,
        Err(e) => panic!("conformance: agent id: {e}"),
    }
}

/// The queue name `name`, or a panic.
fn qn(name: &str) -> QueueName {
    match QueueName::parse(name) {
        Ok(name) => name,
        Err(e) => panic!("conformance: queue name: {e}"),
    }
}

fn some<T>(v: Option<T>, what: &str) -> T {
    match v {
        Some(v) => v,
        None => panic!("conformance: {what}: expected a value, got None"),
    }
}

fn turn(role: Role, text: &str, client_turn_id: Option<&str>) -> Turn {
    let mut t = match Turn::new(role, text) {
        Ok(t) => t,
        Err(e) => panic!("conformance: building a turn: {e}"),
    };
    t.client_turn_id = client_turn_id.map(str::to_owned);
    t
}

fn new_turn(seq: usize, t: Turn) -> NewTurn {
    NewTurn {
        seq,
        turn: t,
        decision: serde_json::json!({"escalate": false, "seq": seq}),
        signals: serde_json::json!([{"name": "test", "seq": seq}]),
        response: serde_json::json!({"ok": true, "seq": seq}),
    }
}

fn event(kind: EventKind, reason: &str) -> NewEvent {
    NewEvent {
        kind,
        from: None,
        to: None,
        actor: "conformance".into(),
        reason: reason.into(),
    }
}

fn transition(from: HandoffState, to: HandoffState) -> NewEvent {
    NewEvent {
        kind: EventKind::Transition,
        from: Some(from),
        to: Some(to),
        actor: "policy".into(),
        reason: format!("{} to {}", from.as_str(), to.as_str()),
    }
}

/// A change at `at` that adds a note event to `id` (and nothing else yet).
fn note(id: &str, at: i64, reason: &str) -> Change {
    let mut change = Change::at(at);
    change
        .conversation(&cid(id))
        .events
        .push(event(EventKind::Note, reason));
    change
}

fn update(state: HandoffState, queue: Option<&str>, agent: Option<&str>) -> ConversationUpdate {
    ConversationUpdate {
        state,
        queue: queue.map(qn),
        priority: 1,
        agent_id: agent.map(aid),
        brief: None,
        disposition: None,
        language: None,
        requested_agent: None,
    }
}

/// A part creating `id` with a default customer and no channel.
pub(crate) fn create_part(id: &str) -> ConversationChange {
    ConversationChange::new(
        cid(id),
        Guard::Create {
            customer: Customer::default(),
            channel: None,
        },
    )
}

async fn create(s: &dyn Store, id: &str, at: i64) {
    let mut change = Change::at(at);
    change.conversations.push(create_part(id));
    ok(s.apply(change).await, &format!("creating `{id}`"));
}

/// Moves `id` from `from` to `state` (with a transition event) at `at`.
async fn step(
    s: &dyn Store,
    id: &str,
    from: HandoffState,
    u: ConversationUpdate,
    at: i64,
) -> Applied {
    let mut change = Change::at(at);
    let part = change.conversation(&cid(id));
    part.guard = Guard::State(from);
    part.events.push(transition(from, u.state));
    let what = format!(
        "moving `{id}` from {} to {}",
        from.as_str(),
        u.state.as_str()
    );
    part.update = Some(u);
    ok(s.apply(change).await, &what)
}

/// The stored turn and answer of `client_turn_id` in `id`, if any.
async fn by_client_id(
    s: &dyn Store,
    id: &str,
    client_turn_id: &str,
) -> Option<(Turn, serde_json::Value)> {
    ok(
        s.turn_by_client_id(&cid(id), client_turn_id).await,
        "turn_by_client_id",
    )
}

/// The conversations held by or offered to `agent`.
async fn held_by(s: &dyn Store, agent: &str) -> Vec<ConversationId> {
    ok(
        s.agent_conversations(&aid(agent)).await,
        "agent_conversations",
    )
}

async fn record(s: &dyn Store, id: &str) -> ConversationRecord {
    some(
        ok(s.conversation(&cid(id)).await, &format!("reading `{id}`")),
        &format!("conversation `{id}` after it was written"),
    )
}

fn ours<'a, T: 'a>(
    items: impl IntoIterator<Item = T>,
    id: impl Fn(&T) -> &str + 'a,
    prefix: &str,
) -> Vec<T> {
    items
        .into_iter()
        .filter(|t| id(t).starts_with(prefix))
        .collect()
}

async fn fresh(s: &dyn Store) {
    assert_eq!(
        ok(s.last_event_id().await, "last_event_id of a fresh store"),
        0,
        "conformance: a fresh store has no events (last_event_id 0); run the suite on an empty store"
    );
    assert!(
        !ok(
            s.has_credentials().await,
            "has_credentials of a fresh store"
        ),
        "conformance: a fresh store has no credentials"
    );
    assert!(
        ok(
            s.events_after(0, None, 10).await,
            "events_after of a fresh store"
        )
        .is_empty(),
        "conformance: a fresh store lists no events"
    );
    ok(s.apply(Change::at(T0)).await, "an empty change");
}

async fn create_and_guards(s: &dyn Store) {
    let customer = Customer {
        name: Some("Ana".into()),
        tier: Some("vip".into()),
        ..Customer::default()
    };
    let mut change = Change::at(T0);
    change.conversations.push(ConversationChange::new(
        cid("conf-c1"),
        Guard::Create {
            customer: customer.clone(),
            channel: Some("web".into()),
        },
    ));
    let applied = ok(s.apply(change.clone()).await, "creating conf-c1");
    assert!(
        applied.events.is_empty(),
        "conformance: a bare create writes no event"
    );
    let c = record(s, "conf-c1").await;
    assert_eq!(
        c.state,
        HandoffState::AiActive,
        "conformance: a created conversation is ai_active"
    );
    assert_eq!(
        c.customer, customer,
        "conformance: the customer round-trips"
    );
    assert_eq!(
        c.channel.as_deref(),
        Some("web"),
        "conformance: the channel round-trips"
    );
    assert_eq!(
        c.created_at, T0,
        "conformance: created_at is the change's `at`"
    );
    assert_eq!(
        (
            c.queue.as_ref().map(QueueName::as_str),
            c.queued_at,
            c.agent_id.as_ref().map(AgentId::as_str),
            c.brief.as_ref(),
            c.csat
        ),
        (None, None, None, None, None),
        "conformance: a created conversation has no queue, agent, brief or rating"
    );

    match err(s.apply(change).await, "creating conf-c1 again") {
        StoreError::Conflict(id) => assert_eq!(id, "conf-c1", "conformance: Conflict names the id"),
        e => panic!("conformance: creating an existing conversation must be Conflict, got {e:?}"),
    }
    assert!(
        ok(
            s.conversation(&cid("conf-none")).await,
            "reading a missing conversation"
        )
        .is_none(),
        "conformance: a missing conversation reads as None"
    );

    // A state guard that does not hold: Stale, nothing written.
    let mut change = Change::at(T0 + 1);
    let part = change.conversation(&cid("conf-c1"));
    part.guard = Guard::State(HandoffState::Queued);
    part.update = Some(update(HandoffState::Assigned, Some("conf-q"), Some("x")));
    part.events
        .push(event(EventKind::Note, "must not be written"));
    match err(s.apply(change).await, "a stale state guard") {
        StoreError::Stale {
            conversation,
            expected,
        } => {
            assert_eq!(
                conversation, "conf-c1",
                "conformance: Stale names the conversation"
            );
            assert_eq!(
                expected,
                HandoffState::Queued,
                "conformance: Stale names the expected state"
            );
        }
        e => panic!("conformance: a state guard that does not hold must be Stale, got {e:?}"),
    }
    assert_eq!(
        record(s, "conf-c1").await,
        c,
        "conformance: a stale change writes nothing"
    );
    assert!(
        ok(s.events(&cid("conf-c1")).await, "events").is_empty(),
        "conformance: a stale change writes no event"
    );

    // A state guard on a missing conversation: Stale.
    let mut change = note("conf-none", T0 + 1, "x");
    change.conversation(&cid("conf-none")).guard = Guard::State(HandoffState::AiActive);
    assert!(
        matches!(
            err(
                s.apply(change).await,
                "a state guard on a missing conversation"
            ),
            StoreError::Stale { .. }
        ),
        "conformance: a state guard on a missing conversation must be Stale"
    );
    // An existence guard on a missing conversation: NotFound.
    let change = note("conf-none", T0 + 1, "x");
    match err(
        s.apply(change).await,
        "an existence guard on a missing conversation",
    ) {
        StoreError::NotFound(id) => {
            assert_eq!(id, "conf-none", "conformance: NotFound names the id")
        }
        e => panic!(
            "conformance: Guard::Exists on a missing conversation must be NotFound, got {e:?}"
        ),
    }
    assert!(
        ok(s.events(&cid("conf-none")).await, "events").is_empty(),
        "conformance: a refused change writes no event"
    );

    // Create, a turn, its events and the update, in one change.
    let mut change = Change::at(T0 + 2);
    let mut part = create_part("conf-c2");
    part.turn = Some(new_turn(
        0,
        turn(Role::Customer, "I want a person", Some("t-1")),
    ));
    part.events.push(event(EventKind::Turn, "turn 0"));
    part.events.push(transition(
        HandoffState::AiActive,
        HandoffState::HandoffRequested,
    ));
    let mut u = update(HandoffState::HandoffRequested, Some("conf-q"), None);
    u.language = Some("de".into());
    u.requested_agent = Some(aid("conf-ag1"));
    u.priority = 7;
    part.update = Some(u);
    change.conversations.push(part);
    let applied = ok(
        s.apply(change).await,
        "create + turn + events + update in one change",
    );
    assert_eq!(
        applied.events.len(),
        2,
        "conformance: apply returns each stored event"
    );
    assert!(
        applied.events[0].id > 0 && applied.events[1].id > applied.events[0].id,
        "conformance: event ids are positive and increase in the order written: {:?}",
        applied.events
    );
    assert_eq!(applied.events[0].kind, EventKind::Turn);
    assert_eq!(applied.events[1].kind, EventKind::Transition);
    assert_eq!(applied.events[1].from_state, Some(HandoffState::AiActive));
    assert_eq!(
        applied.events[1].to_state,
        Some(HandoffState::HandoffRequested)
    );
    assert!(
        applied
            .events
            .iter()
            .all(|e| e.at == T0 + 2 && e.conversation_id == "conf-c2"),
        "conformance: events carry the change's `at` and their conversation: {:?}",
        applied.events
    );
    assert_eq!(
        ok(s.events(&cid("conf-c2")).await, "events of conf-c2"),
        applied.events,
        "conformance: the stored events are those apply returned"
    );
    let c2 = record(s, "conf-c2").await;
    assert_eq!(
        c2.state,
        HandoffState::HandoffRequested,
        "conformance: the update is written"
    );
    assert_eq!(c2.queue.as_ref().map(QueueName::as_str), Some("conf-q"));
    assert_eq!(c2.priority, 7);
    assert_eq!(c2.language.as_deref(), Some("de"));
    assert_eq!(
        c2.requested_agent.as_ref().map(AgentId::as_str),
        Some("conf-ag1")
    );
    assert_eq!(c2.created_at, T0 + 2);
    let turns = ok(s.turns(&cid("conf-c2")).await, "turns of conf-c2");
    assert_eq!(
        turns.len(),
        1,
        "conformance: the turn is written with its change"
    );
    assert_eq!(turns[0].seq, 0);
    assert_eq!(
        turns[0].created_at,
        T0 + 2,
        "conformance: a turn's created_at is the change's `at`"
    );
    assert_eq!(turns[0].turn.text, "I want a person");
    assert_eq!(
        turns[0].decision,
        Some(serde_json::json!({"escalate": false, "seq": 0})),
        "conformance: the decision round-trips"
    );
    assert_eq!(
        turns[0].signals,
        Some(serde_json::json!([{"name": "test", "seq": 0}])),
        "conformance: the signals round-trip"
    );

    // An update whose optional fields are None keeps the stored ones.
    step(
        s,
        "conf-c2",
        HandoffState::HandoffRequested,
        update(HandoffState::ReturnedToAi, Some("conf-q"), None),
        T0 + 3,
    )
    .await;
    let c2 = record(s, "conf-c2").await;
    assert_eq!(c2.state, HandoffState::ReturnedToAi);
    assert_eq!(
        (
            c2.language.as_deref(),
            c2.requested_agent.as_ref().map(AgentId::as_str)
        ),
        (Some("de"), Some("conf-ag1")),
        "conformance: None in an update keeps language and requested_agent"
    );
}

async fn turns(s: &dyn Store) {
    let (stored, answer) = some(
        by_client_id(s, "conf-c2", "t-1").await,
        "the turn with client_turn_id t-1",
    );
    assert_eq!(
        stored,
        turn(Role::Customer, "I want a person", Some("t-1")),
        "conformance: turn_by_client_id returns the stored turn"
    );
    assert_eq!(
        answer,
        serde_json::json!({"ok": true, "seq": 0}),
        "conformance: turn_by_client_id returns the stored answer"
    );
    assert!(
        by_client_id(s, "conf-c2", "t-9").await.is_none(),
        "conformance: an unknown client_turn_id finds nothing"
    );
    assert!(
        by_client_id(s, "conf-c1", "t-1").await.is_none(),
        "conformance: client_turn_id is per conversation"
    );

    let before = ok(s.last_event_id().await, "last_event_id");
    // The same seq again: refused, not Unavailable, nothing of the change written.
    let mut change = Change::at(T0 + 4);
    let part = change.conversation(&cid("conf-c2"));
    part.turn = Some(new_turn(0, turn(Role::Customer, "again", Some("t-2"))));
    part.events
        .push(event(EventKind::Turn, "must not be written"));
    part.update = Some(update(HandoffState::AiActive, None, None));
    let e = err(s.apply(change).await, "a turn with a seq already stored");
    assert!(
        matches!(e, StoreError::Duplicate { ref conversation, seq: 0 } if conversation == "conf-c2"),
        "conformance: a stored seq must be refused as Duplicate, got {e:?}"
    );
    // The same client_turn_id under a new seq: refused too.
    let mut change = Change::at(T0 + 4);
    change.conversation(&cid("conf-c2")).turn =
        Some(new_turn(1, turn(Role::Customer, "retry", Some("t-1"))));
    let e = err(
        s.apply(change).await,
        "a turn with a client_turn_id already stored",
    );
    assert!(
        matches!(e, StoreError::Duplicate { .. }),
        "conformance: a stored client_turn_id must be refused as Duplicate, got {e:?}"
    );
    assert_eq!(
        ok(s.last_event_id().await, "last_event_id"),
        before,
        "conformance: a refused turn writes no event"
    );
    assert_eq!(
        record(s, "conf-c2").await.state,
        HandoffState::ReturnedToAi,
        "conformance: a refused turn writes no update"
    );

    // The next seq is accepted; turns come back in order.
    let mut change = Change::at(T0 + 5);
    change.conversation(&cid("conf-c2")).turn = Some(new_turn(1, turn(Role::Ai, "Sure.", None)));
    ok(s.apply(change).await, "the next turn");
    let mut change = Change::at(T0 + 6);
    change.conversation(&cid("conf-c2")).turn =
        Some(new_turn(2, turn(Role::Customer, "thanks", None)));
    ok(s.apply(change).await, "a turn without client_turn_id");
    let seqs: Vec<i64> = ok(s.turns(&cid("conf-c2")).await, "turns")
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(seqs, vec![0, 1, 2], "conformance: turns come oldest first");
}

async fn atomicity(s: &dyn Store) {
    create(s, "conf-a1", T0).await;
    create(s, "conf-a2", T0).await;
    let before = ok(s.last_event_id().await, "last_event_id");

    // The second part's guard fails: the first part (turn, events, update, SLA), a third
    // part creating a conversation and the agents' changes are all left unwritten.
    let mut change = Change::at(T0 + 10);
    let part = change.conversation(&cid("conf-a1"));
    part.guard = Guard::State(HandoffState::AiActive);
    part.turn = Some(new_turn(0, turn(Role::Customer, "hello", Some("a-1"))));
    part.events
        .push(transition(HandoffState::AiActive, HandoffState::Queued));
    part.update = Some(update(HandoffState::Queued, Some("conf-qa"), None));
    part.slas.push(SlaChange::Start(timer(
        "conf-a1",
        SlaKind::FirstResponse,
        100,
        200,
    )));
    part.csat = Some(3);
    change.conversation(&cid("conf-a2")).guard = Guard::State(HandoffState::Assigned);
    change.conversations.push(create_part("conf-a3"));
    change
        .agents
        .push(AgentChange::Upsert(agent("conf-ghost", 1)));
    let e = err(s.apply(change).await, "a change with one stale part");
    assert!(
        matches!(e, StoreError::Stale { ref conversation, expected: HandoffState::Assigned } if conversation == "conf-a2"),
        "conformance: the failing part's guard decides the error, got {e:?}"
    );
    let a1 = record(s, "conf-a1").await;
    assert_eq!(
        (a1.state, a1.queue.as_ref().map(QueueName::as_str), a1.csat),
        (HandoffState::AiActive, None, None),
        "conformance: a change is all or nothing: the other part's update was written"
    );
    assert!(
        ok(s.turns(&cid("conf-a1")).await, "turns").is_empty(),
        "conformance: a change is all or nothing: the other part's turn was written"
    );
    assert!(
        by_client_id(s, "conf-a1", "a-1").await.is_none(),
        "conformance: a change is all or nothing: the turn's answer was written"
    );
    assert!(
        ok(s.slas(&cid("conf-a1")).await, "slas").is_empty(),
        "conformance: a change is all or nothing: the SLA timer was written"
    );
    assert_eq!(
        ok(s.last_event_id().await, "last_event_id"),
        before,
        "conformance: a change is all or nothing: events were written"
    );
    assert!(
        ok(s.conversation(&cid("conf-a3")).await, "conversation").is_none(),
        "conformance: a change is all or nothing: the created conversation exists"
    );
    assert!(
        ok(s.agent(&aid("conf-ghost")).await, "agent").is_none(),
        "conformance: a change is all or nothing: the agent was written"
    );

    // A Conflict in a later part undoes the earlier parts too.
    let mut change = note("conf-a1", T0 + 11, "must not be written");
    change.conversations.push(create_part("conf-a2"));
    assert!(
        matches!(
            err(s.apply(change).await, "a change with a conflicting create"),
            StoreError::Conflict(_)
        ),
        "conformance: creating an existing conversation in a later part is Conflict"
    );
    assert!(
        ok(s.events(&cid("conf-a1")).await, "events").is_empty(),
        "conformance: a Conflict leaves the earlier parts unwritten"
    );

    // One change may move two conversations at once.
    let mut change = Change::at(T0 + 12);
    for id in ["conf-a1", "conf-a2"] {
        let part = change.conversation(&cid(id));
        part.guard = Guard::State(HandoffState::AiActive);
        part.events.push(transition(
            HandoffState::AiActive,
            HandoffState::ReturnedToAi,
        ));
        part.update = Some(update(HandoffState::ReturnedToAi, None, None));
    }
    let applied = ok(s.apply(change).await, "a change of two conversations");
    assert_eq!(
        applied
            .events
            .iter()
            .map(|e| e.conversation_id.as_str())
            .collect::<Vec<_>>(),
        vec!["conf-a1", "conf-a2"],
        "conformance: events come back in the order of the parts"
    );
    for id in ["conf-a1", "conf-a2"] {
        assert_eq!(record(s, id).await.state, HandoffState::ReturnedToAi);
    }
}

async fn events(s: &dyn Store) {
    create(s, "conf-e1", T0).await;
    create(s, "conf-e2", T0).await;
    let before = ok(s.last_event_id().await, "last_event_id");
    let mut change = Change::at(T0 + 20);
    change.conversation(&cid("conf-e1")).events.extend([
        event(EventKind::Note, "first"),
        event(EventKind::Routing, "second"),
    ]);
    change
        .conversation(&cid("conf-e2"))
        .events
        .push(event(EventKind::WaitUpdate, "third"));
    let applied = ok(s.apply(change).await, "events of two conversations");
    let ids: Vec<i64> = applied.events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids[0] > before && ids.windows(2).all(|w| w[0] < w[1]),
        "conformance: event ids increase in the order written, above the previous newest \
         ({before}): {ids:?}"
    );
    assert_eq!(
        ok(s.last_event_id().await, "last_event_id"),
        ids[2],
        "conformance: last_event_id is the newest event's id"
    );
    let after = ok(s.events_after(before, None, 100).await, "events_after");
    assert_eq!(
        after, applied.events,
        "conformance: events_after lists every later event, in order"
    );
    let limited = ok(
        s.events_after(before, None, 2).await,
        "events_after with a limit",
    );
    assert_eq!(
        limited,
        applied.events[..2].to_vec(),
        "conformance: events_after honours its limit"
    );
    let e1 = ok(
        s.events_after(before, Some(&cid("conf-e1")), 100).await,
        "events_after of conf-e1",
    );
    assert_eq!(
        e1,
        applied.events[..2].to_vec(),
        "conformance: events_after of one conversation lists only its events"
    );
    let e2 = ok(
        s.events_after(ids[0], Some(&cid("conf-e2")), 100).await,
        "events_after of conf-e2",
    );
    assert_eq!(e2, applied.events[2..].to_vec());
    assert!(
        ok(
            s.events_after(ids[2], None, 100).await,
            "events_after the newest"
        )
        .is_empty(),
        "conformance: nothing comes after the newest event"
    );
    let all = ok(s.events_after(0, None, 100_000).await, "every event");
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "conformance: events_after lists events by increasing id"
    );
    assert_eq!(
        ok(s.events(&cid("conf-e1")).await, "events of conf-e1"),
        applied.events[..2].to_vec(),
        "conformance: events of a conversation, oldest first, as written"
    );
    let first = &applied.events[0];
    assert_eq!(
        (
            first.kind,
            first.actor.as_str(),
            first.reason.as_str(),
            first.at,
            first.from_state
        ),
        (EventKind::Note, "conformance", "first", T0 + 20, None),
        "conformance: an event's fields round-trip"
    );
}

fn timer(id: &str, kind: SlaKind, warn_in: i64, due_in: i64) -> SlaTimer {
    SlaTimer {
        conversation_id: cid(id),
        kind,
        queue: qn("conf-q"),
        started_at: T0,
        warn_at: T0 + warn_in,
        due_at: T0 + due_in,
        warned: false,
        breached: false,
        stopped_at: None,
    }
}

async fn sla(s: &dyn Store, id: &str, at: i64, changes: Vec<SlaChange>) -> Applied {
    let mut change = Change::at(at);
    change.conversation(&cid(id)).slas = changes;
    ok(s.apply(change).await, &format!("SLA changes of `{id}`"))
}

/// Starts `id`'s `kind` timer (see [`timer`]) in a change at `at`.
async fn start_sla(s: &dyn Store, id: &str, at: i64, kind: SlaKind, warn_in: i64, due_in: i64) {
    sla(
        s,
        id,
        at,
        vec![SlaChange::Start(timer(id, kind, warn_in, due_in))],
    )
    .await;
}

/// The suite's (`conf-s…`) timers of a store-wide SLA list, in the store's order.
fn our_timers(timers: Result<Vec<SlaTimer>>, what: &str) -> Vec<SlaTimer> {
    ours(ok(timers, what), |t| t.conversation_id.as_str(), "conf-s")
}

fn conversation_ids(timers: Vec<SlaTimer>) -> Vec<ConversationId> {
    timers.into_iter().map(|t| t.conversation_id).collect()
}

fn fire(kind: SlaKind, breach: bool) -> SlaChange {
    SlaChange::Fire {
        kind,
        breach,
        event: NewEvent {
            kind: if breach {
                EventKind::SlaBreach
            } else {
                EventKind::SlaWarning
            },
            from: None,
            to: None,
            actor: "sla".into(),
            reason: format!(
                "{} {}",
                kind.as_str(),
                if breach { "breached" } else { "at risk" }
            ),
        },
    }
}

async fn one_sla(s: &dyn Store, id: &str, kind: SlaKind) -> SlaTimer {
    let timers = ok(s.slas(&cid(id)).await, "slas");
    some(
        timers.into_iter().find(|t| t.kind == kind),
        &format!("the {} timer of `{id}`", kind.as_str()),
    )
}

async fn slas(s: &dyn Store) {
    use SlaKind::{FirstResponse, NextResponse};
    for id in ["conf-s1", "conf-s2", "conf-s3", "conf-s4"] {
        create(s, id, T0).await;
    }
    let first = timer("conf-s1", FirstResponse, 80, 100);
    sla(s, "conf-s1", T0, vec![SlaChange::Start(first.clone())]).await;
    assert_eq!(
        ok(s.slas(&cid("conf-s1")).await, "slas"),
        vec![first.clone()],
        "conformance: a started timer reads back as given"
    );
    // Starting a running timer again changes nothing.
    start_sla(s, "conf-s1", T0 + 5, FirstResponse, 500, 900).await;
    assert_eq!(
        one_sla(s, "conf-s1", FirstResponse).await,
        first,
        "conformance: starting a running timer does not reset it"
    );

    // The warning fires once.
    let applied = sla(s, "conf-s1", T0 + 80, vec![fire(FirstResponse, false)]).await;
    assert_eq!(
        applied.events.len(),
        1,
        "conformance: a firing warning writes its event"
    );
    assert_eq!(applied.events[0].kind, EventKind::SlaWarning);
    assert_eq!(applied.events[0].at, T0 + 80);
    let t = one_sla(s, "conf-s1", FirstResponse).await;
    assert!(
        t.warned && !t.breached,
        "conformance: a fired warning is recorded: {t:?}"
    );
    let applied = sla(s, "conf-s1", T0 + 81, vec![fire(FirstResponse, false)]).await;
    assert!(
        applied.events.is_empty(),
        "conformance: a warning fires only once"
    );
    // Then the breach, once.
    let applied = sla(s, "conf-s1", T0 + 100, vec![fire(FirstResponse, true)]).await;
    assert_eq!(
        applied.events.len(),
        1,
        "conformance: a firing breach writes its event"
    );
    assert_eq!(applied.events[0].kind, EventKind::SlaBreach);
    let applied = sla(s, "conf-s1", T0 + 101, vec![fire(FirstResponse, true)]).await;
    assert!(
        applied.events.is_empty(),
        "conformance: a breach fires only once"
    );
    let kinds: Vec<EventKind> = ok(s.events(&cid("conf-s1")).await, "events")
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::SlaWarning, EventKind::SlaBreach]);
    // Starting a breached but running timer does not reset it either.
    start_sla(s, "conf-s1", T0 + 102, FirstResponse, 500, 900).await;
    let t = one_sla(s, "conf-s1", FirstResponse).await;
    assert!(
        t.breached && t.warn_at == T0 + 80,
        "conformance: a breached timer not yet stopped is still running: {t:?}"
    );
    let breaches = our_timers(s.open_sla_breaches().await, "open_sla_breaches");
    assert_eq!(
        breaches.len(),
        1,
        "conformance: a breached running timer is an open breach"
    );
    assert_eq!(breaches[0].conversation_id, "conf-s1");

    // A breach implies the warning.
    start_sla(s, "conf-s2", T0, FirstResponse, 80, 100).await;
    let applied = sla(s, "conf-s2", T0 + 150, vec![fire(FirstResponse, true)]).await;
    assert_eq!(applied.events.len(), 1);
    let t = one_sla(s, "conf-s2", FirstResponse).await;
    assert!(
        t.warned && t.breached,
        "conformance: a breach marks the warning fired too: {t:?}"
    );
    let applied = sla(s, "conf-s2", T0 + 151, vec![fire(FirstResponse, false)]).await;
    assert!(
        applied.events.is_empty(),
        "conformance: no warning fires after the breach"
    );

    // Stop by kind; a stopped timer fires nothing; starting it again resets it.
    start_sla(s, "conf-s1", T0 + 200, NextResponse, 300, 400).await;
    sla(
        s,
        "conf-s1",
        T0 + 210,
        vec![SlaChange::Stop(Some(NextResponse))],
    )
    .await;
    let next = one_sla(s, "conf-s1", NextResponse).await;
    assert_eq!(
        next.stopped_at,
        Some(T0 + 210),
        "conformance: Stop sets stopped_at to the change's `at`"
    );
    assert!(
        one_sla(s, "conf-s1", FirstResponse)
            .await
            .stopped_at
            .is_none(),
        "conformance: Stop of one kind leaves the other running"
    );
    let applied = sla(
        s,
        "conf-s1",
        T0 + 500,
        vec![fire(NextResponse, false), fire(NextResponse, true)],
    )
    .await;
    assert!(
        applied.events.is_empty(),
        "conformance: a stopped timer fires nothing"
    );
    let mut restarted = timer("conf-s1", NextResponse, 600, 700);
    restarted.started_at = T0 + 550;
    sla(
        s,
        "conf-s1",
        T0 + 550,
        vec![SlaChange::Start(restarted.clone())],
    )
    .await;
    assert_eq!(
        one_sla(s, "conf-s1", NextResponse).await,
        restarted,
        "conformance: starting a stopped timer resets it"
    );
    assert_eq!(
        ok(s.slas(&cid("conf-s1")).await, "slas")
            .iter()
            .map(|t| t.kind)
            .collect::<Vec<_>>(),
        vec![FirstResponse, NextResponse],
        "conformance: slas lists a conversation's timers by kind"
    );

    // running_slas: not stopped and not breached, by the next instant due.
    start_sla(s, "conf-s3", T0, FirstResponse, 1_000, 5_000).await;
    start_sla(s, "conf-s4", T0, FirstResponse, 800, 3_000).await;
    let running: Vec<(ConversationId, SlaKind)> =
        our_timers(s.running_slas().await, "running_slas")
            .into_iter()
            .map(|t| (t.conversation_id, t.kind))
            .collect();
    assert_eq!(
        running,
        vec![
            (cid("conf-s1"), NextResponse),
            (cid("conf-s4"), FirstResponse),
            (cid("conf-s3"), FirstResponse),
        ],
        "conformance: running_slas lists unbreached running timers by their next due instant"
    );
    // Once conf-s4 has warned, its next instant is its breach (T0+3000): after conf-s3's warning.
    sla(s, "conf-s4", T0 + 800, vec![fire(FirstResponse, false)]).await;
    let running = conversation_ids(our_timers(s.running_slas().await, "running_slas"));
    assert_eq!(
        running,
        vec!["conf-s1", "conf-s3", "conf-s4"],
        "conformance: a warned timer is due next at its breach"
    );

    // Stop(None) stops every kind; the breach is no longer open.
    sla(s, "conf-s1", T0 + 900, vec![SlaChange::Stop(None)]).await;
    assert!(
        ok(s.slas(&cid("conf-s1")).await, "slas")
            .iter()
            .all(|t| t.stopped_at == Some(T0 + 900)),
        "conformance: Stop(None) stops every timer of the conversation"
    );
    let breaches = conversation_ids(our_timers(s.open_sla_breaches().await, "open_sla_breaches"));
    assert_eq!(
        breaches,
        vec!["conf-s2"],
        "conformance: a stopped breach is no longer open"
    );
}

fn agent(id: &str, capacity: u32) -> Agent {
    Agent {
        id: aid(id),
        name: format!("Agent {id}"),
        skills: vec![Skill::new("billing", 3), Skill::from("vip")],
        languages: vec!["en".into(), "de".into()],
        capacity,
        status: AgentStatus::Online,
    }
}

async fn agents(s: &dyn Store) {
    let a1 = agent("conf-ag1", 2);
    let a2 = agent("conf-ag2", 1);
    let mut change = Change::at(T0);
    change.agents = vec![
        AgentChange::Upsert(a2.clone()),
        AgentChange::Upsert(a1.clone()),
    ];
    ok(s.apply(change).await, "upserting agents");
    let listed = ours(ok(s.agents().await, "agents"), |a| a.id.as_str(), "conf-ag");
    assert_eq!(
        listed,
        vec![a1.clone(), a2.clone()],
        "conformance: agents round-trip, by id"
    );
    assert_eq!(
        ok(s.agent(&aid("conf-ag1")).await, "agent"),
        Some(a1.clone())
    );
    assert!(ok(s.agent(&aid("conf-nobody")).await, "agent").is_none());

    let mut replaced = a1.clone();
    replaced.capacity = 3;
    replaced.languages = vec![];
    let mut change = Change::at(T0 + 1);
    change.agents.push(AgentChange::Upsert(replaced.clone()));
    change.agents.push(AgentChange::Status {
        id: aid("conf-ag2"),
        status: AgentStatus::Away,
    });
    change.agents.push(AgentChange::Status {
        id: aid("conf-nobody"),
        status: AgentStatus::Away,
    });
    ok(
        s.apply(change).await,
        "replacing an agent and setting presences (one unknown)",
    );
    assert_eq!(
        ok(s.agent(&aid("conf-ag1")).await, "agent"),
        Some(replaced),
        "conformance: Upsert replaces"
    );
    assert_eq!(
        ok(s.agent(&aid("conf-ag2")).await, "agent").map(|a| a.status),
        Some(AgentStatus::Away),
        "conformance: Status sets the presence"
    );
    assert!(
        ok(s.agent(&aid("conf-nobody")).await, "agent").is_none(),
        "conformance: Status of an unknown agent creates nothing"
    );
    let mut change = Change::at(T0 + 2);
    change.agents.push(AgentChange::Status {
        id: aid("conf-ag2"),
        status: AgentStatus::Online,
    });
    ok(s.apply(change).await, "setting a presence");
}

async fn routing(s: &dyn Store) {
    use HandoffState::{AiActive, Assigned, Offered, Queued};
    for id in ["conf-r1", "conf-r2", "conf-r3"] {
        create(s, id, T0).await;
    }
    let queued = |priority| {
        let mut u = update(Queued, Some("conf-rq"), None);
        u.priority = priority;
        u
    };
    step(s, "conf-r1", AiActive, queued(5), T0 + 1_000).await;
    step(s, "conf-r2", AiActive, queued(9), T0 + 2_000).await;
    step(s, "conf-r3", AiActive, queued(1), T0 + 3_000).await;
    let r1 = record(s, "conf-r1").await;
    assert_eq!(
        r1.queued_at,
        Some(T0 + 1_000),
        "conformance: queued_at is set on joining the queue"
    );

    let mut offer = update(Offered, Some("conf-rq"), Some("conf-ag1"));
    offer.priority = 5;
    step(s, "conf-r1", Queued, offer.clone(), T0 + 4_000).await;
    let r1 = record(s, "conf-r1").await;
    assert_eq!(
        r1.offered_at,
        Some(T0 + 4_000),
        "conformance: offered_at is set on an offer"
    );
    assert_eq!(r1.agent_id.as_ref().map(AgentId::as_str), Some("conf-ag1"));
    let mut assign = offer.clone();
    assign.state = Assigned;
    step(s, "conf-r1", Offered, assign.clone(), T0 + 5_000).await;
    let r1 = record(s, "conf-r1").await;
    assert_eq!(
        r1.assigned_at,
        Some(T0 + 5_000),
        "conformance: assigned_at is set on assignment"
    );
    assert_eq!(
        r1.queued_at,
        Some(T0 + 1_000),
        "conformance: routing keeps queued_at"
    );

    let mut offer3 = update(Offered, Some("conf-rq"), Some("conf-ag2"));
    offer3.priority = 1;
    step(s, "conf-r3", Queued, offer3, T0 + 6_000).await;

    let mut waiting: Vec<ConversationId> =
        ok(s.waiting_records(&qn("conf-rq")).await, "waiting_records")
            .into_iter()
            .map(|r| r.id)
            .collect();
    waiting.sort();
    assert_eq!(
        waiting,
        vec!["conf-r2", "conf-r3"],
        "conformance: waiting_records lists the queued and offered conversations of the queue"
    );
    let held: Vec<(ConversationId, HandoffState)> = ours(
        ok(s.routing_records().await, "routing_records"),
        |r| r.id.as_str(),
        "conf-r",
    )
    .into_iter()
    .map(|r| (r.id, r.state))
    .collect();
    assert_eq!(
        held,
        vec![
            (cid("conf-r1"), Assigned),
            (cid("conf-r2"), Queued),
            (cid("conf-r3"), Offered),
        ],
        "conformance: routing_records lists queued, offered and assigned conversations by queued_at"
    );
    assert_eq!(
        held_by(s, "conf-ag1").await,
        vec!["conf-r1"],
        "conformance: agent_conversations lists what the agent holds"
    );
    assert_eq!(
        held_by(s, "conf-ag2").await,
        vec!["conf-r3"],
        "conformance: agent_conversations lists what is offered to the agent"
    );
    let loads = ok(s.agent_loads().await, "agent_loads");
    assert_eq!(
        loads.get("conf-ag1"),
        Some(&1),
        "conformance: agent_loads counts assignments"
    );
    assert_eq!(
        loads.get("conf-ag2"),
        None,
        "conformance: an offer is no load"
    );

    // A transfer back to the queue keeps queued_at and frees the agent.
    step(s, "conf-r1", Assigned, queued(5), T0 + 7_000).await;
    let r1 = record(s, "conf-r1").await;
    assert_eq!(
        (
            r1.state,
            r1.queued_at,
            r1.agent_id.as_ref().map(AgentId::as_str)
        ),
        (Queued, Some(T0 + 1_000), None),
        "conformance: a transfer keeps queued_at"
    );
    assert!(held_by(s, "conf-ag1").await.is_empty());
    assert_eq!(
        ok(s.agent_loads().await, "agent_loads").get("conf-ag1"),
        None
    );
}

async fn service_level(s: &dyn Store) {
    use HandoffState::{AiActive, Assigned, Queued, Resolved};
    let q = &qn("conf-slq");
    // (id, assigned after queueing, resolved after assignment), all queued at T0.
    for (id, wait, handle) in [("conf-l1", 10_000, 60_000), ("conf-l2", 60_000, 120_000)] {
        create(s, id, T0).await;
        step(s, id, AiActive, update(Queued, Some("conf-slq"), None), T0).await;
        step(
            s,
            id,
            Queued,
            update(Assigned, Some("conf-slq"), Some("conf-ag1")),
            T0 + wait,
        )
        .await;
        let mut resolved = update(Resolved, Some("conf-slq"), Some("conf-ag1"));
        resolved.disposition = Some("refund".into());
        step(s, id, Assigned, resolved, T0 + wait + handle).await;
    }
    assert_eq!(
        ok(s.answered_since(q, T0, 20_000).await, "answered_since"),
        (2, 1),
        "conformance: answered_since counts assignments since `since`, and those within the SLA"
    );
    assert_eq!(
        ok(
            s.answered_since(q, T0 + 30_000, 20_000).await,
            "answered_since"
        ),
        (1, 0),
        "conformance: answered_since ignores assignments before `since`"
    );
    let (mean, n) = ok(s.handle_time(q).await, "handle_time");
    assert_eq!(
        n, 2,
        "conformance: handle_time counts the resolved conversations"
    );
    assert!(
        mean.is_some_and(|m| (m - 90.0).abs() < 1e-9),
        "conformance: handle_time is the mean of assignment to resolution in seconds (90), got {mean:?}"
    );
    assert_eq!(
        ok(s.handle_time(&qn("conf-empty")).await, "handle_time"),
        (None, 0),
        "conformance: handle_time of a queue without resolutions"
    );
    let l1 = record(s, "conf-l1").await;
    assert_eq!(
        l1.disposition.as_deref(),
        Some("refund"),
        "conformance: the disposition is stored"
    );
}

fn brief(id: &str) -> Brief {
    let value = serde_json::json!({
        "schema_version": "1.0",
        "conversation_id": id,
        "handoff_turn": 0,
        "summary": ["I want a refund"],
        "intent": "refund",
        "reasons": [],
        "score": 0.8,
        "sentiment": {"at_handoff": -0.5, "trajectory": [-0.5], "trend": "steady"},
        "entities": [],
        "attempted_solutions": [],
        "customer": {},
        "recommended_next_step": "refund it",
        "warm_introduction": "Hi, I see you want a refund.",
        "recent_turns": [],
        "transcript": []
    });
    match serde_json::from_value(value) {
        Ok(b) => b,
        Err(e) => panic!("conformance: building a brief: {e}"),
    }
}

async fn escalations(s: &dyn Store) {
    use HandoffState::{AiActive, HandoffRequested};
    for (i, id) in ["conf-b1", "conf-b2"].into_iter().enumerate() {
        create(s, id, T0).await;
        let mut u = update(HandoffRequested, Some("conf-bq"), None);
        u.brief = Some(brief(id));
        step(
            s,
            id,
            AiActive,
            u,
            T0 + 100_000 + i64::try_from(i).unwrap_or(0),
        )
        .await;
    }
    let recent = ours(
        ok(s.recent_escalations(1_000).await, "recent_escalations"),
        |r| r.id.as_str(),
        "conf-b",
    );
    assert_eq!(
        recent.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["conf-b2", "conf-b1"],
        "conformance: recent_escalations lists conversations with a brief, newest first"
    );
    assert_eq!(
        recent[1].brief,
        Some(brief("conf-b1")),
        "conformance: the brief round-trips"
    );
    assert_eq!(
        ok(s.recent_escalations(1).await, "recent_escalations").len(),
        1,
        "conformance: recent_escalations honours its limit"
    );
    // An update without a brief keeps it.
    step(
        s,
        "conf-b1",
        HandoffRequested,
        update(HandoffState::Queued, Some("conf-bq"), None),
        T0 + 100_010,
    )
    .await;
    assert_eq!(
        record(s, "conf-b1").await.brief,
        Some(brief("conf-b1")),
        "conformance: None keeps the brief"
    );
}

async fn accounts(s: &dyn Store) {
    ok(
        s.upsert_user("conf-u1", "$argon2id$one", AccountRole::Agent)
            .await,
        "upsert_user",
    );
    assert!(
        ok(s.has_credentials().await, "has_credentials"),
        "conformance: an account is a credential"
    );
    let u = some(ok(s.user("conf-u1").await, "user"), "the account conf-u1");
    assert_eq!(
        (u.id.as_str(), u.password_hash.as_str(), u.role),
        ("conf-u1", "$argon2id$one", AccountRole::Agent),
        "conformance: an account round-trips"
    );
    ok(
        s.upsert_user("conf-u1", "$argon2id$two", AccountRole::Admin)
            .await,
        "upsert_user again",
    );
    let u = some(ok(s.user("conf-u1").await, "user"), "the account conf-u1");
    assert_eq!(
        (u.password_hash.as_str(), u.role),
        ("$argon2id$two", AccountRole::Admin),
        "conformance: upsert_user replaces the hash and role"
    );
    assert!(ok(s.user("conf-nobody").await, "user").is_none());

    ok(
        s.create_session("conf-h1", "conf-u1", T0 + 60_000).await,
        "create_session",
    );
    ok(
        s.create_session("conf-h2", "conf-u1", T0 - 1).await,
        "create_session (expired)",
    );
    assert_eq!(
        ok(s.session_user("conf-h1", T0).await, "session_user").map(|u| u.id),
        Some("conf-u1".to_owned()),
        "conformance: a live session names its account"
    );
    assert!(
        ok(s.session_user("conf-h1", T0 + 60_000).await, "session_user").is_none(),
        "conformance: a session is expired at its expires_at"
    );
    assert!(
        ok(s.session_user("conf-h2", T0).await, "session_user").is_none(),
        "conformance: an expired session names nobody"
    );
    assert!(ok(s.session_user("conf-h9", T0).await, "session_user").is_none());
    ok(s.delete_session("conf-h1").await, "delete_session");
    assert!(
        ok(s.session_user("conf-h1", T0).await, "session_user").is_none(),
        "conformance: a deleted session names nobody"
    );

    let scopes = vec!["bot".to_owned(), "agent".to_owned()];
    ok(
        s.create_api_key("conf-k1", "conf-kh1", "the bot", &scopes)
            .await,
        "create_api_key",
    );
    assert_eq!(
        ok(s.api_key_scopes("conf-kh1").await, "api_key_scopes"),
        Some(scopes),
        "conformance: an API key's scopes round-trip"
    );
    assert!(ok(s.api_key_scopes("conf-kh9").await, "api_key_scopes").is_none());
    let listed = ok(s.api_keys().await, "api_keys");
    let k1 = some(
        listed.iter().find(|k| k.id == "conf-k1"),
        "conf-k1 in api_keys",
    );
    assert_eq!(
        (k1.name.as_str(), k1.revoked_at),
        ("the bot", None),
        "conformance: a key is listed with its name, unrevoked"
    );
    ok(s.revoke_api_key("conf-k1", T0 + 5).await, "revoke_api_key");
    ok(
        s.revoke_api_key("conf-k1", T0 + 9).await,
        "revoke_api_key again",
    );
    ok(
        s.revoke_api_key("conf-k9", T0 + 9).await,
        "revoke an unknown key",
    );
    assert!(
        ok(s.api_key_scopes("conf-kh1").await, "api_key_scopes").is_none(),
        "conformance: a revoked key opens nothing"
    );
    let revoked = ok(s.api_keys().await, "api_keys");
    assert_eq!(
        revoked
            .iter()
            .find(|k| k.id == "conf-k1")
            .and_then(|k| k.revoked_at),
        Some(T0 + 5),
        "conformance: a key stays revoked from its first revocation"
    );

    // A password change ends the account's sessions; removing the account ends it all.
    ok(
        s.create_session("conf-h3", "conf-u1", T0 + 60_000).await,
        "create_session",
    );
    ok(
        s.upsert_user("conf-u1", "$argon2id$three", AccountRole::Admin)
            .await,
        "upsert_user (a new password)",
    );
    assert!(
        ok(s.session_user("conf-h3", T0).await, "session_user").is_none(),
        "conformance: a changed password ends the account's sessions"
    );
    ok(
        s.upsert_user("conf-u2", "$argon2id$u2", AccountRole::Agent)
            .await,
        "upsert_user conf-u2",
    );
    ok(
        s.create_session("conf-h4", "conf-u2", T0 + 60_000).await,
        "create_session",
    );
    let ids: Vec<String> = ok(s.users().await, "users")
        .into_iter()
        .map(|u| u.id)
        .filter(|id| id.starts_with("conf-u"))
        .collect();
    assert_eq!(ids, ["conf-u1", "conf-u2"], "conformance: users by id");
    ok(s.delete_user("conf-u2").await, "delete_user");
    ok(s.delete_user("conf-u9").await, "delete an unknown user");
    assert!(ok(s.user("conf-u2").await, "user").is_none());
    assert!(
        ok(s.session_user("conf-h4", T0).await, "session_user").is_none(),
        "conformance: a removed account's sessions end"
    );

    for n in 0..3 {
        ok(
            s.record_audit(AuditEntry {
                at: T0 + n,
                actor: "agent:conf-u1".into(),
                action: "read".into(),
                subject: format!("conf-c{n}"),
                detail: "a supervisor read it".into(),
            })
            .await,
            "record_audit",
        );
    }
    let newest = ok(s.audit_log(None, 2).await, "audit_log");
    let subjects: Vec<&str> = newest.iter().map(|r| r.entry.subject.as_str()).collect();
    assert_eq!(
        subjects,
        ["conf-c2", "conf-c1"],
        "conformance: audit lines newest first"
    );
    let older = ok(
        s.audit_log(Some(newest[1].id), 10).await,
        "audit_log before",
    );
    assert_eq!(
        older.first().map(|r| r.entry.subject.as_str()),
        Some("conf-c0"),
        "conformance: audit lines page backwards by id"
    );

    create(s, "conf-w1", T0).await;
    ok(
        s.create_widget_token("conf-wt1", &cid("conf-w1")).await,
        "create_widget_token",
    );
    assert_eq!(
        ok(
            s.widget_conversation("conf-wt1").await,
            "widget_conversation"
        ),
        Some(cid("conf-w1")),
        "conformance: a widget token opens its conversation"
    );
    assert!(ok(
        s.widget_conversation("conf-wt9").await,
        "widget_conversation"
    )
    .is_none());

    let mut change = Change::at(T0 + 1);
    let part = change.conversation(&cid("conf-w1"));
    part.csat = Some(4);
    part.events.push(event(EventKind::Csat, "4"));
    ok(s.apply(change).await, "a rating");
    assert_eq!(
        record(s, "conf-w1").await.csat,
        Some(4),
        "conformance: the rating is stored"
    );
}

async fn concurrency(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let id = format!("conf-p{t}");
            let mut change = Change::at(T0 + 200_000);
            let mut part = create_part(&id);
            part.events.push(event(EventKind::Note, "created"));
            change.conversations.push(part);
            let mut ids = Vec::new();
            let applied = ok(store.apply(change).await, "a concurrent create");
            ids.extend(applied.events.iter().map(|e| e.id));
            for n in 1..CHANGES_PER_TASK {
                let mut change = Change::at(T0 + 200_000 + i64::try_from(n).unwrap_or(0));
                let part = change.conversation(&cid(&id));
                part.turn = Some(new_turn(
                    n - 1,
                    turn(Role::Customer, &format!("turn {n}"), None),
                ));
                part.events
                    .push(event(EventKind::Turn, &format!("turn {n}")));
                let applied = ok(store.apply(change).await, "a concurrent change");
                ids.extend(applied.events.iter().map(|e| e.id));
            }
            (id, ids)
        });
    }
    let mut all: Vec<i64> = Vec::new();
    let mut per_task = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (id, ids) = match done {
            Ok(v) => v,
            Err(e) => panic!("conformance: a concurrent writer task failed: {e}"),
        };
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "conformance: a later change gets later event ids: {id}: {ids:?}"
        );
        all.extend(&ids);
        per_task.push((id, ids));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        TASKS * CHANGES_PER_TASK,
        "conformance: every concurrent change got its own event id"
    );
    for (id, ids) in per_task {
        let stored: Vec<i64> = ok(store.events(&cid(&id)).await, "events")
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            stored, ids,
            "conformance: every acknowledged concurrent change is stored: {id}"
        );
        let turns = ok(store.turns(&cid(&id)).await, "turns");
        assert_eq!(
            turns.len(),
            CHANGES_PER_TASK - 1,
            "conformance: every acknowledged concurrent turn is stored: {id}"
        );
    }
    let listed: Vec<EventRecord> = ok(store.events_after(0, None, 1_000_000).await, "events_after");
    let listed_ids: HashSet<i64> = listed.iter().map(|e| e.id).collect();
    assert!(
        unique.is_subset(&listed_ids),
        "conformance: events_after lists every concurrent event"
    );
    assert!(
        listed.windows(2).all(|w| w[0].id < w[1].id),
        "conformance: event ids are strictly increasing"
    );
}
