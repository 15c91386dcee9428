//! Request handlers.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routing;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use baton_domain::{Agent, AgentStatus, ConversationId, Customer, HandoffState, Role, Turn};
use baton_engine::{transition, Session, Transition, TurnOutcome};
use baton_route::{Dispatcher, Millis};
use baton_store::{now_ms, ConversationUpdate, NewEvent, NewTurn};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type AppResult<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// JSON body whose rejections are API errors with a JSON body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound(
        "no such route: the API lives under /v1, described at /openapi.json".to_owned(),
    )
}

/// A turn that parsed but cannot be accepted (422, like any other invalid field).
fn unprocessable(e: baton_domain::TurnError) -> ApiError {
    ApiError::BadRequest {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_turn",
        message: e.to_string(),
    }
}

fn parse_id(id: &str) -> AppResult<ConversationId> {
    ConversationId::parse(id.to_owned()).map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Deserialize, Default)]
struct NewConversation {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    customer: Customer,
    #[serde(default)]
    channel: Option<String>,
}

pub async fn create_conversation(State(app): St, body: Bytes) -> AppResult<impl IntoResponse> {
    let req: NewConversation = if body.iter().all(u8::is_ascii_whitespace) {
        NewConversation::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid(format!(
                "invalid conversation: {e}: send {{\"id\"?, \"customer\"?, \"channel\"?}}"
            ))
        })?
    };
    let id = match req.id {
        Some(id) => parse_id(&id)?,
        None => parse_id(&uuid::Uuid::new_v4().to_string())?,
    };
    match app.store.create_conversation(id.as_str(), &req.customer, req.channel.as_deref()).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(json!({"id": id, "state": HandoffState::AiActive})))),
        Err(baton_store::StoreError::Conflict(_)) => Err(ApiError::conflict(
            "conversation_exists",
            format!("conversation `{id}` already exists: post its turns to /v1/conversations/{id}/turns, or create one with another id"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Loads the conversation's session into its slot if needed and runs `f` on it under the lock.
async fn with_session<T>(
    app: &AppState,
    id: &ConversationId,
    f: impl AsyncFnOnce(&mut Session) -> AppResult<T>,
) -> AppResult<T> {
    let slot = app.slot(id.as_str());
    let mut guard = slot.lock().await;
    // A cached session's routing fields may be stale (routing moves conversations on its own);
    // every handler that acts on them re-reads them under the dispatcher's lock
    // (`refresh_routing`), so only a session not in the cache is read here.
    if guard.is_none() {
        let record = app.store.conversation(id.as_str()).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no conversation `{id}`: create it with POST /v1/conversations"
            ))
        })?;
        let turns = app
            .store
            .turns(id.as_str())
            .await?
            .into_iter()
            .map(|t| t.turn)
            .collect();
        let mut session =
            app.engine
                .start(id.clone(), record.customer.clone(), record.channel.clone());
        session.brief = record.brief.clone();
        take_routing(&mut session, record);
        *guard = Some(app.engine.restore(session, turns));
    }
    match guard.as_mut() {
        Some(session) => f(session).await,
        None => Err(ApiError::Internal(anyhow::anyhow!(
            "session slot empty after load"
        ))),
    }
}

/// The stored conversation `id`, or a 404 that says so.
pub(crate) async fn stored_conversation(
    app: &AppState,
    id: &ConversationId,
) -> AppResult<baton_store::ConversationRecord> {
    app.store
        .conversation(id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation `{id}`")))
}

/// Copies the store's routing fields (state, queue, priority, agent) into the session.
/// Returns whether any differed.
fn take_routing(session: &mut Session, record: baton_store::ConversationRecord) -> bool {
    let changed = (session.state, &session.queue, &session.agent)
        != (record.state, &record.queue, &record.agent_id);
    session.state = record.state;
    session.queue = record.queue;
    session.priority = record.priority;
    session.agent = record.agent_id;
    session.requested_agent = record.requested_agent;
    changed
}

/// Re-reads the conversation's routing fields; call holding the dispatcher's lock, so that
/// what a handler checks (owner, state) is what routing last decided. Returns whether they
/// had changed since the session was loaded.
async fn refresh_routing(app: &AppState, session: &mut Session) -> AppResult<bool> {
    match app.store.conversation(session.id.as_str()).await? {
        Some(record) => Ok(take_routing(session, record)),
        None => Ok(false),
    }
}

/// Persists a change (see `Store::apply`); a conversation that moved on meanwhile is a 409.
async fn commit(
    app: &AppState,
    session: &Session,
    expected: HandoffState,
    turn: Option<NewTurn<'_>>,
    events: &[NewEvent],
    update: &ConversationUpdate,
) -> AppResult<()> {
    if app
        .store
        .apply(session.id.as_str(), expected, turn, events, update)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "state_changed",
            "the conversation changed meanwhile (another agent may have acted on it): reload it and try again",
        ))
    }
}

