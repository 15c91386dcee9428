//! Request handlers: extract, call the handoff service, map the answer. None of them touches
//! the store or routing; the service does.

use crate::auth::Who;
use crate::error::ApiError;
use crate::openapi::{Conflict, NotFound};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use baton_core::answers::{
    Claimed, Created, Declined, FollowedUp, HandedBack, Noted, PresenceSet, Replied, Resolved,
    Transferred, TurnAnswer,
};
use baton_core::bus::Scope;
use baton_core::{Action, Actor};
use baton_domain::{
    Agent, AgentStatus, Brief, ConversationId, Customer, Decision, HandoffState, ReasonCode, Role,
    Signal, Turn,
};
use baton_route::dispatch::{Explanation, QueueStats};
use baton_store::{EventRecord, SlaTimer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

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

/// The liveness answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: String,
}

/// Liveness: the server answers.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "The server is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// This document: OpenAPI 3.1, generated from the handlers and their types.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
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

/// A new conversation; every field is optional, and so is the body.
#[derive(Deserialize, Default, ToSchema)]
pub struct NewConversation {
    /// The conversation's id in the client's systems; generated when absent.
    #[serde(default)]
    id: Option<String>,
    /// What is known about the customer.
    #[serde(default)]
    customer: Customer,
    /// The channel it arrived on (`chat`, `email`, `voice`...).
    #[serde(default)]
    channel: Option<String>,
}

/// Creates a conversation (the AI handles it until a turn escalates).
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations",
    request_body(content = Option<NewConversation>, description = "Optional: an empty body creates a conversation with a generated id"),
    responses(
        (status = 201, description = "Created", body = Created),
        (status = 409, response = Conflict),
    ))]
pub async fn create_conversation(
    State(app): St,
    Who(actor): Who,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> AppResult<(StatusCode, Json<Created>)> {
    let body = body.map_err(|e| ApiError::BadRequest {
        status: e.status(),
        code: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "invalid_request"
        },
        message: e.body_text(),
    })?;
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
        .create_conversation(&actor, id, req.customer, req.channel)
        .await?;
    created.warnings = warnings;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Posts a turn (customer, AI or agent) and answers with the policy's decision: whether to
/// escalate, why, where the handoff stands and what to tell the customer. A retry with the same
/// `client_turn_id` gets the same answer and changes nothing.
#[utoipa::path(post, path = "/v1/conversations/{id}/turns", tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = Turn,
    responses(
        (status = 200, description = "The decision on the turn", body = TurnAnswer),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn post_turn(
    State(app): St,
    Who(actor): Who,
    ConversationPath(id): ConversationPath,
    Checked(turn, warnings): Checked<Turn>,
) -> AppResult<Json<TurnAnswer>> {
    let mut answer = app.service.post_turn(&actor, id, turn).await?;
    answer.warnings = warnings;
    Ok(Json(answer))
}

/// A conversation with its turns, decisions, events and SLA timers.
#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    /// Its id.
    id: String,
    /// The customer.
    customer: Customer,
    /// The channel, when known.
    channel: Option<String>,
    /// Where the handoff stands.
    state: HandoffState,
    /// The queue, once routed.
    queue: Option<String>,
    /// Priority in the queue.
    priority: i64,
    /// The owning agent, or the agent it is offered to.
    agent_id: Option<String>,
    /// The resolution category, once resolved.
    disposition: Option<String>,
    /// The latest brief, once escalated.
    brief: Option<Brief>,
    /// Whether the AI may answer the customer now.
    ai_may_reply: bool,
    /// The turns, oldest first.
    turns: Vec<TurnView>,
    /// The decision of every turn that has one, oldest first.
    #[schema(value_type = Vec<Decision>)]
    decisions: Vec<Value>,
    /// The events, oldest first.
    events: Vec<EventRecord>,
    /// The SLA timers.
    sla: Vec<SlaTimer>,
    /// Place in line (1 is next), while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
    /// The wait quoted to the customer, seconds, while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    estimated_wait_seconds: Option<u64>,
}

/// A stored turn with its signals and decision.
#[derive(Serialize, ToSchema)]
pub struct TurnView {
    /// The turn's 0-based index.
    turn: i64,
    /// Who wrote it.
    role: Role,
    /// What was written.
    text: String,
    /// The turn as posted.
    body: Turn,
    /// The detectors' signals on it.
    #[schema(value_type = Option<Vec<Signal>>)]
    signals: Option<Value>,
    /// The policy's decision on it.
    #[schema(value_type = Option<Decision>)]
    decision: Option<Value>,
    /// When it was stored (ms since the epoch).
    at_ms: i64,
}

/// A conversation: its state, customer, brief, turns with their signals and decisions,
/// events, SLA timers and, while waiting, its place in line.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 404, response = NotFound),
    ))]
