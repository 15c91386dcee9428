//! The two faces people see, served by `baton serve` itself with assets built into the
//! binary: the agent console (`/console`) and the customer widget (`/widget`), plus the
//! endpoints only they use: sign-in, the supervisor overview, reply suggestions, and the
//! widget's conversation API with its demo assistant.
//!
//! The demo assistant answers from the small knowledge base shipped in `examples/kb` (built
//! in): the best-matching article by TF-IDF similarity, with that similarity reported as
//! `kb_similarity` and `ai_confidence`, so Baton judges its answers like any bot's.

use crate::auth::{self, Who};
use crate::error::ApiError;
use crate::handlers::{ApiJson, ApiPath};
use crate::openapi::{Conflict, NotFound, TooManyRequests, Unauthorized};
use crate::throttle::Key;
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use baton_core::answers::{FollowedUp, Rated, TurnAnswer};
use baton_core::{Action, Actor, KeyScope};
use baton_detect::kb::{Article, KnowledgeBase};
use baton_domain::{
    Agent, AgentId, AgentStatus, ConversationId, Customer, HandoffState, ReasonCode, Role, Turn,
    TurnAction,
};
use baton_route::dispatch::QueueStats;
use baton_store::SlaTimer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;

type AppResult<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

const CONSOLE_HTML: &str = include_str!("../assets/console.html");
const CONSOLE_JS: &str = include_str!("../assets/console.js");
const WIDGET_HTML: &str = include_str!("../assets/widget.html");
const WIDGET_JS: &str = include_str!("../assets/widget.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// The demo knowledge base's sources, from `examples/kb`.
const DEMO_KB: &[(&str, &str)] = &[
    ("account", include_str!("../../../examples/kb/account.md")),
    ("returns", include_str!("../../../examples/kb/returns.md")),
    ("shipping", include_str!("../../../examples/kb/shipping.md")),
    ("billing", include_str!("../../../examples/kb/billing.json")),
];

/// Below this similarity the demo assistant says it does not know.
const ANSWER_MIN_SIMILARITY: f64 = 0.12;

/// The demo knowledge base: index, and each article's title and text.
struct DemoKb {
    index: KnowledgeBase,
    texts: Vec<(String, String, String)>,
}

fn demo_kb() -> &'static DemoKb {
    static KB: OnceLock<DemoKb> = OnceLock::new();
    KB.get_or_init(|| {
        let mut texts = Vec::new();
        for (name, source) in DEMO_KB {
            if source.trim_start().starts_with('[') {
                let items: Vec<Value> = serde_json::from_str(source).unwrap_or_default();
                for item in items {
                    let text = |k: &str| item[k].as_str().unwrap_or_default().to_owned();
                    texts.push((text("id"), text("title"), text("body")));
                }
            } else {
                let mut lines = source.lines();
                let title = lines
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('#')
                    .trim()
                    .to_owned();
                let body = lines.collect::<Vec<_>>().join(" ").trim().to_owned();
                texts.push(((*name).to_owned(), title, body));
            }
        }
        let index = KnowledgeBase::build(
            texts
                .iter()
                .map(|(id, title, body)| {
                    (
                        Article {
                            id: id.clone(),
                            title: title.clone(),
                        },
                        format!("{title} {body}"),
                    )
                })
                .collect(),
        );
        DemoKb { index, texts }
    })
}

