//! Request handlers: extract, call the handoff service, map the answer. None of them touches
//! the store or routing; the service does.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use baton_domain::{Agent, AgentStatus, ConversationId, Customer, Turn};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type AppResult<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// JSON body whose rejections are API errors with a JSON body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// A JSON body with the input fields it ignored, each in words, so that a typo (`teir` for
/// `tier`) is never silent: unknown fields stay accepted (CONTRACTS.md) and are named in the
/// answer's `warnings`. A customer attribute close to a known customer field is named too.
pub struct Checked<T>(pub T, pub Vec<String>);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Checked<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
        if !json {
            return Err(ApiError::BadRequest {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: "send the body with `Content-Type: application/json`".into(),
            });
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                status: e.status(),
                code: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "body_too_large"
                } else {
                    "invalid_request"
                },
                message: e.body_text(),
            })?;
        checked(&body)
    }
}

/// Parses `body`, collecting the paths serde ignored.
fn checked<T: serde::de::DeserializeOwned>(body: &[u8]) -> AppResult<Checked<T>> {
    let mut ignored = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_ignored::deserialize(&mut de, |path| ignored.push(path.to_string()))
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| ApiError::BadRequest {
            status: if e.is_data() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            },
            code: "invalid_json",
            message: format!(
                "{e}: send one JSON object as /openapi.json describes, and fix the field named above"
            ),
        })?;
    let warnings = ignored
        .into_iter()
        .map(|path| format!("`{path}` is not a field here and was ignored"))
        .collect();
    Ok(Checked(value, warnings))
}

/// Warnings for customer attributes that look like a misspelt customer field.
fn customer_warnings(customer: &Customer) -> Vec<String> {
    const FIELDS: [&str; 9] = [
        "id",
        "name",
        "tier",
        "tenure_days",
        "contacts_same_issue_30d",
        "deal_value",
        "language",
        "email",
        "account_owner",
    ];
    customer
        .attributes
        .keys()
        .filter_map(|key| {
            let near = FIELDS
                .iter()
                .find(|f| strsim::damerau_levenshtein(key, f) <= 2.min(f.len() / 2))?;
            Some(format!(
                "`customer.{key}` is kept as a custom attribute, not read as `{near}`: did you mean `{near}`?"
            ))
        })
        .collect()
}

/// A path parameter whose rejections (bad percent-encoding, invalid UTF-8) are API errors with
/// a JSON body.
pub struct ApiPath<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S>
    for ApiPath<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::invalid(format!("bad path: {}", e.body_text())))
    }
}

/// A conversation id from the path.
pub struct ConversationPath(pub ConversationId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ConversationPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let ApiPath(id) = ApiPath::<String>::from_request_parts(parts, state).await?;
        parse_id(&id).map(ConversationPath)
    }
}

/// A query string whose rejections are API errors with a JSON body.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| {
                ApiError::invalid(format!(
                    "{}: /openapi.json lists each route's query parameters",
                    e.body_text()
                ))
            })
    }
}

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

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::BadRequest {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!(
            "`{method} {}` is not served: /openapi.json lists each route's methods",
            uri.path()
        ),
    }
}

