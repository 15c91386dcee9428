//! Request handlers.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use baton_domain::{Agent, ConversationId, Customer, HandoffState, Role, Turn};
use baton_engine::{transition, Session, Transition, TurnOutcome};
use baton_route::{eligible_agents, estimate_wait, position, queue_order, staffing, WaitEstimate};
use baton_store::{now_ms, ConversationUpdate, NewEvent, NewTurn};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
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
        let mut session = app
            .engine
            .start(id.clone(), record.customer, record.channel);
        session.state = record.state;
        session.queue = record.queue;
        session.priority = record.priority;
        session.agent = record.agent_id;
        session.brief = record.brief;
        *guard = Some(app.engine.restore(session, turns));
    }
    match guard.as_mut() {
        Some(session) => f(session).await,
        None => Err(ApiError::Internal(anyhow::anyhow!(
            "session slot empty after load"
        ))),
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
    commit(
        app,
        session,
        session.state,
        Some(new_turn),
        &events(&outcome.transitions),
        &update,
    )
    .await?;
    *session = next;
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
    }
}

/// Position and wait for a waiting conversation. `queued_now`: it joined the queue on this
/// request and is not stored yet, so it is counted in as arriving now.
async fn place_in_queue(
    app: &AppState,
    session: &Session,
    queued_now: bool,
) -> AppResult<Option<(usize, WaitEstimate)>> {
    let Some(queue_name) = session.queue.as_deref() else {
        return Ok(None);
    };
    if !session.state.is_waiting() {
        return Ok(None);
    }
    let mut waiting = app.store.waiting(queue_name).await?;
    if queued_now {
        waiting.retain(|w| w.conversation_id != session.id.as_str());
        waiting.push(baton_route::Waiting {
            conversation_id: session.id.to_string(),
            priority: session.priority,
            queued_at: now_ms(),
        });
    }
    let Some(pos) = position(&waiting, session.id.as_str()) else {
        return Ok(None);
    };
    let policy = app.engine.policy();
    let routing = &policy.file.routing;
    let (slots, busy) = match policy.queue(queue_name) {
        Some(queue) => {
            let loads = app.store.agent_loads().await?;
            staffing(queue, &app.store.agents().await?, load_in(&loads))
        }
        None => (0, 0),
    };
    let (observed, n) = app.store.handle_time(queue_name).await?;
    // Observed handle times replace the configured default once 5 conversations have resolved.
    let handle = observed
        .filter(|_| n >= 5)
        .unwrap_or(routing.default_handle_seconds);
    Ok(Some((
        pos,
        estimate_wait(
            pos,
            slots,
            busy,
            handle,
            routing.wait_padding,
            routing.wait_rounding_seconds,
        ),
    )))
}

/// An agent's current number of conversations, from [`Store::agent_loads`](baton_store::Store::agent_loads).
fn load_in(loads: &HashMap<String, u32>) -> impl Fn(&Agent) -> u32 + '_ {
    |a| loads.get(a.id.as_str()).copied().unwrap_or(0)
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
        app2.engine.check(session, &turn).map_err(|e| ApiError::conflict("ai_locked_out", e.to_string()))?;
        if turn.role == Role::Agent {
            require_owner(session, turn.agent_id.as_deref().unwrap_or_default())?;
        }
        let mut next = session.clone();
        let outcome = app2.engine.process(&mut next, turn.clone());
        let mut body = outcome_json(&next, &outcome);
        if let Some((pos, wait)) = place_in_queue(&app2, &next, outcome.route.is_some()).await? {
            body["position"] = json!(pos);
            body["estimated_wait_seconds"] = json!(wait.quoted_seconds);
            body["expected_wait_seconds"] = json!(wait.expected_seconds);
            if outcome.route.is_some() {
                body["customer_message"] = json!(app2.engine.escalation_message(&next, pos, wait.quoted_seconds));
            }
        }
        commit_turn(&app2, session, next, &turn, &outcome, body).await
    })
    .await
}