/// The best article for `text`: (similarity, id, title, body).
fn best_article(text: &str) -> Option<(f64, &'static str, &'static str, &'static str)> {
    let kb = demo_kb();
    let (score, article) = kb.index.best(text)?;
    let (id, title, body) = kb.texts.iter().find(|(id, ..)| *id == article.id)?;
    Some((score, id, title, body))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /console`: the agent console (it signs in first).
#[utoipa::path(get, path = "/console", tag = "console",
    responses((status = 200, description = "The console's page", content_type = "text/html", body = String)))]
pub async fn console_page() -> Html<&'static str> {
    Html(CONSOLE_HTML)
}

/// `GET /widget`: the customer widget.
#[utoipa::path(get, path = "/widget", tag = "widget",
    responses((status = 200, description = "The widget's page", content_type = "text/html", body = String)))]
pub async fn widget_page() -> Html<&'static str> {
    Html(WIDGET_HTML)
}

/// The built-in scripts and style sheet: `console.js`, `widget.js`, `style.css`.
#[utoipa::path(get, path = "/assets/{file}", tag = "console",
    params(("file" = String, Path, description = "`console.js`, `widget.js` or `style.css`")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/javascript"),
            (String = "text/css"),
        )),
        (status = 404, response = NotFound),
    ))]
pub async fn static_asset(ApiPath(file): ApiPath<String>) -> AppResult<Response> {
    match file.as_str() {
        "console.js" => Ok(asset("text/javascript; charset=utf-8", CONSOLE_JS)),
        "widget.js" => Ok(asset("text/javascript; charset=utf-8", WIDGET_JS)),
        "style.css" => Ok(asset("text/css; charset=utf-8", STYLE_CSS)),
        _ => Err(ApiError::NotFound(format!("no asset `{file}`"))),
    }
}

/// A console sign-in.
#[derive(Deserialize, ToSchema)]
pub struct Login {
    /// The agent's id (`agent_id`, as everywhere else; `id` still accepted).
    #[serde(alias = "id")]
    agent_id: String,
    /// The account's password.
    password: String,
}

/// A signed-in console user.
#[derive(Serialize, ToSchema)]
pub struct LoggedIn {
    /// The agent's id.
    id: String,
    /// `agent`, `supervisor` or `admin`.
    role: String,
}

/// `POST /v1/login`: checks the password and sets the session cookie.
#[utoipa::path(post, path = "/v1/login", tag = "console",
    request_body = Login,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = LoggedIn,
            headers(("Set-Cookie" = String, description = "`baton_session=...; Path=/; HttpOnly; SameSite=Strict`"))),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ))]
pub async fn login(
    State(app): St,
    auth::Peer(peer): auth::Peer,
    ApiJson(req): ApiJson<Login>,
) -> AppResult<Response> {
    let account = Key::Account(req.agent_id.clone());
    let mut keys = vec![account.clone()];
    keys.extend(peer.map(Key::Address));
    let mut now = app.service.now();
    let mut wait = app.throttle.wait(&keys, now);
    if wait > 0 {
        let hold = wait.min(crate::throttle::HOLD_MAX_MS);
        tokio::time::sleep(std::time::Duration::from_millis(hold.unsigned_abs())).await;
        now = app.service.now();
        wait = app.throttle.wait(&keys, now);
    }
    if wait > 0 {
        let seconds = u64::try_from(wait.div_euclid(1000) + 1).unwrap_or(1);
        tracing::warn!(agent = %req.agent_id, address = ?peer, seconds, "sign-in refused: waiting after failures");
        return Err(ApiError::TooManyRequests {
            retry_after: seconds,
            message: format!("too many failed sign-ins for this account or from this address: try again in {seconds} s"),
        });
    }
    let user = app.service.user(&req.agent_id).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = auth::check_password(req.password, hash).await;
    let from = peer.map_or_else(
        || "address:unknown".to_owned(),
        |ip| format!("address:{ip}"),
    );
    let Some(user) = user.filter(|_| ok) else {
        // The wait runs from the answer, not from the attempt: a slow hash shortens nothing.
        app.throttle.failed(&keys, app.service.now());
        tracing::warn!(agent = %req.agent_id, address = ?peer, "failed sign-in");
        app.service
            .record_audit(
                &from,
                "sign_in_failed",
                &req.agent_id,
                "unknown account or wrong password",
            )
            .await?;
        return Err(ApiError::BadRequest {
            status: StatusCode::UNAUTHORIZED,
            code: "bad_credentials",
            message: "unknown agent or wrong password".into(),
        });
    };
    app.throttle.succeeded(&[account]);
    app.service
        .record_audit(&from, "sign_in", &user.id, user.role.as_str())
        .await?;
    let token = auth::new_secret("bs");
    let expires = app.service.now() + auth::SESSION_HOURS * 3_600_000;
    app.service
        .create_session(&auth::digest(&token), &user.id, expires)
        .await?;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        auth::SESSION_COOKIE,
        auth::SESSION_HOURS * 3600,
        app.public.cookie_attributes()
    );
    let mut response = Json(LoggedIn {
        id: user.id,
        role: user.role.as_str().to_owned(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// The answer to a sign-out.
#[derive(Serialize, ToSchema)]
pub struct SignedOut {
    /// True.
    signed_out: bool,
}

/// `POST /v1/logout`: ends the session and clears the cookie.
#[utoipa::path(post, path = "/v1/logout", tag = "console",
    responses(
        (status = 200, description = "Signed out; the session cookie is cleared", body = SignedOut),
    ))]
pub async fn logout(State(app): St, headers: HeaderMap) -> AppResult<Response> {
    if let Some(token) = auth::session_token(&headers) {
        app.service.delete_session(&auth::digest(&token)).await?;
    }
    let mut response = Json(SignedOut { signed_out: true }).into_response();
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        auth::SESSION_COOKIE,
        app.public.cookie_attributes()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Me {
    /// A console user.
    SignedIn {
        /// The agent's id.
        id: String,
        /// `agent`, `supervisor` or `admin`.
        role: String,
        /// The agent, when one with this id exists.
        agent: Option<Agent>,
        /// The conversations the agent holds.
        conversations: Vec<String>,
    },
    /// No credentials exist yet: the server is open to everyone.
    Open {
        /// True.
        open: bool,
    },
}

/// `GET /v1/me`: who the session belongs to (401 when signed out).
#[utoipa::path(get, path = "/v1/me", tag = "console",
    responses(
        (status = 200, description = "The signed-in user, or `{\"open\": true}` on an open server", body = Me),
        (status = 401, response = Unauthorized),
    ),
    security((), ("session" = [])))]