/// Persists a processed turn (the engine's `next` session and `outcome`) with the answer
/// `body`, then makes `next` the live session.
async fn commit_turn(
    app: &AppState,
    session: &mut Session,
    next: Session,
    turn: &Turn,
    outcome: &TurnOutcome,
    body: Value,
) -> AppResult<Json<Value>> {
    let new_turn = NewTurn {
        seq: outcome.turn,
        turn,
        decision: json!(outcome.decision),
        signals: json!(outcome.signals),
        response: body.clone(),
    };
    let update = update_of(&next, None, outcome.brief.is_some());
    // A `turn` event first, so that consoles and widgets following the event stream fetch it.
    let mut all = vec![NewEvent {
        kind: "turn",
        from: None,
        to: None,
        actor: turn.role.as_str().to_owned(),
        reason: format!("turn {}", outcome.turn),
    }];
    all.extend(events(&outcome.transitions));
    commit(app, session, session.state, Some(new_turn), &all, &update).await?;
    *session = next;
    app.poke();
    Ok(Json(body))
}

/// A text field the request must carry, not blank.
fn required(value: &Option<String>, message: &str) -> AppResult<String> {
    value
        .clone()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::invalid(message))
}

fn events(transitions: &[Transition]) -> Vec<NewEvent> {
    transitions
        .iter()
        .map(|t| NewEvent {
            kind: "transition",
            from: Some(t.from),
            to: Some(t.to),
            actor: t.actor.clone(),
            reason: t.reason.clone(),
        })
        .collect()
}

fn update_of(
    session: &Session,
    disposition: Option<String>,
    brief_changed: bool,
) -> ConversationUpdate {
    ConversationUpdate {
        state: session.state,
        queue: session.queue.clone(),
        priority: session.priority,
        agent_id: session.agent.clone(),
        brief: if brief_changed {
            session.brief.clone()
        } else {
            None
        },
        disposition,
        language: session.detect.language.clone(),
        requested_agent: session.requested_agent.clone(),
    }
}

fn outcome_json(session: &Session, o: &TurnOutcome) -> Value {
    let d = &o.decision;
    let mut body = json!({
        "conversation_id": session.id,
        "turn": o.turn,
        "role": o.role,
        "escalate": d.escalate,
        "mode": d.mode,
        "score": d.score,
        "threshold": d.threshold,
        "reasons": d.reasons,
        "state": o.state,
        "queue": session.queue,
        "signals": o.signals,
        "contributions": d.contributions,
        "rules_fired": d.rules_fired,
        "ai_may_reply": o.state.ai_may_reply(),
    });
    if !d.skipped_rules.is_empty() {
        body["skipped_rules"] = json!(d.skipped_rules);
    }
    if d.shadow {
        body["shadow"] = json!(true);
    }
    if let Some(b) = &o.brief {
        body["brief"] = json!(b);
    }
    body
}

pub async fn post_turn(
    State(app): St,
    Path(id): Path<String>,
    ApiJson(turn): ApiJson<Turn>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    take_turn(app, id, turn).await.map(Json)
}

