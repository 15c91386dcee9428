//! The two faces people see, served by `baton serve` itself with assets built into the
//! binary: the agent console (`/console`) and the customer widget (`/widget`), plus the
//! endpoints only they use: sign-in, the supervisor overview, reply suggestions, and the
//! widget's conversation API with its demo assistant.
//!
//! The demo assistant answers from the small knowledge base shipped in `examples/kb` (built
//! in): the best-matching article by TF-IDF similarity, with that similarity reported as
//! `kb_similarity` and `ai_confidence`, so Baton judges its answers like any bot's.

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::handlers::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use baton_detect::kb::{Article, KnowledgeBase};
use baton_domain::{ConversationId, Customer, HandoffState, Role, Turn, TurnAction};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

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
pub async fn console_page() -> Html<&'static str> {
    Html(CONSOLE_HTML)
}

/// `GET /widget`: the customer widget.
pub async fn widget_page() -> Html<&'static str> {
    Html(WIDGET_HTML)
}

/// The built-in scripts and style sheet.
pub async fn static_asset(ApiPath(file): ApiPath<String>) -> AppResult<Response> {
    match file.as_str() {
        "console.js" => Ok(asset("text/javascript; charset=utf-8", CONSOLE_JS)),
        "widget.js" => Ok(asset("text/javascript; charset=utf-8", WIDGET_JS)),
        "style.css" => Ok(asset("text/css; charset=utf-8", STYLE_CSS)),
        _ => Err(ApiError::NotFound(format!("no asset `{file}`"))),
    }
}

#[derive(Deserialize)]
pub struct Login {
    /// The agent's id (`agent_id`, as everywhere else; `id` still accepted).
    #[serde(alias = "id")]
    agent_id: String,
    password: String,
}