pub async fn me(State(app): St, headers: HeaderMap) -> AppResult<Json<Me>> {
    match auth::caller(&app, &headers).await? {
        Some(Actor::User { id, role }) => {
            let role = role.as_str().to_owned();
            let agent = app.service.agent(&id).await.ok();
            // No conversation is held by an agent whose id does not parse.
            let conversations = match AgentId::parse(id.as_str()) {
                Ok(agent) => app
                    .service
                    .agent_conversations(&agent)
                    .await?
                    .into_iter()
                    .map(String::from)
                    .collect(),
                Err(_) => Vec::new(),
            };
            Ok(Json(Me::SignedIn {
                id,
                role,
                agent,
                conversations,
            }))
        }
        Some(Actor::Open) => Ok(Json(Me::Open { open: true })),
        _ => Err(ApiError::BadRequest {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "not signed in".into(),
        }),
    }
}

/// The supervisor's overview.
#[derive(Serialize, ToSchema)]
pub struct Supervisor {
    /// Every queue's live figures, in policy order.
    queues: Vec<QueueStats>,
    /// Every agent with their load.
    agents: Vec<AgentLoad>,
    /// The latest escalations, newest first (at most 20).
    recent_escalations: Vec<Escalation>,
    /// Running SLA timers that have breached.
    sla_breaches: Vec<SlaTimer>,
}

/// An agent's presence and load.
#[derive(Serialize, ToSchema)]
pub struct AgentLoad {
    /// The agent's id.
    id: AgentId,
    /// Display name.
    name: String,
    /// Presence.
    status: AgentStatus,
    /// Conversations held now.
    assigned: u32,
    /// Conversations the agent can hold at once.
    capacity: u32,
}

/// A recent escalation.
#[derive(Serialize, ToSchema)]
pub struct Escalation {
    /// The conversation.
    conversation_id: String,
    /// Where it stands now.
    state: HandoffState,
    /// Its queue.
    queue: Option<String>,
    /// The owning agent, or the one it is offered to.
    agent_id: Option<String>,
    /// The customer's name.
    customer: Option<String>,
    /// The brief's reason codes.
    reasons: Option<Vec<ReasonCode>>,
    /// The same reasons in words, in the same order.
    reasons_in_words: Option<Vec<String>>,
    /// The brief's summary.
    summary: Option<Vec<String>>,
}

/// `GET /v1/supervisor`: live queues, agents with their load, and recent escalations with
/// their reasons.
#[utoipa::path(get, path = "/v1/supervisor", tag = "console",
    responses(
        (status = 200, description = "The overview", body = Supervisor),
    ))]
