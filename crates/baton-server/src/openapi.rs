//! The OpenAPI 3.1 document served at `GET /openapi.json`, generated from the handlers'
//! `#[utoipa::path]` attributes and the request and answer types (`utoipa::ToSchema`), so the
//! document and the wire format cannot drift apart.
//!
//! Two things are added to every operation from one place each rather than written by hand:
//! its security requirement and its 401 and 403 answers, on every route that is not
//! [`auth::public`] (what the auth guard itself applies; what each caller may do there, the
//! service decides).

use crate::auth;
use crate::error::ErrorBody;
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::OpenApi;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document as pretty-printed JSON, serialised once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

/// Names of the security schemes.
const BEARER: &str = "api_key";
const SESSION: &str = "session";

const DESCRIPTION: &str = "Hands customer conversations from an AI assistant to human agents. \
Contract: CONTRACTS.md.\n\n\
Authentication: a fresh installation (no account, no key) is open. From the first account \
(`baton agents add`) or API key (`baton keys add`) on, calls send `Authorization: Bearer KEY` \
(scopes `bot`, `agent`, `admin`) or the console's session cookie; the widget sends its \
conversation's token. Each operation's `security` lists what it accepts; what each caller may \
do is decided per command (who may post which role's turn, read which conversation, note and \
event), in the table of docs/access.md.\n\n\
Errors: every 4xx and 5xx answer is `{\"error\": {\"code\", \"message\"}}`; the message says \
what to fix. A method a path does not serve gets 405 (`method_not_allowed`), a path that does \
not exist 404. Unknown input fields are accepted and named in the answer's `warnings` where \
the answer has them.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Baton API",
        version = "1",
        description = DESCRIPTION,
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::handlers::healthz,
        crate::handlers::openapi,
        crate::handlers::create_conversation,
        crate::handlers::get_conversation,
        crate::handlers::post_turn,
        crate::handlers::get_brief,
        crate::handlers::claim,
        crate::handlers::decline,
        crate::handlers::transfer,
        crate::handlers::followup,
        crate::handlers::explain,
        crate::handlers::event_stream,
        crate::handlers::reply,
        crate::handlers::note,
        crate::handlers::resolve,
        crate::handlers::handback,
        crate::handlers::list_queues,
        crate::handlers::get_queue,
        crate::handlers::list_agents,
        crate::handlers::upsert_agent,
        crate::handlers::set_presence,
        crate::console::login,
        crate::console::logout,
        crate::console::me,
        crate::console::supervisor,
        crate::console::assist,
        crate::console::console_page,
        crate::console::widget_page,
        crate::console::static_asset,
        crate::console::widget_start,
        crate::handlers::audit,
        crate::credentials::list_accounts,
        crate::credentials::set_account,
        crate::credentials::remove_account,
        crate::credentials::list_keys,
        crate::credentials::create_key,
        crate::credentials::revoke_key,
        crate::console::widget_say,
        crate::console::widget_rate,
        crate::console::widget_followup,
        crate::console::widget_state,
        crate::console::widget_events,
    ),
    components(
        schemas(ErrorBody, baton_store::EventRecord),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            UnprocessableEntity,
            TooManyRequests,
            Unavailable,
        )
    ),
    modifiers(&Security, &CommonErrors),
    tags(
        (name = "service", description = "Health and this document."),
        (name = "conversations", description = "Conversations and their turns, from the bot's side."),
        (name = "agents", description = "Agent actions on conversations, agents and their presence."),
        (name = "queues", description = "Queues and who waits in them."),
        (name = "events", description = "Server-sent events."),
        (name = "console", description = "The agent console: sign-in, the supervisor view, reply suggestions, the pages."),
        (name = "widget", description = "The customer widget's API, authorised by its conversation token."),
    )
)]
struct ApiDoc;

/// Reusable error answers (`#/components/responses/NAME`), all with the body
/// `{"error": {"code", "message"}}`.
macro_rules! error_responses {
    ($($name:ident => $description:literal,)*) => {
        $(
            #[doc = $description]
            pub(crate) struct $name;

            impl<'s> utoipa::ToResponse<'s> for $name {
                fn response() -> (&'s str, RefOr<Response>) {
                    (stringify!($name), error_response($description).into())
                }
            }
        )*
    };
}