pub async fn get_conversation(
    State(app): St,
    Who(actor): Who,
    ConversationPath(id): ConversationPath,
) -> AppResult<Json<ConversationView>> {
    let d = app.service.conversation_details(&actor, &id).await?;
    let record = d.record;
    let (position, estimated_wait_seconds) = match d.wait {
        Some((p, w)) => (Some(p), Some(w.quoted_seconds)),
        None => (None, None),
    };
    Ok(Json(ConversationView {
        ai_may_reply: record.state.ai_may_reply(),
        id: record.id.into(),
        customer: record.customer,
        channel: record.channel,
        state: record.state,
        queue: record.queue.map(String::from),
        priority: record.priority,
        agent_id: record.agent_id.map(String::from),
        disposition: record.disposition,
        brief: record.brief,
        decisions: d.turns.iter().filter_map(|t| t.decision.clone()).collect(),
        turns: d
            .turns
            .into_iter()
            .map(|t| TurnView {
                turn: t.seq,
                role: t.turn.role,
                text: t.turn.text.clone(),
                body: t.turn,
                signals: t.signals,
                decision: t.decision,
                at_ms: t.created_at,
            })
            .collect(),
        events: d.events,
        sla: d.slas,
        position,
        estimated_wait_seconds,
    }))
}

/// The brief's format.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BriefQuery {
    /// `json` (the default) or `markdown` (also `md`).
    #[serde(default)]
    format: Option<String>,
}

/// The latest handoff brief: JSON, or Markdown with `?format=markdown`.
#[utoipa::path(get, path = "/v1/conversations/{id}/brief", tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id"), BriefQuery),
    responses(
        (status = 200, description = "The brief", content(
            (Brief = "application/json"),
            (String = "text/markdown"),
        )),
        (status = 404, response = NotFound),
    ))]