/// Applies one turn to a conversation (the API's `POST .../turns`, and the widget's own
/// messages): detection, decision, routing, persistence; returns the answer.
pub(crate) async fn take_turn(
    app: Arc<AppState>,
    id: ConversationId,
    turn: Turn,
) -> AppResult<Value> {
    turn.require_content().map_err(unprocessable)?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        if let Some(client_id) = &turn.client_turn_id {
            if let Some((earlier, answer)) = app2.store.turn_by_client_id(session.id.as_str(), client_id).await? {
                // A retry gets the first answer; a different turn under the same id is a client bug.
                if earlier != turn {
                    return Err(ApiError::conflict(
                        "client_turn_id_reused",
                        format!("`client_turn_id` `{client_id}` was already used for a different turn in this conversation: give every new turn its own id, and resend a retry unchanged"),
                    ));
                }
                return Ok(Json(answer));
            }
        }
        let prepare = |session: &Session| -> AppResult<(Session, TurnOutcome)> {
            app2.engine.check(session, &turn).map_err(|e| ApiError::conflict("ai_locked_out", e.to_string()))?;
            if turn.role == Role::Agent {
                require_owner(session, turn.agent_id.as_deref().unwrap_or_default())?;
            }
            let mut next = session.clone();
            let outcome = app2.engine.process(&mut next, turn.clone());
            Ok((next, outcome))
        };
        // Detection runs outside the routing lock; if routing moved the conversation meanwhile,
        // the turn is processed again on what routing decided.
        let (mut next, mut outcome) = prepare(session)?;
        let mut d = app2.dispatcher.lock().await;
        if refresh_routing(&app2, session).await? {
            (next, outcome) = prepare(session)?;
        }
        let mut body = outcome_json(&next, &outcome);
        let now = now_ms();
        let was_routed = session.state.is_waiting() || session.state == HandoffState::Assigned;
        if let Some(route) = &outcome.route {
            let new = baton_route::NewConversation {
                id: next.id.to_string(),
                queue: route.queue.clone(),
                priority: route.priority,
                language: next.detect.language.clone(),
                owner: next.requested_agent.clone(),
                queued_at: now,
                why: route.why.clone(),
            };
            let placed = routing::place(&app2, &mut d, new, now)?;
            describe_placement(&app2, &next, &placed, &mut body);
            // Routing may have offered or given it to an agent at once.
            if let Some((agent, accepted)) = d.holder(next.id.as_str()) {
                body["state"] = json!(if accepted { HandoffState::Assigned } else { HandoffState::Offered });
                body["agent_id"] = json!(agent);
                body["ai_may_reply"] = json!(!accepted);
            }
        } else if next.state.is_waiting() {
            if let (Some(p), Some(w)) = (d.position(next.id.as_str()), d.estimate(next.id.as_str())) {
                body["position"] = json!(p);
                body["estimated_wait_seconds"] = json!(w.quoted_seconds);
                body["expected_wait_seconds"] = json!(w.expected_seconds);
            }
        }
        let id = next.id.to_string();
        let (role, state, queue) = (turn.role, next.state, next.queue.clone());
        let answer = match commit_turn(&app2, session, next, &turn, &outcome, body).await {
            Ok(answer) => answer,
            Err(e) => {
                if outcome.route.is_some() {
                    // Not stored: take it back out of routing. What that frees up for others
                    // is recorded; this conversation's own offer no longer applies to its
                    // stored state and is skipped.
                    let _ = d.finish(&id, false, now);
                    routing::persist(&app2, &mut d).await?;
                }
                return Err(e);
            }
        };
        let queue = queue.as_deref().and_then(|q| app2.engine.policy().queue(q)).cloned();
        if outcome.route.is_some() {
            if let Some(q) = &queue {
                routing::start_sla(&app2, &id, q, "first_response", q.sla_seconds, now).await?;
            }
        } else if was_routed && !(state.is_waiting() || state == HandoffState::Assigned) {
            // The customer cancelled back to the AI.
            leave_routing(&app2, &mut d, &id, false, now).await?;
        } else if state == HandoffState::Assigned && role == Role::Customer {
            d.customer_wrote(&id, now)?;
            if let Some(q) = queue.as_ref().filter(|q| q.next_response_sla_seconds.is_some()) {
                let secs = q.next_response_sla_seconds.unwrap_or(q.sla_seconds);
                routing::start_sla(&app2, &id, q, "next_response", secs, now).await?;
            }
        } else if state == HandoffState::Assigned && role == Role::Agent {
            agent_answered(&app2, &mut d, &id, now).await?;
        }
        routing::persist(&app2, &mut d).await?;
        Ok(answer)
    })
    .await
    .map(|Json(v)| v)
}