/// `POST /v1/login`: checks the password and sets the session cookie.
pub async fn login(State(app): St, ApiJson(req): ApiJson<Login>) -> AppResult<Response> {
    let user = app.service.user(&req.agent_id).await?;
    let ok = user
        .as_ref()
        .is_some_and(|u| auth::verify_password(&req.password, &u.password_hash));
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::BadRequest {
            status: StatusCode::UNAUTHORIZED,
            code: "bad_credentials",
            message: "unknown agent or wrong password".into(),
        });
    };
    let token = auth::new_secret("bs");
    let expires = app.service.now() + auth::SESSION_HOURS * 3_600_000;
    app.service
        .create_session(&auth::digest(&token), &user.id, expires)
        .await?;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        auth::SESSION_COOKIE,
        auth::SESSION_HOURS * 3600
    );
    let mut response = Json(json!({"id": user.id, "role": user.role.as_str()})).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /v1/logout`: ends the session and clears the cookie.
pub async fn logout(State(app): St, headers: HeaderMap) -> AppResult<Response> {
    if let Some(token) = auth::session_token(&headers) {
        app.service.delete_session(&auth::digest(&token)).await?;
    }
    let mut response = Json(json!({"signed_out": true})).into_response();
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::SESSION_COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `GET /v1/me`: who the session belongs to (401 when signed out).
pub async fn me(State(app): St, headers: HeaderMap) -> AppResult<Json<Value>> {
    match auth::caller(&app, &headers).await? {
        Caller::Agent { id, role } => {
            let agent = app.service.agent(&id).await.ok();
            let conversations = app.service.agent_conversations(&id).await?;
            Ok(Json(
                json!({"id": id, "role": role, "agent": agent, "conversations": conversations}),
            ))
        }
        Caller::Open => Ok(Json(json!({"open": true}))),
        _ => Err(ApiError::BadRequest {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "not signed in".into(),
        }),
    }
}

/// `GET /v1/supervisor`: live queues, agents with their load, and recent escalations with
/// their reasons.
pub async fn supervisor(State(app): St) -> AppResult<Json<Value>> {
    let queues = app.service.queue_stats().await?;
    let agents: Vec<Value> = app
        .service
        .agents()
        .await?
        .into_iter()
        .map(|(a, held)| {
            json!({"id": a.id, "name": a.name, "status": a.status, "assigned": held, "capacity": a.capacity})
        })
        .collect();
    let recent: Vec<Value> = app
        .service
        .recent_escalations(20)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "conversation_id": r.id,
                "state": r.state,
                "queue": r.queue,
                "agent_id": r.agent_id,
                "customer": r.customer.name,
                "reasons": r.brief.as_ref().map(|b| b.reasons.iter().map(|x| x.code).collect::<Vec<_>>()),
                "summary": r.brief.as_ref().map(|b| b.summary.clone()),
            })
        })
        .collect();
    let slas = app.service.open_sla_breaches().await?;
    Ok(Json(
        json!({"queues": queues, "agents": agents, "recent_escalations": recent, "sla_breaches": slas}),
    ))
}

/// `GET /v1/conversations/{id}/assist`: for the agent, the warm introduction, an answer drafted
/// from the best knowledge-base article for the customer's last message, and the article links.
pub async fn assist(
    State(app): St,
    crate::handlers::ConversationPath(id): crate::handlers::ConversationPath,
) -> AppResult<Json<Value>> {
    let record = app.service.conversation(&id).await?;
    let turns = app.service.turns(&id).await?;
    let last = turns
        .iter()
        .rev()
        .find(|t| t.turn.role == Role::Customer && !t.turn.text.trim().is_empty())
        .map(|t| t.turn.text.clone())
        .unwrap_or_default();
    let mut suggestions = Vec::new();
    if let Some(b) = &record.brief {
        suggestions.push(json!({"kind": "warm_introduction", "text": b.warm_introduction}));
    }
    let mut links = Vec::new();
    if let Some((score, article, title, body)) = best_article(&last) {
        if score >= ANSWER_MIN_SIMILARITY {
            suggestions.push(json!({"kind": "knowledge_base", "text": body, "article": article}));
            links.push(json!({"id": article, "title": title, "similarity": score}));
        }
    }
    Ok(Json(json!({"suggestions": suggestions, "kb_links": links})))
}

// ----- the widget ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct WidgetStart {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
pub struct WidgetToken {
    token: String,
}

async fn widget_conversation(app: &AppState, token: &str) -> AppResult<ConversationId> {
    let id = app
        .service
        .widget_conversation(&auth::digest(token))
        .await?
        .ok_or_else(|| ApiError::BadRequest {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "unknown widget token: start a conversation with POST /widget/api/start"
                .into(),
        })?;
    ConversationId::parse(id).map_err(|e| ApiError::Internal(e.into()))
}

/// `POST /widget/api/start`: a new conversation for a customer, with its secret token.
pub async fn widget_start(
    State(app): St,
    ApiJson(req): ApiJson<WidgetStart>,
) -> AppResult<Json<Value>> {
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
    Ok(Json(json!({
        "conversation_id": id,
        "token": token,
        "greeting": "Hi! I'm the demo assistant. Ask me about shipping, returns, your account or payments, or talk to a person at any time.",
    })))
}

#[derive(Deserialize)]
pub struct WidgetSay {
    token: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    action: Option<TurnAction>,
}

/// `POST /widget/api/say`: the customer's message (or button: `request_human`,
/// `cancel_handoff`); while the AI may answer and no handoff is under way, the demo assistant
/// answers from the knowledge base.
pub async fn widget_say(
    State(app): St,
    ApiJson(req): ApiJson<WidgetSay>,
) -> AppResult<Json<Value>> {
    let id = widget_conversation(&app, &req.token).await?;
    let mut turn = Turn::new(Role::Customer, req.text.clone())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    turn.action = req.action;
    let answer = app.service.post_turn(id.clone(), turn).await?;
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
        reply = Some(app.service.post_turn(id, ai).await?);
    }
    Ok(Json(json!({"customer": answer, "assistant": reply})))
}

#[derive(Deserialize)]
pub struct WidgetFollowup {
    token: String,
    via: String,
    #[serde(default)]
    contact: Option<String>,
}

/// `POST /widget/api/followup`: the customer takes the async path (email, callback, meeting)
/// instead of waiting.
pub async fn widget_followup(
    State(app): St,
    ApiJson(req): ApiJson<WidgetFollowup>,
) -> AppResult<Json<baton_core::answers::FollowedUp>> {
    let id = widget_conversation(&app, &req.token).await?;
    Ok(Json(app.service.followup(id, req.via, req.contact).await?))
}

#[derive(Deserialize)]
pub struct WidgetRate {
    token: String,
    score: u8,
}

/// `POST /widget/api/rate`: the customer's rating (1-5) of the human part.
pub async fn widget_rate(
    State(app): St,
    ApiJson(req): ApiJson<WidgetRate>,
) -> AppResult<Json<baton_core::answers::Rated>> {
    let id = widget_conversation(&app, &req.token).await?;
    Ok(Json(app.service.rate(id, req.score).await?))
}

/// `GET /widget/api/state?token=`: what the customer may see: messages, state, position and
/// wait, the agent's name, and whether to ask for a rating. No brief, no internal notes.
pub async fn widget_state(
    State(app): St,
    ApiQuery(q): ApiQuery<WidgetToken>,
) -> AppResult<Json<Value>> {
    let id = widget_conversation(&app, &q.token).await?;
    let record = app.service.conversation(&id).await?;
    let turns = app.service.turns(&id).await?;
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
        messages.push(json!({"role": t.turn.role, "from": who, "text": text}));
    }
    let mut body = json!({
        "conversation_id": id,
        "state": record.state,
        "messages": messages,
        "csat": record.csat,
    });
    if record.state.is_waiting() {
        if let Some((p, w)) = app.service.wait(id.as_str()).await {
            body["position"] = json!(p);
            body["estimated_wait_seconds"] = json!(w.quoted_seconds);
        }
    }
    if let Some(agent) = &record.agent_id {
        body["agent_name"] = json!(app.service.agent(agent).await.ok().map(|a| a.name));
    }
    if record.state.is_waiting() {
        let policy = app.service.engine().policy();
        let closed = record
            .queue
            .as_deref()
            .and_then(|q| policy.schedule(q))
            .is_some_and(|s| !s.is_open(app.service.now()));
        let max = record
            .queue
            .as_deref()
            .and_then(|q| policy.queue(q))
            .and_then(|q| q.max_wait_seconds);
        let too_long = max.is_some_and(|m| {
            body["estimated_wait_seconds"]
                .as_u64()
                .is_some_and(|w| w > m)
        });
        if closed || too_long {
            body["alternatives"] = json!(policy.file.routing.async_options);
            body["meeting_link"] = json!(policy.file.routing.meeting_link);
        }
    }
    let had_human = turns.iter().any(|t| t.turn.role == Role::Agent);
    body["ask_rating"] = json!(
        had_human
            && matches!(
                record.state,
                HandoffState::Resolved | HandoffState::ReturnedToAi
            )
            && body["csat"].is_null()
    );
    Ok(Json(body))
}

/// `GET /widget/api/events?token=`: the widget's event stream (its own conversation; internal
/// notes left out), resumable like `/v1/events`.
pub async fn widget_events(
    State(app): St,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WidgetToken>,
) -> AppResult<Response> {
    let id = widget_conversation(&app, &q.token).await?;
    Ok(
        crate::handlers::stream_events(app, &headers, Some(0), Some(id.to_string()), true)
            .into_response(),
    )
}