pub async fn supervisor(State(app): St, Who(actor): Who) -> AppResult<Json<Supervisor>> {
    let recent = app.service.recent_escalations(&actor, 20).await?;
    let queues = app.service.queue_stats(&actor).await?;
    let agents = app
        .service
        .agents(&actor)
        .await?
        .into_iter()
        .map(|(a, assigned)| AgentLoad {
            id: a.id,
            name: a.name,
            status: a.status,
            assigned,
            capacity: a.capacity,
        })
        .collect();
    let recent_escalations = recent
        .into_iter()
        .map(|r| Escalation {
            conversation_id: r.id.into(),
            state: r.state,
            queue: r.queue.map(String::from),
            agent_id: r.agent_id.map(String::from),
            customer: r.customer.name,
            reasons: r
                .brief
                .as_ref()
                .map(|b| b.reasons.iter().map(|x| x.code).collect()),
            reasons_in_words: crate::handlers::reasons_in_words(r.brief.as_ref()),
            summary: r.brief.map(|b| b.summary),
        })
        .collect();
    let sla_breaches = app.service.open_sla_breaches(&actor).await?;
    Ok(Json(Supervisor {
        queues,
        agents,
        recent_escalations,
        sla_breaches,
    }))
}

/// Reply suggestions for the agent.
#[derive(Serialize, ToSchema)]
pub struct Assist {
    /// The warm introduction (once escalated), then an answer drafted from the best
    /// knowledge-base article.
    suggestions: Vec<Suggestion>,
    /// The knowledge-base articles behind the suggestions.
    kb_links: Vec<KbLink>,
}

/// What a suggestion is drawn from.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    /// The brief's warm introduction.
    WarmIntroduction,
    /// The best-matching knowledge-base article.
    KnowledgeBase,
}

/// A suggested message.
#[derive(Serialize, ToSchema)]
pub struct Suggestion {
    /// Where it comes from.
    kind: SuggestionKind,
    /// The text to send.
    text: String,
    /// The article, for `knowledge_base`.
    #[serde(skip_serializing_if = "Option::is_none")]
    article: Option<String>,
}

/// A knowledge-base article.
#[derive(Serialize, ToSchema)]
pub struct KbLink {
    /// The article's id.
    id: String,
    /// Its title.
    title: String,
    /// TF-IDF similarity to the customer's last message, in `[0, 1]`.
    similarity: f64,
}

/// `GET /v1/conversations/{id}/assist`: for the agent, the warm introduction, an answer drafted
/// from the best knowledge-base article for the customer's last message, and the article links.
#[utoipa::path(get, path = "/v1/conversations/{id}/assist", tag = "console",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "Suggestions", body = Assist),
        (status = 404, response = NotFound),
    ))]
pub async fn assist(
    State(app): St,
    Who(actor): Who,
    crate::handlers::ConversationPath(id): crate::handlers::ConversationPath,
) -> AppResult<Json<Assist>> {
    let record = app
        .service
        .conversation(&actor, Action::Explain, &id)
        .await?;
    let turns = app.service.turns(&actor, Action::Explain, &id).await?;
    let last = turns
        .iter()
        .rev()
        .find(|t| t.turn.role == Role::Customer && !t.turn.text.trim().is_empty())
        .map(|t| t.turn.text.clone())
        .unwrap_or_default();
    let mut suggestions = Vec::new();
    if let Some(b) = &record.brief {
        suggestions.push(Suggestion {
            kind: SuggestionKind::WarmIntroduction,
            text: b.warm_introduction.clone(),
            article: None,
        });
    }
    let mut kb_links = Vec::new();
    if let Some((score, article, title, body)) = best_article(&last) {
        if score >= ANSWER_MIN_SIMILARITY {
            suggestions.push(Suggestion {
                kind: SuggestionKind::KnowledgeBase,
                text: body.to_owned(),
                article: Some(article.to_owned()),
            });
            kb_links.push(KbLink {
                id: article.to_owned(),
                title: title.to_owned(),
                similarity: score,
            });
        }
    }
    Ok(Json(Assist {
        suggestions,
        kb_links,
    }))
}

// ----- the widget ------------------------------------------------------------------------

/// A widget conversation's start.
#[derive(Deserialize, Default, ToSchema)]
pub struct WidgetStart {
    /// The customer's name, if they gave one.
    #[serde(default)]
    name: Option<String>,
}

/// A new widget conversation.
#[derive(Serialize, ToSchema)]
pub struct WidgetStarted {
    /// The conversation.
    conversation_id: String,
    /// Its secret token, also set as the `baton_widget` cookie: a browser sends the cookie, a
    /// program the `X-Widget-Token` header (never in a URL, where proxies log it).
    token: String,
    /// The demo assistant's greeting.
    greeting: String,
}