/// Adds position, wait, the customer message and, when the queue is closed or the wait too
/// long, the async alternatives to an escalation's answer.
fn describe_placement(
    app: &AppState,
    session: &Session,
    placed: &routing::Placement,
    body: &mut Value,
) {
    let (pos, quote) = (placed.position, placed.wait.quoted_seconds);
    body["position"] = json!(pos);
    body["estimated_wait_seconds"] = json!(quote);
    body["expected_wait_seconds"] = json!(placed.wait.expected_seconds);
    let policy = app.engine.policy();
    let routing = &policy.file.routing;
    let messages = &policy.file.messages;
    let options = routing.async_options.join(", ");
    let message = match placed.closed {
        Some(opens) => {
            body["queue_open"] = json!(false);
            body["opens_at"] = json!(opens.map(rfc3339));
            let when = opens.map_or_else(
                || "later".to_owned(),
                |at| {
                    format!(
                        "in {}",
                        baton_engine::human_duration(
                            u64::try_from((at - now_ms()).max(0) / 1000).unwrap_or(0)
                        )
                    )
                },
            );
            app.engine.message(
                session,
                &messages.closed,
                pos,
                quote,
                &[("opens", when), ("options", options.clone())],
            )
        }
        None if placed.too_long => app.engine.message(
            session,
            &messages.long_wait,
            pos,
            quote,
            &[("options", options.clone())],
        ),
        None => app.engine.escalation_message(session, pos, quote),
    };
    if placed.closed.is_some() || placed.too_long {
        body["alternatives"] = json!(routing.async_options);
        if let Some(link) = &routing.meeting_link {
            body["meeting_link"] = json!(link);
        }
    }
    body["customer_message"] = json!(message);
}

fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// The assigned agent answered: the silence timer and the response SLAs stop.
async fn agent_answered(
    app: &AppState,
    d: &mut Dispatcher,
    id: &str,
    now: Millis,
) -> AppResult<()> {
    d.agent_replied(id)?;
    app.store.stop_sla(id, None, now).await?;
    Ok(())
}

/// The conversation leaves routing (resolved when `handled`, else cancelled, handed back or
/// moved to the async path): its agent takes the next one, its SLA timers stop.
async fn leave_routing(
    app: &AppState,
    d: &mut Dispatcher,
    id: &str,
    handled: bool,
    now: Millis,
) -> AppResult<()> {
    if let Err(e) = d.finish(id, handled, now) {
        tracing::warn!(conversation = %id, error = %e, "left routing that did not hold it");
    }
    app.store.stop_sla(id, None, now).await?;
    routing::persist(app, d).await
}

pub async fn get_conversation(State(app): St, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    let record = stored_conversation(&app, &id).await?;
    let turns = app.store.turns(id.as_str()).await?;
    let events = app.store.events(id.as_str()).await?;
    let ai_may_reply = record.state.ai_may_reply();
    let mut body = json!({
        "id": record.id,
        "customer": record.customer,
        "channel": record.channel,
        "state": record.state,
        "queue": record.queue,
        "priority": record.priority,
        "agent_id": record.agent_id,
        "disposition": record.disposition,
        "brief": record.brief,
        "ai_may_reply": ai_may_reply,
        "turns": turns.iter().map(|t| json!({"turn": t.seq, "role": t.turn.role, "text": t.turn.text, "body": t.turn, "signals": t.signals, "decision": t.decision, "at_ms": t.created_at})).collect::<Vec<_>>(),
        "decisions": turns.iter().filter_map(|t| t.decision.clone()).collect::<Vec<_>>(),
        "events": events,
    });
    if record.state.is_waiting() {
        let d = app.dispatcher.lock().await;
        if let (Some(p), Some(w)) = (d.position(id.as_str()), d.estimate(id.as_str())) {
            body["position"] = json!(p);
            body["estimated_wait_seconds"] = json!(w.quoted_seconds);
        }
    }
    body["sla"] = json!(app.store.slas(id.as_str()).await?);
    Ok(Json(body))
}

#[derive(Deserialize)]
pub struct BriefQuery {
    #[serde(default)]
    format: Option<String>,
}

/// The latest handoff brief: JSON, or Markdown with `?format=markdown`.
pub async fn get_brief(
    State(app): St,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<BriefQuery>,
) -> AppResult<axum::response::Response> {
    let id = parse_id(&id)?;
    let record = stored_conversation(&app, &id).await?;
    let brief = record.brief.ok_or_else(|| {
        ApiError::NotFound(format!(
            "conversation `{id}` has no brief yet: a brief is made when it escalates"
        ))
    })?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(brief).into_response()),
        Some("markdown" | "md") => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8",
            )],
            baton_brief::render_markdown(&brief),
        )
            .into_response()),
        Some(other) => Err(ApiError::invalid(format!(
            "unknown format `{other}`: use `json` or `markdown`"
        ))),
    }
}

#[derive(Deserialize)]
pub struct AgentAction {
    agent_id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    disposition: Option<String>,
}