pub async fn get_brief(
    State(app): St,
    Who(actor): Who,
    ConversationPath(id): ConversationPath,
    ApiQuery(q): ApiQuery<BriefQuery>,
) -> AppResult<axum::response::Response> {
    let record = app.service.conversation(&actor, Action::Read, &id).await?;
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

/// An agent's action on a conversation.
#[derive(Deserialize, ToSchema)]
pub struct AgentAction {
    /// The agent acting (a console user may act only as themselves; a supervisor as anyone).
    agent_id: String,
    /// The message (`reply`), the note (`notes`) or what to tell the customer (`handback`).
    #[serde(default)]
    text: Option<String>,
    /// The resolution category (`resolve`).
    #[serde(default)]
    disposition: Option<String>,
}

/// Claims a conversation: accepts the offer made to this agent, or takes a waiting one the
/// agent is eligible for (capacity permitting).
#[utoipa::path(post, path = "/v1/conversations/{id}/claim", tag = "agents",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = AgentAction,
    responses(
        (status = 200, description = "The agent owns the conversation", body = Claimed),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn claim(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Who(actor): Who,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Claimed>> {
    Ok(Json(app.service.claim(&actor, id, req.agent_id).await?))
}

/// Declines the conversation offered to this agent: it goes to the next agent.
#[utoipa::path(post, path = "/v1/conversations/{id}/decline", tag = "agents",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = AgentAction,
    responses(
        (status = 200, description = "Declined", body = Declined),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn decline(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Who(actor): Who,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Declined>> {
    Ok(Json(app.service.decline(&actor, id, req.agent_id).await?))
}

/// The owning agent's message to the customer (`text`).
#[utoipa::path(post, path = "/v1/conversations/{id}/reply", tag = "agents",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = AgentAction,
    responses(
        (status = 200, description = "Sent", body = Replied),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn reply(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Who(actor): Who,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Replied>> {
    let text = req.text.unwrap_or_default();
    Ok(Json(
        app.service.reply(&actor, id, req.agent_id, text).await?,
    ))
}

/// An internal note (`text`), never shown to the customer.
#[utoipa::path(post, path = "/v1/conversations/{id}/notes", tag = "agents",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = AgentAction,
    responses(
        (status = 200, description = "Noted", body = Noted),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn note(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Who(actor): Who,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Noted>> {
    let text = req.text.unwrap_or_default();
    Ok(Json(
        app.service.note(&actor, id, req.agent_id, text).await?,
    ))
}

/// The owning agent resolves the conversation with a `disposition`; the AI may answer again.
#[utoipa::path(post, path = "/v1/conversations/{id}/resolve", tag = "agents",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = AgentAction,
    responses(
        (status = 200, description = "Resolved", body = Resolved),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn resolve(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Who(actor): Who,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<Resolved>> {
    let disposition = req.disposition.unwrap_or_default();
    Ok(Json(
        app.service
            .resolve(&actor, id, req.agent_id, disposition)
            .await?,
    ))
}

/// The owning agent hands the conversation back to the AI (`text`: what to tell the
/// customer, else the policy's `messages.handback`).
#[utoipa::path(post, path = "/v1/conversations/{id}/handback", tag = "agents",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = AgentAction,
    responses(
        (status = 200, description = "Handed back", body = HandedBack),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn handback(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Who(actor): Who,
    ApiJson(req): ApiJson<AgentAction>,
) -> AppResult<Json<HandedBack>> {
    Ok(Json(
        app.service
            .handback(&actor, id, req.agent_id, req.text)
            .await?,
    ))
}

/// A transfer to another queue (and agent).
#[derive(Deserialize, ToSchema)]
pub struct TransferRequest {
    /// The owning agent.
    agent_id: String,
    /// The queue to transfer to.
    queue: String,
    /// A colleague to offer it to first.
    #[serde(default)]
    to_agent: Option<String>,
    /// A note for the next agent.
    #[serde(default)]
    text: Option<String>,
}

/// The owning agent transfers the conversation to another queue (and, with `to_agent`, to a
/// colleague, who is waited for first).
#[utoipa::path(post, path = "/v1/conversations/{id}/transfer", tag = "agents",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = TransferRequest,
    responses(
        (status = 200, description = "Transferred", body = Transferred),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn transfer(
    State(app): St,
    ConversationPath(id): ConversationPath,
    Who(actor): Who,
    ApiJson(req): ApiJson<TransferRequest>,
) -> AppResult<Json<Transferred>> {
    Ok(Json(
        app.service
            .transfer(&actor, id, req.agent_id, req.queue, req.to_agent, req.text)
            .await?,
    ))
}

/// The async path the customer chose.
#[derive(Deserialize, ToSchema)]
pub struct FollowupRequest {
    /// `email`, `callback` or `meeting` (the policy's `routing.async_options`).
    pub(crate) via: String,
    /// Where to reach the customer (an email address or a phone number).
    #[serde(default)]
    pub(crate) contact: Option<String>,
}

/// The customer chooses the async path instead of waiting: an email follow-up, a callback or a
/// meeting.
#[utoipa::path(post, path = "/v1/conversations/{id}/followup", tag = "conversations",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = FollowupRequest,
    responses(
        (status = 200, description = "The follow-up is recorded", body = FollowedUp),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn followup(
    State(app): St,
    Who(actor): Who,
    ConversationPath(id): ConversationPath,
    ApiJson(req): ApiJson<FollowupRequest>,
) -> AppResult<Json<FollowedUp>> {
    Ok(Json(
        app.service
            .followup(&actor, id, req.via, req.contact)
            .await?,
    ))
}

/// Why a conversation is in its queue, and every agent's eligibility, in the order they would
/// be chosen.
#[utoipa::path(get, path = "/v1/conversations/{id}/explain", tag = "queues",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "Where it is and why", body = Explanation),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn explain(
    State(app): St,
    Who(actor): Who,
    ConversationPath(id): ConversationPath,
) -> AppResult<Json<Explanation>> {
    Ok(Json(app.service.explain(&actor, &id).await?))
}

/// Which events to stream.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this conversation's events.
    #[serde(default)]
    conversation: Option<String>,
    /// Start after this event id (the `Last-Event-ID` header wins); from now on when neither
    /// is given.
    #[serde(default)]
    after: Option<i64>,
    /// `all` (the default) or `handoff`: every event but the turns of conversations the AI
    /// handles on its own, what an agent's console follows.
    #[serde(default)]
    scope: Option<String>,
}

/// Server-sent events: every event (turns, transitions, routing, SLA warnings and breaches,
/// wait updates, notes, ratings) after `after` or the `Last-Event-ID` header, else from now on;
/// of one conversation with `?conversation=ID`. Each event's SSE id is its sequence number,
/// so a reconnect resumes where it stopped.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(
        EventQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "Server-sent events: each event's `id` is its sequence number, `event` its kind (`EventKind`) and `data` one `EventRecord` as JSON", content_type = "text/event-stream", body = String),
    ))]
pub async fn event_stream(
    State(app): St,
    Who(actor): Who,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> AppResult<impl IntoResponse> {
    let conversation = q.conversation.map(|c| parse_id(&c)).transpose()?;
    let after = q.after.filter(|a| *a >= 0);
    let scope = match q.scope.as_deref() {
        None | Some("all") => Scope::All,
        Some("handoff") => Scope::Handoff,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown scope `{other}`: use `all` or `handoff`"
            )))
        }
    };
    Ok(stream_events(
        app,
        &headers,
        after,
        conversation,
        scope,
        actor,
    ))
}

/// The event stream after `after` (or the `Last-Event-ID` header; from now on when neither is
/// given), of one conversation or all in `scope`, of what `viewer` may see (the service decides
/// per conversation, again after each transition or routing step). The stream
/// follows the service's bus: an idle stream costs nothing between events, and ends when the
/// server shuts down.
pub(crate) fn stream_events(
    app: Arc<AppState>,
    headers: &axum::http::HeaderMap,
    after: Option<i64>,
    conversation: Option<ConversationId>,
    scope: Scope,
    viewer: Actor,
) -> impl IntoResponse {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let bus = app.service.bus();
    let rx = bus.subscribe(conversation.as_ref(), scope);
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
        conversation: Option<ConversationId>,
        pending: std::collections::VecDeque<baton_store::EventRecord>,
        catch_up: bool,
        viewer: Actor,
        /// What the viewer may see, per conversation: (events, notes).
        seen: std::collections::HashMap<ConversationId, (bool, bool)>,
    }
    let start = Follow {
        app,
        rx,
        closed,
        last,
        conversation,
        pending: std::collections::VecDeque::new(),
        catch_up: true,
        viewer,
        seen: std::collections::HashMap::new(),
    };
    let stream = futures_util::stream::unfold(start, move |mut f| async move {
        loop {
            if let Some(e) = f.pending.pop_front() {
                if e.id <= f.last {
                    continue;
                }
                f.last = e.id;
                let moved = matches!(
                    e.kind,
                    baton_store::EventKind::Transition | baton_store::EventKind::Routing
                );
                let cached = f.seen.get(&e.conversation_id).copied().filter(|_| !moved);
                let (events, notes) = match cached {
                    Some(v) => v,
                    None => {
                        let v = match f
                            .app
                            .service
                            .visibility(&f.viewer, &e.conversation_id)
                            .await
                        {
                            Ok(v) => v,
                            Err(err) => {
                                tracing::error!(error = %err, "event stream visibility failed");
                                return None;
                            }
                        };
                        if f.seen.len() >= STREAM_VISIBILITY_CACHE {
                            f.seen.clear();
                        }
                        f.seen.insert(e.conversation_id.clone(), v);
                        v
                    }
                };
                let visible = if e.kind == baton_store::EventKind::Note {
                    notes
                } else {
                    events
                };
                if !visible {
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
                    .events_after(f.last, f.conversation.as_ref(), 200)
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

/// How many conversations an event stream remembers the viewer's rights on before it starts
/// over (each is asked again of the service when next seen).
const STREAM_VISIBILITY_CACHE: usize = 10_000;

/// Every queue of the policy with its live figures.
#[derive(Serialize, ToSchema)]
pub struct QueueList {
    /// In policy order.
    queues: Vec<QueueSummary>,
}

/// One queue's live figures.
#[derive(Serialize, ToSchema)]
pub struct QueueSummary {
    /// The queue's name.
    name: String,
    /// Skills an agent needs (`name` or `name>=level`).
    skills: Vec<String>,
    /// The queue's SLA: seconds to the first human response.
    sla_seconds: u64,
    /// Whether the queue is open now (business hours).
    open: bool,
    /// Conversations waiting.
    waiting: usize,
    /// Longest current wait, whole seconds.
    longest_wait_seconds: f64,
    /// Online agents with the queue's skills and free capacity.
    agents_available: usize,
    /// Online agents with the queue's skills.
    agents_online: usize,
    /// Conversations assigned today (UTC).
    answered_today: u64,
    /// Share of today's assigned conversations assigned within the SLA; null before any.
    service_level_today: Option<f64>,
    /// Mean handle time used for estimates, seconds.
    handle_seconds: f64,
}

/// Every queue with its live figures: waiting, longest wait, agents, today's service level.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses(
        (status = 200, description = "The queues", body = QueueList),
    ))]
pub async fn list_queues(State(app): St, Who(actor): Who) -> AppResult<Json<QueueList>> {
    let now = app.service.now();
    let day_start = now - now.rem_euclid(86_400_000);
    let policy = app.service.engine().policy();
    let stats = app.service.queue_stats(&actor).await?;
    let mut queues = Vec::new();
    for (q, stats) in policy.queues().iter().zip(stats) {
        let sla_ms = i64::try_from(q.sla_seconds).unwrap_or(i64::MAX / 1000) * 1000;
        let (answered, in_sla) = app
            .service
            .answered_since(&q.name, day_start, sla_ms)
            .await?;
        let open = policy.schedule(&q.name).is_none_or(|s| s.is_open(now));
        queues.push(QueueSummary {
            name: q.name.clone(),
            skills: q.skills.iter().map(ToString::to_string).collect(),
            sla_seconds: q.sla_seconds,
            open,
            waiting: stats.waiting,
            longest_wait_seconds: stats.longest_wait_seconds.floor(),
            agents_available: stats.agents_available,
            agents_online: stats.agents_online,
            answered_today: answered,
            service_level_today: (answered > 0).then(|| in_sla as f64 / answered as f64),
            handle_seconds: stats.handle_seconds,
        });
    }
    Ok(Json(QueueList { queues }))
}

/// One queue: its settings, live figures and who waits in it.
#[derive(Serialize, ToSchema)]
pub struct QueueDetail {
    /// The queue's name.
    name: String,
    /// The queue's SLA: seconds to the first human response.
    sla_seconds: u64,
    /// Skills an agent needs (`name` or `name>=level`).
    skills: Vec<String>,
    /// Live figures.
    stats: QueueStats,
    /// The conversations waiting, in line order.
    waiting: Vec<WaitingItem>,
}

/// A conversation waiting in a queue.
#[derive(Serialize, ToSchema)]
pub struct WaitingItem {
    /// Place in line (1 is next); null when routing does not rank it (e.g. offered).
    position: Option<usize>,
    /// The conversation.
    conversation_id: String,
    /// `queued` or `offered`.
    state: HandoffState,
    /// Priority in the queue.
    priority: i64,
    /// Seconds since it joined the queue.
    waiting_seconds: i64,
    /// The wait quoted to the customer, seconds.
    estimated_wait_seconds: Option<u64>,
    /// Seconds left before the SLA is breached (negative once breached).
    sla_remaining_seconds: i64,
    /// The agent it is offered to, while offered.
    offered_to: Option<String>,
    /// Who waits.
    customer: WaitingCustomer,
    /// The brief's intent.
    intent: Option<String>,
    /// The brief's reason codes.
    reasons: Option<Vec<ReasonCode>>,
    /// The same reasons in words, in the same order ("a refund request").
    reasons_in_words: Option<Vec<String>>,
}

/// The reasons of a conversation's brief in words, in the brief's order.
pub fn reasons_in_words(brief: Option<&baton_domain::Brief>) -> Option<Vec<String>> {
    brief.map(|b| b.reasons.iter().map(|r| r.text.clone()).collect())
}

/// The customer of a waiting conversation.
#[derive(Serialize, ToSchema)]
pub struct WaitingCustomer {
    /// Name.
    name: Option<String>,
    /// Tier.
    tier: Option<String>,
}

/// A queue: its settings, live figures and the conversations waiting in it.
#[utoipa::path(get, path = "/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "The queue's name, as in the policy")),
    responses(
        (status = 200, description = "The queue", body = QueueDetail),
        (status = 404, response = NotFound),
    ))]
pub async fn get_queue(
    State(app): St,
    Who(actor): Who,
    ApiPath(name): ApiPath<String>,
) -> AppResult<Json<QueueDetail>> {
    let queue = app.service.engine().policy().queue(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no queue `{name}`: the policy's queues are listed at GET /v1/queues"
        ))
    })?;
    let now = app.service.now();
    let waiting = app.service.waiting(&name).await?;
    let items = waiting
        .iter()
        .map(|(r, wait)| {
            let waited = (now - r.queued_at.unwrap_or(now)) / 1000;
            WaitingItem {
                position: wait.map(|(p, _)| p),
                conversation_id: r.id.as_str().to_owned(),
                state: r.state,
                priority: r.priority,
                waiting_seconds: waited,
                estimated_wait_seconds: wait.map(|(_, w)| w.quoted_seconds),
                sla_remaining_seconds: i64::try_from(queue.sla_seconds).unwrap_or(i64::MAX)
                    - waited,
                offered_to: if r.state == HandoffState::Offered {
                    r.agent_id.as_ref().map(|a| a.as_str().to_owned())
                } else {
                    None
                },
                customer: WaitingCustomer {
                    name: r.customer.name.clone(),
                    tier: r.customer.tier.clone(),
                },
                intent: r.brief.as_ref().map(|b| b.intent.clone()),
                reasons: r
                    .brief
                    .as_ref()
                    .map(|b| b.reasons.iter().map(|x| x.code).collect()),
                reasons_in_words: reasons_in_words(r.brief.as_ref()),
            }
        })
        .collect();
    let stats = app.service.queue_stat(&actor, &name).await?;
    Ok(Json(QueueDetail {
        name: queue.name.clone(),
        sla_seconds: queue.sla_seconds,
        skills: queue.skills.iter().map(ToString::to_string).collect(),
        stats,
        waiting: items,
    }))
}

/// Creates or replaces an agent (skills, languages, capacity, presence).
#[utoipa::path(post, path = "/v1/agents", tag = "agents",
    request_body = Agent,
    responses(
        (status = 200, description = "The agent as stored", body = AgentAnswer),
        (status = 409, response = Conflict),
    ))]