/// The widget's caller: the customer of conversation `id`.
fn customer(id: &ConversationId) -> Actor {
    Actor::Customer {
        conversation: id.to_string(),
    }
}

/// The conversation a widget call's token opens: the `X-Widget-Token` header, else the
/// `baton_widget` cookie.
pub struct WidgetCaller(ConversationId);

impl FromRequestParts<Arc<AppState>> for WidgetCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let unauthorized = |message: &str| ApiError::BadRequest {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.to_owned(),
        };
        let token = parts
            .headers
            .get(auth::WIDGET_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| auth::cookie(&parts.headers, auth::WIDGET_COOKIE))
            .ok_or_else(|| unauthorized("no widget token: start a conversation with POST /widget/api/start (it sets the `baton_widget` cookie), or send the token in the `X-Widget-Token` header"))?;
        let id = app
            .service
            .widget_conversation(&auth::digest(&token))
            .await?
            .ok_or_else(|| {
                unauthorized(
                    "unknown widget token: start a conversation with POST /widget/api/start",
                )
            })?;
        Ok(WidgetCaller(id))
    }
}

/// A 429 for a widget call over its limit.
fn over_limit(what: &str, seconds: u64) -> ApiError {
    ApiError::TooManyRequests {
        retry_after: seconds,
        message: format!("too many {what}: try again in {seconds} s"),
    }
}

/// `POST /widget/api/start`: a new conversation for a customer, with its secret token.
#[utoipa::path(post, path = "/widget/api/start", tag = "widget",
    request_body = WidgetStart,
    responses(
        (status = 200, description = "The conversation and its token (also set as the `baton_widget` cookie)", body = WidgetStarted,
            headers(("Set-Cookie" = String, description = "`baton_widget=...; Path=/widget; HttpOnly; SameSite=Strict`"))),
        (status = 429, response = TooManyRequests),
    ))]
pub async fn widget_start(
    State(app): St,
    auth::Peer(peer): auth::Peer,
    ApiJson(req): ApiJson<WidgetStart>,
) -> AppResult<Response> {
    app.widget_limits
        .start(peer)
        .map_err(|s| over_limit("conversations started from this address", s))?;
    let customer = Customer {
        name: req.name.filter(|n| !n.trim().is_empty()),
        ..Customer::default()
    };
    let token = auth::new_secret("wt");
    let id = app
        .service
        .start_widget(customer, auth::digest(&token))
        .await?
        .id;
    let cookie = format!(
        "{}={token}; Path=/widget; HttpOnly; SameSite=Strict{}",
        auth::WIDGET_COOKIE,
        app.public.cookie_attributes()
    );
    let mut response = Json(WidgetStarted {
        conversation_id: id,
        token,
        greeting: "Hi! I'm the demo assistant. Ask me about shipping, returns, your account or payments, or talk to a person at any time.".to_owned(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// The customer's message or button press.
#[derive(Deserialize, ToSchema)]
pub struct WidgetSay {
    /// What the customer wrote.
    #[serde(default)]
    text: String,
    /// A button: `request_human` or `cancel_handoff`.
    #[serde(default)]
    action: Option<TurnAction>,
}

/// The decisions on the customer's turn and on the demo assistant's answer.
#[derive(Serialize, ToSchema)]
pub struct WidgetSaid {
    /// The decision on the customer's turn.
    customer: TurnAnswer,
    /// The decision on the demo assistant's answer; null when it did not answer.
    assistant: Option<TurnAnswer>,
}

/// `POST /widget/api/say`: the customer's message (or button: `request_human`,
/// `cancel_handoff`); while the AI may answer and no handoff is under way, the demo assistant
/// answers from the knowledge base.
#[utoipa::path(post, path = "/widget/api/say", tag = "widget",
    request_body = WidgetSay,
    responses(
        (status = 200, description = "The decisions", body = WidgetSaid),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ))]
pub async fn widget_say(
    State(app): St,
    auth::Peer(peer): auth::Peer,
    WidgetCaller(id): WidgetCaller,
    ApiJson(req): ApiJson<WidgetSay>,
) -> AppResult<Json<WidgetSaid>> {
    app.widget_limits
        .message(peer, id.as_str())
        .map_err(|s| over_limit("messages", s))?;
    let mut turn = Turn::new(Role::Customer, req.text.clone())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    turn.action = req.action;
    let answer = app
        .service
        .post_turn(&customer(&id), id.clone(), turn)
        .await?;
    let quiet = matches!(
        answer.state,
        HandoffState::AiActive | HandoffState::ReturnedToAi | HandoffState::Resolved
    );
    let mut reply = None;
    if quiet && !answer.escalate && req.action.is_none() {
        let (text, score, article) = match best_article(&req.text) {
            Some((score, article, _, body)) if score >= ANSWER_MIN_SIMILARITY => {
                (body.to_owned(), score, Some(article))
            }
            Some((score, ..)) => (
                "I'm not sure I know that one. Could you put it another way, or shall I bring in a person?".to_owned(),
                score,
                None,
            ),
            None => ("I'm not sure I know that one.".to_owned(), 0.0, None),
        };
        let mut ai = Turn::new(Role::Ai, text).map_err(|e| ApiError::invalid(e.to_string()))?;
        ai.kb_similarity = Some(score.clamp(0.0, 1.0));
        ai.ai_confidence = Some((score * 2.0).clamp(0.0, 1.0));
        ai.kb_articles = article.map(|a| vec![a.to_owned()]).unwrap_or_default();
        // The demo assistant is a bot of the server's own.
        let assistant = Actor::Key {
            scopes: vec![KeyScope::Bot],
        };
        reply = Some(app.service.post_turn(&assistant, id, ai).await?);
    }
    Ok(Json(WidgetSaid {
        customer: answer,
        assistant: reply,
    }))
}

/// The async path the customer chose.
#[derive(Deserialize, ToSchema)]
pub struct WidgetFollowup {
    /// `email`, `callback` or `meeting`.
    via: String,
    /// Where to reach the customer.
    #[serde(default)]
    contact: Option<String>,
}

/// `POST /widget/api/followup`: the customer takes the async path (email, callback, meeting)
/// instead of waiting.
#[utoipa::path(post, path = "/widget/api/followup", tag = "widget",
    request_body = WidgetFollowup,
    responses(
        (status = 200, description = "The follow-up is recorded", body = FollowedUp),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ))]