async fn agent_by_id(app: &AppState, agent_id: &str) -> AppResult<Agent> {
    app.store.agent(agent_id).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no agent `{agent_id}`: add it with POST /v1/agents"
        ))
    })
}

fn require_owner(session: &Session, agent_id: &str) -> AppResult<()> {
    if session.state == HandoffState::Assigned && session.agent.as_deref() == Some(agent_id) {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "not_owner",
            format!(
                "agent `{agent_id}` does not own this conversation (state `{}`): claim it first (POST /v1/conversations/{{id}}/claim) and send its `agent_id`",
                session.state
            ),
        ))
    }
}

/// Takes one step of the state machine for an agent (`agent:ID`) or the customer, and
/// persists it; `queue` moves the conversation to another queue (a transfer).
async fn session_step(
    app: &AppState,
    session: &mut Session,
    to: HandoffState,
    actor: &str,
    reason: &str,
    disposition: Option<String>,
    queue: Option<String>,
) -> AppResult<()> {
    let before = session.state;
    let mut next = session.clone();
    let t = transition(&mut next, to, actor, reason)
        .map_err(|e| ApiError::conflict("invalid_transition", e.to_string()))?;
    if queue.is_some() {
        next.queue = queue;
    }
    commit(
        app,
        session,
        before,
        None,
        &events(&[t]),
        &update_of(&next, disposition, false),
    )
    .await?;
    *session = next;
    Ok(())
}

/// Claims a conversation: accepts the offer made to this agent, or takes a waiting one the
/// agent is eligible for (capacity permitting).
pub async fn claim(
    State(app): St,
    Path(id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    caller.acts_as(&req.agent_id)?;
    let agent = agent_by_id(&app, &req.agent_id).await?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        let mut d = app2.dispatcher.lock().await;
        refresh_routing(&app2, session).await?;
        if !session.state.is_waiting() {
            return Err(ApiError::conflict(
                "not_waiting",
                format!("conversation `{}` is `{}`, not waiting in a queue: only queued or offered conversations can be claimed", session.id, session.state),
            ));
        }
        d.claim(session.id.as_str(), agent.id.as_str(), now_ms())
            .map_err(|e| ApiError::conflict("not_eligible", e.to_string()))?;
        routing::persist(&app2, &mut d).await?;
        Ok(Json(json!({"conversation_id": session.id, "state": HandoffState::Assigned, "agent_id": agent.id, "brief": session.brief, "ai_may_reply": false})))
    })
    .await
}

/// Declines the conversation offered to this agent: it goes to the next agent.
pub async fn decline(
    State(app): St,
    Path(id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    caller.acts_as(&req.agent_id)?;
    agent_by_id(&app, &req.agent_id).await?;
    let mut d = app.dispatcher.lock().await;
    d.decline(id.as_str(), &req.agent_id, now_ms())
        .map_err(|e| ApiError::conflict("not_offered", e.to_string()))?;
    routing::persist(&app, &mut d).await?;
    Ok(Json(json!({"conversation_id": id, "declined": true})))
}

pub async fn reply(
    State(app): St,
    Path(id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    caller.acts_as(&req.agent_id)?;
    let text = req.text.clone().unwrap_or_default();
    let mut turn = Turn::new(Role::Agent, text).map_err(unprocessable)?;
    turn.require_content().map_err(unprocessable)?;
    turn.agent_id = Some(req.agent_id.clone());
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        let mut d = app2.dispatcher.lock().await;
        refresh_routing(&app2, session).await?;
        require_owner(session, &req.agent_id)?;
        let mut next = session.clone();
        let outcome = app2.engine.process(&mut next, turn.clone());
        let body = json!({"conversation_id": next.id, "turn": outcome.turn, "role": "agent", "state": next.state, "ai_may_reply": next.state.ai_may_reply()});
        let answer = commit_turn(&app2, session, next, &turn, &outcome, body).await?;
        agent_answered(&app2, &mut d, session.id.as_str(), now_ms()).await?;
        Ok(answer)
    })
    .await
}

pub async fn note(
    State(app): St,
    Path(id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    caller.acts_as(&req.agent_id)?;
    let text = required(&req.text, "a note needs `text`")?;
    agent_by_id(&app, &req.agent_id).await?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        let event = NewEvent {
            kind: "note",
            from: None,
            to: None,
            actor: format!("agent:{}", req.agent_id),
            reason: text,
        };
        app2.store.record(session.id.as_str(), &[event]).await?;
        app2.poke();
        Ok(Json(json!({"conversation_id": session.id, "noted": true})))
    })
    .await
}