error_responses! {
    BadRequest => "Malformed input: bad JSON syntax, a bad path or query parameter, or an invalid value (`invalid_request`, `invalid_json`).",
    Unauthorized => "No valid credentials (`unauthorized`, `bad_credentials`): sign in, send `Authorization: Bearer KEY`, or the widget's token.",
    Forbidden => "The caller may not do this (`forbidden`): the message says who they are and what the action needs (the table: docs/access.md).",
    NotFound => "No such conversation, queue, agent, brief or asset (`not_found`).",
    MethodNotAllowed => "The path does not serve this method (`method_not_allowed`).",
    Conflict => "The request conflicts with the conversation's current state, e.g. claiming what another agent holds (the code names the conflict).",
    PayloadTooLarge => "The body is over 256 KiB (`body_too_large`).",
    UnsupportedMediaType => "The body was not sent as `Content-Type: application/json` (`unsupported_media_type`).",
    UnprocessableEntity => "Well-formed JSON with a field of the wrong shape or out of range (`invalid_json`, or the code naming the rule).",
    TooManyRequests => "Too many attempts (`too_many_requests`): wait the `Retry-After` seconds.",
    Unavailable => "Storage cannot write now (`unavailable`): nothing was written, retry later.",
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The security schemes, and on each operation what [`auth::need`] asks of its caller, with
/// the 401 and 403 answers of the auth guard.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`baton keys add`) as `Authorization: Bearer KEY`. Scopes: \
                         `bot` (conversations, customer and AI turns), `agent` (acting for any \
                         agent), `admin` (everything). What each scope may do is decided per \
                         command: the table is in docs/access.md; a refusal is a 403.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "The console's session cookie, set by `POST /v1/login` (HttpOnly, \
                 SameSite=Strict, 12 hours). Roles: `agent` (as themselves, on what they hold, \
                 were offered or their queues contain), `supervisor` (also reads everything and \
                 moves conversations for any agent), `admin` (also agent management). The \
                 table is in docs/access.md; a refusal is a 403.",
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let concrete = concrete_path(path);
            for operation in operations(item) {
                if auth::public(&concrete) {
                    continue;
                }
                operation.security = Some(requirements());
                for (status, name) in [("401", "Unauthorized"), ("403", "Forbidden")] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::Ref(utoipa::openapi::Ref::from_response_name(name))
                        });
                }
            }
        }
    }
}

/// The error answers every operation of a kind can give, added in one place rather than on
/// each handler: 400 where a path, query or body is parsed; 413, 415 and 422 where a JSON body
/// is; 503 on the API's routes (storage cannot write, or the server is stopping).
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/v1/") || path.starts_with("/widget/api/");
            for operation in operations(item) {
                let body = operation.request_body.is_some();
                let parsed = body || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let errors = [
                    (parsed, "400", "BadRequest"),
                    (body, "413", "PayloadTooLarge"),
                    (body, "415", "UnsupportedMediaType"),
                    (body, "422", "UnprocessableEntity"),
                    (api, "503", "Unavailable"),
                ];
                for (_, status, name) in errors.into_iter().filter(|(applies, ..)| *applies) {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::Ref(utoipa::openapi::Ref::from_response_name(name))
                        });
                }
            }
        }
    }
}

/// A path with its parameters filled in, as the auth guard sees it.
pub(crate) fn concrete_path(path: &str) -> String {
    path.replace("{id}", "x")
        .replace("{name}", "general")
        .replace("{agent}", "nobody")
        .replace("{file}", "style.css")
}

/// The operations of a path item.
pub(crate) fn operations(item: &mut PathItem) -> Vec<&mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What a route that is not public accepts: an API key or the session cookie (any one; what
/// the caller may do there, the service decides).
fn requirements() -> Vec<utoipa::openapi::security::SecurityRequirement> {
    use utoipa::openapi::security::SecurityRequirement;
    vec![
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
        SecurityRequirement::new(SESSION, Vec::<String>::new()),
    ]
}