pub async fn widget_followup(
    State(app): St,
    WidgetCaller(id): WidgetCaller,
    ApiJson(req): ApiJson<WidgetFollowup>,
) -> AppResult<Json<FollowedUp>> {
    Ok(Json(
        app.service
            .followup(&customer(&id), id, req.via, req.contact)
            .await?,
    ))
}

/// The customer's rating.
#[derive(Deserialize, ToSchema)]
pub struct WidgetRate {
    /// 1 (poor) to 5 (excellent).
    score: u8,
}

/// `POST /widget/api/rate`: the customer's rating (1-5) of the human part.
#[utoipa::path(post, path = "/widget/api/rate", tag = "widget",
    request_body = WidgetRate,
    responses(
        (status = 200, description = "The rating is recorded", body = Rated),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ))]
pub async fn widget_rate(
    State(app): St,
    WidgetCaller(id): WidgetCaller,
    ApiJson(req): ApiJson<WidgetRate>,
) -> AppResult<Json<Rated>> {
    Ok(Json(app.service.rate(&customer(&id), id, req.score).await?))
}

/// What the customer may see of their conversation.
#[derive(Serialize, ToSchema)]
pub struct WidgetState {
    /// The conversation.
    conversation_id: ConversationId,
    /// Where the handoff stands.
    state: HandoffState,
    /// The messages, oldest first (no internal notes).
    messages: Vec<WidgetMessage>,
    /// The customer's rating, once given.
    csat: Option<u8>,
    /// Place in line (1 is next), while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
    /// The wait quoted, seconds, while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    estimated_wait_seconds: Option<u64>,
    /// The agent's name, once an agent holds the conversation (null when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    agent_name: Option<Option<String>>,
    /// The async paths offered instead of waiting, when the queue is closed or the wait is
    /// over its limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    alternatives: Option<Vec<String>>,
    /// The meeting link, with the alternatives (null when the policy has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    meeting_link: Option<Option<String>>,
    /// Whether to ask the customer for a rating now.
    ask_rating: bool,
}

/// A message as the customer sees it.
#[derive(Serialize, ToSchema)]
pub struct WidgetMessage {
    /// Who wrote it.
    role: Role,
    /// The role, or the agent's name.
    from: String,
    /// The text, or what the button did.
    text: String,
}