pub async fn resolve(
    State(app): St,
    Path(id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    caller.acts_as(&req.agent_id)?;
    let disposition = required(
        &req.disposition,
        "resolving needs a `disposition` (the resolution category, e.g. `refund_issued`)",
    )?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        let mut d = app2.dispatcher.lock().await;
        refresh_routing(&app2, session).await?;
        require_owner(session, &req.agent_id)?;
        session_step(&app2, session, HandoffState::Resolved, &format!("agent:{}", req.agent_id), &format!("resolved: {disposition}"), Some(disposition.clone()), None).await?;
        leave_routing(&app2, &mut d, session.id.as_str(), true, now_ms()).await?;
        Ok(Json(json!({"conversation_id": session.id, "state": session.state, "disposition": disposition, "ai_may_reply": true})))
    })
    .await
}

pub async fn handback(
    State(app): St,
    Path(id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    caller.acts_as(&req.agent_id)?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        let mut d = app2.dispatcher.lock().await;
        refresh_routing(&app2, session).await?;
        require_owner(session, &req.agent_id)?;
        let why = req
            .text
            .clone()
            .unwrap_or_else(|| "handed back to the AI".to_owned());
        session_step(
            &app2,
            session,
            HandoffState::ReturnedToAi,
            &format!("agent:{}", req.agent_id),
            &why,
            None,
            None,
        )
        .await?;
        leave_routing(&app2, &mut d, session.id.as_str(), false, now_ms()).await?;
        Ok(Json(json!({
            "conversation_id": session.id,
            "state": session.state,
            "ai_may_reply": true,
            "customer_message": app2.engine.policy().file.messages.handback,
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct TransferRequest {
    agent_id: String,
    queue: String,
    #[serde(default)]
    to_agent: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// The owning agent transfers the conversation to another queue (and, with `to_agent`, to a
/// colleague, who is waited for first): it goes back to waiting there, keeping its place in
/// time, with a new first-response SLA.
pub async fn transfer(
    State(app): St,
    Path(id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<TransferRequest>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    caller.acts_as(&req.agent_id)?;
    let target = app
        .engine
        .policy()
        .queue(&req.queue)
        .cloned()
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no queue `{}`: the policy's queues are listed at GET /v1/queues",
                req.queue
            ))
        })?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        let now = now_ms();
        let mut d = app2.dispatcher.lock().await;
        refresh_routing(&app2, session).await?;
        require_owner(session, &req.agent_id)?;
        if let Some(to) = &req.to_agent {
            if app2.store.agent(to).await?.is_none() {
                return Err(ApiError::NotFound(format!("no agent `{to}` to transfer to")));
            }
            session.requested_agent = Some(to.clone());
        }
        let why = format!(
            "transferred to queue `{}`{}{}",
            target.name,
            req.to_agent
                .as_deref()
                .map_or_else(String::new, |a| format!(", for agent `{a}`")),
            req.text.as_deref().map_or_else(String::new, |t| format!(": {t}"))
        );
        session_step(
            &app2,
            session,
            HandoffState::Queued,
            &format!("agent:{}", req.agent_id),
            &why,
            None,
            Some(target.name.clone()),
        )
        .await?;
        d.transfer(
            session.id.as_str(),
            &target.name,
            req.to_agent.as_deref(),
            now,
        )?;
        app2.store.stop_sla(session.id.as_str(), None, now).await?;
        routing::start_sla(&app2, session.id.as_str(), &target, "first_response", target.sla_seconds, now).await?;
        routing::persist(&app2, &mut d).await?;
        Ok(Json(json!({"conversation_id": session.id, "state": HandoffState::Queued, "queue": target.name})))
    })
    .await
}

#[derive(Deserialize)]
pub struct FollowupRequest {
    pub(crate) via: String,
    #[serde(default)]
    pub(crate) contact: Option<String>,
}

/// The customer chooses the async path instead of waiting: an email follow-up, a callback or a
/// meeting. The conversation leaves the queue; the brief stays for whoever follows up.
pub async fn followup(
    State(app): St,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FollowupRequest>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    take_followup(app, id, req).await.map(Json)
}

/// Moves a conversation to the async path (the API's and the widget's follow-up).
pub(crate) async fn take_followup(
    app: Arc<AppState>,
    id: ConversationId,
    req: FollowupRequest,
) -> AppResult<Value> {
    let routing_config = &app.engine.policy().file.routing;
    if !routing_config.async_options.contains(&req.via) {
        return Err(ApiError::invalid(format!(
            "`via` is `{}`: choose one of {}",
            req.via,
            routing_config.async_options.join(", ")
        )));
    }
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        let now = now_ms();
        let mut d = app2.dispatcher.lock().await;
        refresh_routing(&app2, session).await?;
        let why = format!(
            "the customer chose a {} follow-up{}",
            req.via,
            req.contact.as_deref().map_or_else(String::new, |c| format!(" ({c})"))
        );
        session_step(&app2, session, HandoffState::AsyncFollowup, "customer", &why, None, None).await?;
        leave_routing(&app2, &mut d, session.id.as_str(), false, now).await?;
        let mut body = json!({"conversation_id": session.id, "state": session.state, "via": req.via, "ai_may_reply": true});
        if req.via == "meeting" {
            body["meeting_link"] = json!(app2.engine.policy().file.routing.meeting_link);
        }
        Ok(body)
    })
    .await
}