pub async fn upsert_agent(
    State(app): St,
    Who(actor): Who,
    Checked(agent, warnings): Checked<Agent>,
) -> AppResult<Json<AgentAnswer>> {
    let agent = app.service.upsert_agent(&actor, agent).await?;
    Ok(Json(AgentAnswer { agent, warnings }))
}

/// The agent as stored, with the input fields that were ignored.
#[derive(Serialize, ToSchema)]
pub struct AgentAnswer {
    #[serde(flatten)]
    agent: Agent,
    /// Input fields that were ignored, so a typo is never silent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// A presence change.
#[derive(Deserialize, ToSchema)]
pub struct PresenceRequest {
    /// The new presence.
    status: AgentStatus,
}

/// Sets an agent's presence: `online` takes new conversations, `away` keeps current ones,
/// `offline` also releases those waiting for the agent as their dedicated agent.
#[utoipa::path(post, path = "/v1/agents/{agent}/presence", tag = "agents",
    params(("agent" = String, Path, description = "The agent's id")),
    request_body = PresenceRequest,
    responses(
        (status = 200, description = "The new presence", body = PresenceSet),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn set_presence(
    State(app): St,
    ApiPath(agent): ApiPath<String>,
    Who(actor): Who,
    ApiJson(req): ApiJson<PresenceRequest>,
) -> AppResult<Json<PresenceSet>> {
    Ok(Json(
        app.service.set_presence(&actor, agent, req.status).await?,
    ))
}

/// Every agent with their load.
#[derive(Serialize, ToSchema)]
pub struct AgentList {
    /// The agents.
    agents: Vec<AgentWithLoad>,
}

/// An agent with the number of conversations they hold.
#[derive(Serialize, ToSchema)]
pub struct AgentWithLoad {
    #[serde(flatten)]
    agent: Agent,
    /// Conversations offered to or assigned to the agent now.
    assigned: u32,
}

/// Every agent, with the conversations each holds.
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    responses(
        (status = 200, description = "The agents", body = AgentList),
    ))]