/// `GET /widget/api/state`: what the customer may see: messages, state, position and
/// wait, the agent's name, and whether to ask for a rating. No brief, no internal notes.
#[utoipa::path(get, path = "/widget/api/state", tag = "widget",
    params(("X-Widget-Token" = Option<String>, Header, description = "The conversation's token; else the `baton_widget` cookie")),
    responses(
        (status = 200, description = "The customer's view", body = WidgetState),
        (status = 401, response = Unauthorized),
    ))]
pub async fn widget_state(
    State(app): St,
    WidgetCaller(id): WidgetCaller,
) -> AppResult<Json<WidgetState>> {
    let actor = customer(&id);
    let record = app.service.conversation(&actor, Action::Read, &id).await?;
    let turns = app.service.turns(&actor, Action::Read, &id).await?;
    let mut names = std::collections::HashMap::new();
    let mut messages = Vec::new();
    for t in &turns {
        let mut who = t.turn.role.as_str().to_owned();
        if let Some(agent) = &t.turn.agent_id {
            if !names.contains_key(agent) {
                let name = app.service.agent(agent).await.ok().map(|a| a.name);
                names.insert(agent.clone(), name);
            }
            if let Some(Some(name)) = names.get(agent) {
                who = name.clone();
            }
        }
        let text = if t.turn.text.is_empty() {
            t.turn
                .action
                .map(|a| match a {
                    TurnAction::RequestHuman => "(asked for a person)".to_owned(),
                    TurnAction::CancelHandoff => "(went back to the assistant)".to_owned(),
                })
                .unwrap_or_default()
        } else {
            t.turn.text.clone()
        };
        messages.push(WidgetMessage {
            role: t.turn.role,
            from: who,
            text,
        });
    }
    let mut body = WidgetState {
        conversation_id: id.clone(),
        state: record.state,
        messages,
        csat: record.csat,
        position: None,
        estimated_wait_seconds: None,
        agent_name: None,
        alternatives: None,
        meeting_link: None,
        ask_rating: false,
    };
    if record.state.is_waiting() {
        if let Some((p, w)) = app.service.wait(&id).await {
            body.position = Some(p);
            body.estimated_wait_seconds = Some(w.quoted_seconds);
        }
    }
    if let Some(agent) = &record.agent_id {
        body.agent_name = Some(app.service.agent(agent.as_str()).await.ok().map(|a| a.name));
    }
    if record.state.is_waiting() {
        let policy = app.service.engine().policy();
        let closed = record
            .queue
            .as_ref()
            .and_then(|q| policy.schedule(q.as_str()))
            .is_some_and(|s| !s.is_open(app.service.now()));
        let max = record
            .queue
            .as_ref()
            .and_then(|q| policy.queue(q.as_str()))
            .and_then(|q| q.max_wait_seconds);
        let too_long = max.is_some_and(|m| body.estimated_wait_seconds.is_some_and(|w| w > m));
        if closed || too_long {
            body.alternatives = Some(policy.file.routing.async_options.clone());
            body.meeting_link = Some(policy.file.routing.meeting_link.clone());
        }
    }
    let had_human = turns.iter().any(|t| t.turn.role == Role::Agent);
    body.ask_rating = had_human
        && matches!(
            record.state,
            HandoffState::Resolved | HandoffState::ReturnedToAi
        )
        && body.csat.is_none();
    Ok(Json(body))
}

/// `GET /widget/api/events`: the widget's event stream (its own conversation; internal
/// notes left out), resumable like `/v1/events`.
#[utoipa::path(get, path = "/widget/api/events", tag = "widget",
    params(
        ("X-Widget-Token" = Option<String>, Header, description = "The conversation's token; else the `baton_widget` cookie"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "Server-sent events of the token's conversation, from its start, without internal notes: each event's `id` is its sequence number, `event` its kind and `data` one `EventRecord` as JSON", content_type = "text/event-stream", body = String),
        (status = 401, response = Unauthorized),
    ))]
pub async fn widget_events(
    State(app): St,
    headers: HeaderMap,
    WidgetCaller(id): WidgetCaller,
) -> AppResult<Response> {
    Ok(crate::handlers::stream_events(
        app,
        &headers,
        Some(0),
        Some(id.clone()),
        baton_core::bus::Scope::All,
        customer(&id),
    )
    .into_response())
}