/// Why a conversation is in its queue, and every agent's eligibility, in the order they would
/// be chosen.
pub async fn explain(State(app): St, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    let record = stored_conversation(&app, &id).await?;
    let d = app.dispatcher.lock().await;
    let explanation = d.explain(id.as_str(), now_ms()).map_err(|_| {
        ApiError::conflict(
            "not_in_routing",
            format!(
                "conversation `{id}` is `{}`: explain covers conversations that are queued, offered or assigned",
                record.state
            ),
        )
    })?;
    Ok(Json(json!(explanation)))
}

#[derive(Deserialize)]
pub struct EventQuery {
    #[serde(default)]
    conversation: Option<String>,
    #[serde(default)]
    after: Option<i64>,
}

/// Server-sent events: every event (turns, transitions, routing, SLA warnings and breaches,
/// wait updates, notes, ratings) after `after` (`-1`: from now on) or the `Last-Event-ID`
/// header, then live; of one conversation with `?conversation=ID`. Each event's SSE id is its sequence number, so a reconnect resumes
/// where it stopped.
pub async fn event_stream(
    State(app): St,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<EventQuery>,
) -> AppResult<impl IntoResponse> {
    let conversation = q
        .conversation
        .map(|c| parse_id(&c))
        .transpose()?
        .map(|c| c.to_string());
    // `after=-1`: only what happens from now on.
    let after = match q.after {
        Some(a) if a < 0 => Some(app.store.last_event_id().await?),
        a => a,
    };
    stream_events(app, &headers, after, conversation, false)
}