pub async fn get_conversation(State(app): St, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    let record = app
        .store
        .conversation(id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation `{id}`")))?;
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
        if let Some(q) = &record.queue {
            let waiting = app.store.waiting(q).await?;
            body["position"] = json!(position(&waiting, id.as_str()));
        }
    }
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
    let record = app
        .store
        .conversation(id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation `{id}`")))?;
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

/// Applies a state change made by an agent and persists it.
async fn agent_step(
    app: &AppState,
    session: &mut Session,
    to: HandoffState,
    agent_id: &str,
    reason: &str,
    disposition: Option<String>,
) -> AppResult<()> {
    let before = session.state;
    let mut next = session.clone();
    let t = transition(&mut next, to, &format!("agent:{agent_id}"), reason)
        .map_err(|e| ApiError::conflict("invalid_transition", e.to_string()))?;
    if to == HandoffState::Assigned {
        next.agent = Some(agent_id.to_owned());
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

pub async fn claim(
    State(app): St,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    let agent = agent_by_id(&app, &req.agent_id).await?;
    let _claims = app.claims.lock().await;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        if !session.state.is_waiting() {
            return Err(ApiError::conflict(
                "not_waiting",
                format!("conversation `{}` is `{}`, not waiting in a queue: only queued or offered conversations can be claimed", session.id, session.state),
            ));
        }
        let policy = app2.engine.policy();
        let queue = session.queue.as_deref().and_then(|q| policy.queue(q));
        let loads = app2.store.agent_loads().await?;
        let load = load_in(&loads);
        if let Some(queue) = queue {
            if eligible_agents(queue, std::slice::from_ref(&agent), &load).is_empty() {
                return Err(ApiError::conflict(
                    "not_eligible",
                    format!(
                        "agent `{}` cannot take from queue `{}`: needs status online (is {:?}), skills {:?} (has {:?}) and free capacity ({} of {} used)",
                        agent.id, queue.name, agent.status, queue.skills, agent.skills, load(&agent), agent.capacity
                    ),
                ));
            }
        }
        agent_step(&app2, session, HandoffState::Assigned, agent.id.as_str(), "claimed from the queue", None).await?;
        Ok(Json(json!({"conversation_id": session.id, "state": session.state, "agent_id": agent.id, "brief": session.brief, "ai_may_reply": false})))
    })
    .await
}

pub async fn reply(
    State(app): St,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    let text = req.text.clone().unwrap_or_default();
    let mut turn = Turn::new(Role::Agent, text).map_err(unprocessable)?;
    turn.require_content().map_err(unprocessable)?;
    turn.agent_id = Some(req.agent_id.clone());
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        require_owner(session, &req.agent_id)?;
        let mut next = session.clone();
        let outcome = app2.engine.process(&mut next, turn.clone());
        let body = json!({"conversation_id": next.id, "turn": outcome.turn, "role": "agent", "state": next.state, "ai_may_reply": next.state.ai_may_reply()});
        commit_turn(&app2, session, next, &turn, &outcome, body).await
    })
    .await
}

pub async fn note(
    State(app): St,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
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
        commit(
            &app2,
            session,
            session.state,
            None,
            &[event],
            &update_of(session, None, false),
        )
        .await?;
        Ok(Json(json!({"conversation_id": session.id, "noted": true})))
    })
    .await
}

pub async fn resolve(
    State(app): St,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    let disposition = required(
        &req.disposition,
        "resolving needs a `disposition` (the resolution category, e.g. `refund_issued`)",
    )?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        require_owner(session, &req.agent_id)?;
        agent_step(&app2, session, HandoffState::Resolved, &req.agent_id, &format!("resolved: {disposition}"), Some(disposition.clone())).await?;
        Ok(Json(json!({"conversation_id": session.id, "state": session.state, "disposition": disposition, "ai_may_reply": true})))
    })
    .await
}

pub async fn handback(
    State(app): St,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Value>> {
    let id = parse_id(&id)?;
    let app2 = app.clone();
    with_session(&app, &id, async move |session: &mut Session| {
        require_owner(session, &req.agent_id)?;
        let why = req
            .text
            .clone()
            .unwrap_or_else(|| "handed back to the AI".to_owned());
        agent_step(
            &app2,
            session,
            HandoffState::ReturnedToAi,
            &req.agent_id,
            &why,
            None,
        )
        .await?;
        Ok(Json(json!({
            "conversation_id": session.id,
            "state": session.state,
            "ai_may_reply": true,
            "customer_message": app2.engine.policy().file.messages.handback,
        })))
    })
    .await
}

pub async fn list_queues(State(app): St) -> AppResult<Json<Value>> {
    let now = now_ms();
    let mut out = Vec::new();
    for q in app.engine.policy().queues() {
        let waiting = app.store.waiting(&q.name).await?;
        let longest = waiting.iter().map(|w| now - w.queued_at).max().unwrap_or(0);
        out.push(json!({"name": q.name, "skills": q.skills, "sla_seconds": q.sla_seconds, "waiting": waiting.len(), "longest_wait_seconds": longest / 1000}));
    }
    Ok(Json(json!({"queues": out})))
}

pub async fn get_queue(State(app): St, Path(name): Path<String>) -> AppResult<Json<Value>> {
    let queue = app.engine.policy().queue(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no queue `{name}`: the policy's queues are listed at GET /v1/queues"
        ))
    })?;
    let mut waiting = app.store.waiting_records(&name).await?;
    waiting.sort_by(|a, b| queue_order(&a.waiting(), &b.waiting()));
    let now = now_ms();
    let items: Vec<Value> = waiting
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let waited = (now - r.queued_at.unwrap_or(now)) / 1000;
            json!({
                "position": i + 1,
                "conversation_id": r.id,
                "priority": r.priority,
                "waiting_seconds": waited,
                "sla_remaining_seconds": i64::try_from(queue.sla_seconds).unwrap_or(i64::MAX) - waited,
                "customer": {"name": r.customer.name, "tier": r.customer.tier},
                "intent": r.brief.as_ref().map(|b| b.intent.clone()),
                "reasons": r.brief.as_ref().map(|b| b.reasons.iter().map(|x| x.code).collect::<Vec<_>>()),
            })
        })
        .collect();
    Ok(Json(
        json!({"name": queue.name, "sla_seconds": queue.sla_seconds, "skills": queue.skills, "waiting": items}),
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
    app.store.upsert_agent(&agent).await?;
    Ok((StatusCode::OK, Json(json!(agent))))
}

pub async fn list_agents(State(app): St) -> AppResult<Json<Value>> {
    let agents = app.store.agents().await?;
    let loads = app.store.agent_loads().await?;
    let items: Vec<Value> = agents
        .iter()
        .map(|a| {
            let mut v = json!(a);
            v["assigned"] = json!(load_in(&loads)(a));
            v
        })
        .collect();
    Ok(Json(json!({"agents": items})))
}