pub(crate) fn parse_id(id: &str) -> AppResult<ConversationId> {
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
    let Checked(req, mut warnings) = if body.iter().all(u8::is_ascii_whitespace) {
        Checked(NewConversation::default(), Vec::new())
    } else {
        checked::<NewConversation>(&body).map_err(|e| match e {
            ApiError::BadRequest { message, .. } => ApiError::invalid(format!(
                "invalid conversation: {message}: send {{\"id\"?, \"customer\"?, \"channel\"?}}"
            )),
            e => e,
        })?
    };
    warnings.extend(customer_warnings(&req.customer));
    let id = req.id.as_deref().map(parse_id).transpose()?;
    let mut created = app
        .service
        .create_conversation(id, req.customer, req.channel)
        .await?;
    created.warnings = warnings;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn post_turn(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Checked(turn, warnings): Checked<Turn>,
) -> AppResult<Json<baton_core::answers::TurnAnswer>> {
    let mut answer = app.service.post_turn(id, turn).await?;
    answer.warnings = warnings;
    Ok(Json(answer))
}

pub async fn get_conversation(
    State(app): St,
    ConversationPath(id): ConversationPath,
) -> AppResult<Json<Value>> {
    let d = app.service.conversation_details(&id).await?;
    let record = d.record;
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
        "ai_may_reply": record.state.ai_may_reply(),
        "turns": d.turns.iter().map(|t| json!({"turn": t.seq, "role": t.turn.role, "text": t.turn.text, "body": t.turn, "signals": t.signals, "decision": t.decision, "at_ms": t.created_at})).collect::<Vec<_>>(),
        "decisions": d.turns.iter().filter_map(|t| t.decision.clone()).collect::<Vec<_>>(),
        "events": d.events,
        "sla": d.slas,
    });
    if let Some((p, w)) = d.wait {
        body["position"] = json!(p);
        body["estimated_wait_seconds"] = json!(w.quoted_seconds);
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
    ConversationPath(id): ConversationPath,
    ApiQuery(q): ApiQuery<BriefQuery>,
) -> AppResult<axum::response::Response> {
    let record = app.service.conversation(&id).await?;
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

/// Claims a conversation: accepts the offer made to this agent, or takes a waiting one the
/// agent is eligible for (capacity permitting).
pub async fn claim(
    State(app): St,
    ConversationPath(id): ConversationPath,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<baton_core::answers::Claimed>> {
    caller.acts_as(&req.agent_id)?;
    Ok(Json(app.service.claim(id, req.agent_id).await?))
}

/// Declines the conversation offered to this agent: it goes to the next agent.
pub async fn decline(
    State(app): St,
    ConversationPath(id): ConversationPath,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<baton_core::answers::Declined>> {
    caller.acts_as(&req.agent_id)?;
    Ok(Json(app.service.decline(id, req.agent_id).await?))
}

pub async fn reply(
    State(app): St,
    ConversationPath(id): ConversationPath,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<baton_core::answers::Replied>> {
    caller.acts_as(&req.agent_id)?;
    let text = req.text.unwrap_or_default();
    Ok(Json(app.service.reply(id, req.agent_id, text).await?))
}

pub async fn note(
    State(app): St,
    ConversationPath(id): ConversationPath,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<baton_core::answers::Noted>> {
    caller.acts_as(&req.agent_id)?;
    let text = req.text.unwrap_or_default();
    Ok(Json(app.service.note(id, req.agent_id, text).await?))
}

pub async fn resolve(
    State(app): St,
    ConversationPath(id): ConversationPath,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<baton_core::answers::Resolved>> {
    caller.acts_as(&req.agent_id)?;
    let disposition = req.disposition.unwrap_or_default();
    Ok(Json(
        app.service.resolve(id, req.agent_id, disposition).await?,
    ))
}

pub async fn handback(
    State(app): St,
    ConversationPath(id): ConversationPath,
    caller: Caller,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<baton_core::answers::HandedBack>> {
    caller.acts_as(&req.agent_id)?;
    Ok(Json(
        app.service.handback(id, req.agent_id, req.text).await?,
    ))
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
/// colleague, who is waited for first).
pub async fn transfer(
    State(app): St,
    ConversationPath(id): ConversationPath,
    caller: Caller,
    ApiJson(req): ApiJson<TransferRequest>,
) -> AppResult<Json<baton_core::answers::Transferred>> {
    caller.acts_as(&req.agent_id)?;
    Ok(Json(
        app.service
            .transfer(id, req.agent_id, req.queue, req.to_agent, req.text)
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct FollowupRequest {
    pub(crate) via: String,
    #[serde(default)]
    pub(crate) contact: Option<String>,
}

/// The customer chooses the async path instead of waiting: an email follow-up, a callback or a
/// meeting.
pub async fn followup(
    State(app): St,
    ConversationPath(id): ConversationPath,
    ApiJson(req): ApiJson<FollowupRequest>,
) -> AppResult<Json<baton_core::answers::FollowedUp>> {
    Ok(Json(app.service.followup(id, req.via, req.contact).await?))
}

/// Why a conversation is in its queue, and every agent's eligibility, in the order they would
/// be chosen.
pub async fn explain(
    State(app): St,
    ConversationPath(id): ConversationPath,
) -> AppResult<Json<baton_route::dispatch::Explanation>> {
    Ok(Json(app.service.explain(&id).await?))
}

#[derive(Deserialize)]
pub struct EventQuery {
    #[serde(default)]
    conversation: Option<String>,
    #[serde(default)]
    after: Option<i64>,
}

/// Server-sent events: every event (turns, transitions, routing, SLA warnings and breaches,
/// wait updates, notes, ratings) after `after` or the `Last-Event-ID` header, else from now on;
/// of one conversation with `?conversation=ID`. Each event's SSE id is its sequence number,
/// so a reconnect resumes where it stopped.
pub async fn event_stream(
    State(app): St,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> AppResult<impl IntoResponse> {
    let conversation = q
        .conversation
        .map(|c| parse_id(&c))
        .transpose()?
        .map(|c| c.to_string());
    let after = q.after.filter(|a| *a >= 0);
    Ok(stream_events(app, &headers, after, conversation, false))
}

/// The event stream after `after` (or the `Last-Event-ID` header; from now on when neither is
/// given), of one conversation or all; `customer_view` leaves out internal notes. The stream
/// follows the service's bus: an idle stream costs nothing between events, and ends when the
/// server shuts down.
pub(crate) fn stream_events(
    app: Arc<AppState>,
    headers: &axum::http::HeaderMap,
    after: Option<i64>,
    conversation: Option<String>,
    customer_view: bool,
) -> impl IntoResponse {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let bus = app.service.bus();
    let rx = bus.subscribe(conversation.as_deref());
    let closed = bus.closed();
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(after)
        .unwrap_or_else(|| bus.last_id());
    struct Follow {
        app: Arc<AppState>,
        rx: tokio::sync::broadcast::Receiver<Arc<baton_store::EventRecord>>,
        closed: tokio::sync::watch::Receiver<bool>,
        last: i64,
        conversation: Option<String>,
        pending: std::collections::VecDeque<baton_store::EventRecord>,
        catch_up: bool,
    }
    let start = Follow {
        app,
        rx,
        closed,
        last,
        conversation,
        pending: std::collections::VecDeque::new(),
        catch_up: true,
    };
    let stream = futures_util::stream::unfold(start, move |mut f| async move {
        loop {
            if let Some(e) = f.pending.pop_front() {
                if e.id <= f.last {
                    continue;
                }
                f.last = e.id;
                if customer_view && e.kind == baton_store::EventKind::Note {
                    continue;
                }
                let event = Event::default()
                    .id(e.id.to_string())
                    .event(e.kind.as_str())
                    .json_data(&e)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable event"));
                return Some((Ok::<_, std::convert::Infallible>(event), f));
            }
            if *f.closed.borrow() {
                return None;
            }
            if f.catch_up {
                match f
                    .app
                    .service
                    .events_after(f.last, f.conversation.as_deref(), 200)
                    .await
                {
                    Ok(batch) if !batch.is_empty() => {
                        f.pending.extend(batch);
                        continue;
                    }
                    Ok(_) => f.catch_up = false,
                    Err(e) => {
                        tracing::error!(error = %e, "event stream read failed");
                        return None;
                    }
                }
            }
            tokio::select! {
                got = f.rx.recv() => match got {
                    Ok(e) => f.pending.push_back((*e).clone()),
                    Err(RecvError::Lagged(_)) => f.catch_up = true,
                    Err(RecvError::Closed) => return None,
                },
                _ = f.closed.changed() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

pub async fn list_queues(State(app): St) -> AppResult<Json<Value>> {
    let now = app.service.now();
    let day_start = now - now.rem_euclid(86_400_000);
    let policy = app.service.engine().policy();
    let stats = app.service.queue_stats().await?;
    let mut out = Vec::new();
    for (q, stats) in policy.queues().iter().zip(stats) {
        let sla_ms = i64::try_from(q.sla_seconds).unwrap_or(i64::MAX / 1000) * 1000;
        let (answered, in_sla) = app
            .service
            .answered_since(&q.name, day_start, sla_ms)
            .await?;
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

pub async fn get_queue(State(app): St, ApiPath(name): ApiPath<String>) -> AppResult<Json<Value>> {
    let queue = app.service.engine().policy().queue(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no queue `{name}`: the policy's queues are listed at GET /v1/queues"
        ))
    })?;
    let now = app.service.now();
    let waiting = app.service.waiting(&name).await?;
    let items: Vec<Value> = waiting
        .iter()
        .map(|(r, wait)| {
            let waited = (now - r.queued_at.unwrap_or(now)) / 1000;
            json!({
                "position": wait.map(|(p, _)| p),
                "conversation_id": r.id,
                "state": r.state,
                "priority": r.priority,
                "waiting_seconds": waited,
                "estimated_wait_seconds": wait.map(|(_, w)| w.quoted_seconds),
                "sla_remaining_seconds": i64::try_from(queue.sla_seconds).unwrap_or(i64::MAX) - waited,
                "offered_to": (r.state == baton_domain::HandoffState::Offered).then_some(r.agent_id.clone()),
                "customer": {"name": r.customer.name, "tier": r.customer.tier},
                "intent": r.brief.as_ref().map(|b| b.intent.clone()),
                "reasons": r.brief.as_ref().map(|b| b.reasons.iter().map(|x| x.code).collect::<Vec<_>>()),
            })
        })
        .collect();
    let stats = app.service.queue_stat(&name).await?;
    Ok(Json(
        json!({"name": queue.name, "sla_seconds": queue.sla_seconds, "skills": queue.skills.iter().map(ToString::to_string).collect::<Vec<_>>(), "stats": stats, "waiting": items}),
    ))
}

pub async fn upsert_agent(
    State(app): St,
    Checked(agent, warnings): Checked<Agent>,
) -> AppResult<Json<AgentAnswer>> {
    let agent = app.service.upsert_agent(agent).await?;
    Ok(Json(AgentAnswer { agent, warnings }))
}

/// The agent as stored, with the input fields that were ignored.
#[derive(serde::Serialize)]
pub struct AgentAnswer {
    #[serde(flatten)]
    agent: Agent,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
pub struct PresenceRequest {
    status: AgentStatus,
}

/// Sets an agent's presence: `online` takes new conversations, `away` keeps current ones,
/// `offline` also releases those waiting for the agent as their dedicated agent.
pub async fn set_presence(
    State(app): St,
    ApiPath(agent): ApiPath<String>,
    caller: Caller,
    ApiJson(req): ApiJson<PresenceRequest>,
) -> AppResult<Json<baton_core::answers::PresenceSet>> {
    caller.acts_as(&agent)?;
    Ok(Json(app.service.set_presence(agent, req.status).await?))
}

pub async fn list_agents(State(app): St) -> AppResult<Json<Value>> {
    let items: Vec<Value> = app
        .service
        .agents()
        .await?
        .into_iter()
        .map(|(a, held)| {
            let mut v = json!(a);
            v["assigned"] = json!(held);
            v
        })
        .collect();
    Ok(Json(json!({"agents": items})))
}