/// The event stream after `after` (or the `Last-Event-ID` header), of one conversation or
/// all; `customer_view` leaves out internal notes.
pub(crate) fn stream_events(
    app: Arc<AppState>,
    headers: &axum::http::HeaderMap,
    after: Option<i64>,
    conversation: Option<String>,
    customer_view: bool,
) -> AppResult<impl IntoResponse> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(after)
        .unwrap_or(0);
    let rx = app.events_written.subscribe();
    let stream = futures_util::stream::unfold(
        (
            app,
            rx,
            last,
            conversation,
            std::collections::VecDeque::new(),
        ),
        move |(app, mut rx, mut last, conversation, mut pending)| async move {
            loop {
                if let Some(e) = pending.pop_front() {
                    let e: baton_store::EventRecord = e;
                    last = e.id;
                    if customer_view && e.kind == "note" {
                        continue;
                    }
                    let event = Event::default()
                        .id(e.id.to_string())
                        .event(e.kind.clone())
                        .json_data(&e)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable event"));
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (app, rx, last, conversation, pending),
                    ));
                }
                match app
                    .store
                    .events_after(last, conversation.as_deref(), 200)
                    .await
                {
                    Ok(batch) if !batch.is_empty() => pending.extend(batch),
                    Ok(_) => {
                        if rx.changed().await.is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "event stream read failed");
                        return None;
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn list_queues(State(app): St) -> AppResult<Json<Value>> {
    let now = now_ms();
    let day_start = now - now.rem_euclid(86_400_000);
    let policy = app.engine.policy();
    let mut out = Vec::new();
    for q in policy.queues() {
        let stats = app.dispatcher.lock().await.queue_stats(&q.name, now)?;
        let sla_ms = i64::try_from(q.sla_seconds).unwrap_or(i64::MAX / 1000) * 1000;
        let (answered, in_sla) = app.store.answered_since(&q.name, day_start, sla_ms).await?;
        let open = policy.schedule(&q.name).is_none_or(|s| s.is_open(now));
        out.push(json!({
            "name": q.name,
            "skills": q.skills.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "sla_seconds": q.sla_seconds,
            "open": open,
            "waiting": stats.waiting,
            "longest_wait_seconds": stats.longest_wait_seconds.floor(),
            "agents_available": stats.agents_available,
            "agents_online": stats.agents_online,
            "answered_today": answered,
            "service_level_today": (answered > 0).then(|| in_sla as f64 / answered as f64),
            "handle_seconds": stats.handle_seconds,
        }));
    }
    Ok(Json(json!({"queues": out})))
}

pub async fn get_queue(State(app): St, Path(name): Path<String>) -> AppResult<Json<Value>> {
    let queue = app.engine.policy().queue(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no queue `{name}`: the policy's queues are listed at GET /v1/queues"
        ))
    })?;
    let waiting = app.store.waiting_records(&name).await?;
    let now = now_ms();
    let d = app.dispatcher.lock().await;
    let mut items: Vec<(usize, Value)> = waiting
        .iter()
        .map(|r| {
            let waited = (now - r.queued_at.unwrap_or(now)) / 1000;
            let position = d.position(&r.id);
            let item = json!({
                "position": position,
                "conversation_id": r.id,
                "state": r.state,
                "priority": r.priority,
                "waiting_seconds": waited,
                "estimated_wait_seconds": d.estimate(&r.id).map(|w| w.quoted_seconds),
                "sla_remaining_seconds": i64::try_from(queue.sla_seconds).unwrap_or(i64::MAX) - waited,
                "offered_to": (r.state == HandoffState::Offered).then_some(r.agent_id.clone()),
                "customer": {"name": r.customer.name, "tier": r.customer.tier},
                "intent": r.brief.as_ref().map(|b| b.intent.clone()),
                "reasons": r.brief.as_ref().map(|b| b.reasons.iter().map(|x| x.code).collect::<Vec<_>>()),
            });
            (position.unwrap_or(usize::MAX), item)
        })
        .collect();
    items.sort_by_key(|(p, _)| *p);
    let stats = d.queue_stats(&name, now)?;
    Ok(Json(
        json!({"name": queue.name, "sla_seconds": queue.sla_seconds, "skills": queue.skills.iter().map(ToString::to_string).collect::<Vec<_>>(), "stats": stats, "waiting": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()}),
    ))
}

pub async fn upsert_agent(
    State(app): St,
    ApiJson(agent): ApiJson<Agent>,
) -> AppResult<impl IntoResponse> {
    if agent.capacity == 0 {
        return Err(ApiError::invalid("`capacity` is 0: give the number of conversations the agent can hold at once, at least 1"));
    }
    if agent.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "`name` is empty: give the agent's display name",
        ));
    }
    let mut d = app.dispatcher.lock().await;
    d.upsert_agent(agent.clone(), now_ms())?;
    app.store.upsert_agent(&agent).await?;
    routing::persist(&app, &mut d).await?;
    Ok((StatusCode::OK, Json(json!(agent))))
}

#[derive(Deserialize)]
pub struct PresenceRequest {
    status: AgentStatus,
}

/// Sets an agent's presence: `online` takes new conversations, `away` keeps current ones,
/// `offline` also releases those waiting for the agent as their dedicated agent.
pub async fn set_presence(
    State(app): St,
    Path(agent): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<PresenceRequest>,
) -> AppResult<Json<Value>> {
    caller.acts_as(&agent)?;
    agent_by_id(&app, &agent).await?;
    let mut d = app.dispatcher.lock().await;
    d.set_presence(&agent, req.status, now_ms())?;
    app.store.set_agent_status(&agent, req.status).await?;
    routing::persist(&app, &mut d).await?;
    Ok(Json(json!({"agent_id": agent, "status": req.status})))
}

pub async fn list_agents(State(app): St) -> AppResult<Json<Value>> {
    let agents = app.store.agents().await?;
    let loads = app.store.agent_loads().await?;
    let items: Vec<Value> = agents
        .iter()
        .map(|a| {
            let mut v = json!(a);
            v["assigned"] = json!(loads.get(a.id.as_str()).copied().unwrap_or(0));
            v
        })
        .collect();
    Ok(Json(json!({"agents": items})))
}