pub async fn list_agents(State(app): St, Who(actor): Who) -> AppResult<Json<AgentList>> {
    let agents = app
        .service
        .agents(&actor)
        .await?
        .into_iter()
        .map(|(agent, assigned)| AgentWithLoad { agent, assigned })
        .collect();
    Ok(Json(AgentList { agents }))
}

/// Which audit lines to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only lines with ids below this (the next page: the last id of the previous one).
    #[serde(default)]
    before: Option<i64>,
    /// At most this many lines, 1 to 1,000 (default 100).
    #[serde(default)]
    limit: Option<u32>,
}

/// The audit log, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// The lines.
    entries: Vec<baton_store::AuditRecord>,
}

/// The audit log, newest first: sign-ins (and failed ones), account and key changes, and reads
/// of conversations by people who neither hold them nor were offered them. For supervisors
/// and admins.
#[utoipa::path(get, path = "/v1/audit", tag = "console",
    params(AuditQuery),
    responses(
        (status = 200, description = "The lines, newest first", body = AuditList),
    ))]
pub async fn audit(
    State(app): St,
    Who(actor): Who,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> AppResult<Json<AuditList>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "`limit` is {limit}: give 1 to 1000"
        )));
    }
    let entries = app.service.audit_log(&actor, q.before, limit).await?;
    Ok(Json(AuditList { entries }))
}
