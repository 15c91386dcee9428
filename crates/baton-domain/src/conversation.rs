//! Conversations, turns and customers: the input formats of CONTRACTS.md.

use crate::ConversationId;
use serde::{Deserialize, Serialize};

/// Longest turn text accepted, in bytes (UTF-8). Chat turns are far shorter; the limit keeps one
/// request from tying up the detectors.
pub const MAX_TURN_TEXT_BYTES: usize = 16 * 1024;

/// Who wrote a turn.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The customer.
    Customer,
    /// The AI assistant (bot).
    Ai,
    /// A human agent.
    Agent,
}

impl Role {
    /// The role as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Ai => "ai",
            Role::Agent => "agent",
        }
    }
}

/// A user-interface action that came with a turn instead of, or beside, typed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TurnAction {
    /// The customer pressed "talk to a person".
    RequestHuman,
    /// The customer cancelled a pending handoff and went back to the AI.
    CancelHandoff,
}

/// Why a turn was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TurnError {
    /// `text` was empty or only white space, and no `action` came with it (refused by the API;
    /// a recorded conversation may hold such turns, e.g. attachments).
    #[error("turn text is empty: send the customer's, AI's or agent's words in `text`")]
    EmptyText,
    /// `text` was longer than [`MAX_TURN_TEXT_BYTES`].
    #[error("turn text is {0} bytes, over the limit of {MAX_TURN_TEXT_BYTES}: split it into several turns")]
    TextTooLong(usize),
    /// A figure that must be a share in `[0, 1]` was outside it.
    #[error(
        "`{field}` is {value}, outside [0, 1]: send a probability or similarity between 0 and 1"
    )]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The rejected value.
        value: f64,
    },
}

/// The wire shape of a turn, before validation.
#[derive(Deserialize)]
struct RawTurn {
    role: Role,
    text: String,
    #[serde(default)]
    ai_confidence: Option<f64>,
    #[serde(default)]
    kb_similarity: Option<f64>,
    #[serde(default)]
    kb_articles: Vec<String>,
    #[serde(default)]
    client_turn_id: Option<String>,
    #[serde(default)]
    action: Option<TurnAction>,
    #[serde(default)]
    ai_requested: bool,
    #[serde(default)]
    policy_block: bool,
    #[serde(default)]
    tool_failure: bool,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    target_queue: Option<String>,
    #[serde(default)]
    target_agent: Option<String>,
}

/// One turn of a conversation (CONTRACTS.md, "Conversations"). Deserializing validates it.
///
/// AI turns may carry the AI's own view: `ai_confidence` and `kb_similarity` (both in `[0, 1]`),
/// the `kb_articles` it used, and the flags `ai_requested` (it decided to hand off),
/// `policy_block` (a guardrail blocked it) and `tool_failure` (a tool it called failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "RawTurn")]
pub struct Turn {
    /// Who wrote the turn.
    pub role: Role,
    /// What was written, at most [`MAX_TURN_TEXT_BYTES`]; may be empty in a recorded
    /// conversation (the API requires words or an `action`, see [`Turn::require_content`]).
    pub text: String,
    /// The AI's confidence in this answer, in `[0, 1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai_confidence: Option<f64>,
    /// Similarity of the best knowledge-base match, in `[0, 1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kb_similarity: Option<f64>,
    /// Knowledge-base articles the AI used for this answer.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub kb_articles: Vec<String>,
    /// The client's id for this turn; a retry with the same id is not applied twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_turn_id: Option<String>,
    /// A button the customer pressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<TurnAction>,
    /// The AI decided to hand off.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub ai_requested: bool,
    /// A guardrail blocked the AI's answer.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub policy_block: bool,
    /// A tool the AI called failed.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub tool_failure: bool,
    /// For agent turns: the agent who wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// For AI turns that hand off: the queue the bot wants the conversation in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_queue: Option<String>,
    /// For AI turns that hand off: the agent the bot wants to have it (waited for a while,
    /// then anyone eligible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_agent: Option<String>,
}

impl TryFrom<RawTurn> for Turn {
    type Error = TurnError;

    fn try_from(raw: RawTurn) -> Result<Self, TurnError> {
        if raw.text.len() > MAX_TURN_TEXT_BYTES {
            return Err(TurnError::TextTooLong(raw.text.len()));
        }
        for (field, value) in [
            ("ai_confidence", raw.ai_confidence),
            ("kb_similarity", raw.kb_similarity),
        ] {
            if let Some(v) = value {
                if !(0.0..=1.0).contains(&v) {
                    return Err(TurnError::OutOfRange { field, value: v });
                }
            }
        }
        Ok(Turn {
            role: raw.role,
            text: raw.text,
            ai_confidence: raw.ai_confidence,
            kb_similarity: raw.kb_similarity,
            kb_articles: raw.kb_articles,
            client_turn_id: raw.client_turn_id,
            action: raw.action,
            ai_requested: raw.ai_requested,
            policy_block: raw.policy_block,
            tool_failure: raw.tool_failure,
            agent_id: raw.agent_id,
            target_queue: raw.target_queue,
            target_agent: raw.target_agent,
        })
    }
}

impl Turn {
    /// Whether the turn says something: words, or a button. The API refuses turns that do not.
    ///
    /// # Errors
    /// [`TurnError::EmptyText`] when `text` is only white space and no `action` came with it.
    pub fn require_content(&self) -> Result<(), TurnError> {
        if self.text.trim().is_empty() && self.action.is_none() {
            Err(TurnError::EmptyText)
        } else {
            Ok(())
        }
    }

    /// A plain turn with only a role and text, validated like any other.
    ///
    /// # Errors
    /// [`TurnError::TextTooLong`] when the text is over [`MAX_TURN_TEXT_BYTES`].
    pub fn new(role: Role, text: impl Into<String>) -> Result<Self, TurnError> {
        Turn::try_from(RawTurn {
            role,
            text: text.into(),
            ai_confidence: None,
            kb_similarity: None,
            kb_articles: Vec::new(),
            client_turn_id: None,
            action: None,
            ai_requested: false,
            policy_block: false,
            tool_failure: false,
            agent_id: None,
            target_queue: None,
            target_agent: None,
        })
    }
}

/// What Baton knows about the customer, from the bot or a CRM (CONTRACTS.md). Every field is
/// optional; fields not named here are kept in `attributes` for policy conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Customer {
    /// The customer's id in the client's systems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name to greet them by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service tier, e.g. `standard`, `vip`, `enterprise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Days since the customer signed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenure_days: Option<u32>,
    /// Contacts about this same issue in the last 30 days, this one excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts_same_issue_30d: Option<u32>,
    /// Value of the account or open deal, in the client's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_value: Option<f64>,
    /// Preferred language, as an ISO 639-1 code such as `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The customer's dedicated agent (account owner), by agent id: a handoff waits for them
    /// first, for the queue's `owner_wait_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_owner: Option<String>,
    /// Any other attributes, available to policy conditions as `customer.NAME`.
    #[serde(flatten)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// A whole conversation, as read by `baton replay` (CONTRACTS.md, "Conversations").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The conversation's id.
    pub id: ConversationId,
    /// The customer, when known.
    #[serde(default)]
    pub customer: Customer,
    /// The channel it arrived on (`chat`, `email`, `voice`...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The turns, oldest first.
    pub turns: Vec<Turn>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_example() {
        let line = r#"{"id": "c-1",
 "customer": {"id": "cust-9", "name": "Dana", "tier": "vip", "tenure_days": 3,
              "contacts_same_issue_30d": 2, "deal_value": 12000, "language": "en", "plan": "pro"},
 "turns": [
   {"role": "customer", "text": "my card was charged twice for order 8812"},
   {"role": "ai", "text": "I'm sorry! Refunds take 5-7 days.", "ai_confidence": 0.62,
    "kb_similarity": 0.41, "kb_articles": ["refund-timelines"], "unknown": 1},
   {"role": "customer", "text": "that is not what I asked. I want a person now!!"}
 ]}"#;
        let c: Conversation = serde_json::from_str(line).expect("contract example parses");
        assert_eq!(c.turns.len(), 3);
        assert_eq!(c.turns[1].ai_confidence, Some(0.62));
        assert_eq!(c.customer.tier.as_deref(), Some("vip"));
        assert_eq!(c.customer.attributes["plan"], "pro");
    }

    #[test]
    fn rejects_bad_turns_with_a_reason() {
        let empty: Turn = serde_json::from_str(r#"{"role":"customer","text":"  "}"#)
            .expect("a recorded empty turn parses");
        assert_eq!(empty.require_content(), Err(TurnError::EmptyText));
        let role = serde_json::from_str::<Turn>(r#"{"role":"bot","text":"hi"}"#);
        assert!(role
            .expect_err("bad role")
            .to_string()
            .contains("unknown variant `bot`"));
        let range = serde_json::from_str::<Turn>(r#"{"role":"ai","text":"x","ai_confidence":1.5}"#);
        assert!(range
            .expect_err("range")
            .to_string()
            .contains("ai_confidence"));
        let long = Turn::new(Role::Customer, "a".repeat(MAX_TURN_TEXT_BYTES + 1));
        assert_eq!(long, Err(TurnError::TextTooLong(MAX_TURN_TEXT_BYTES + 1)));
        let button = serde_json::from_str::<Turn>(
            r#"{"role":"customer","text":"","action":"request_human"}"#,
        );
        assert_eq!(button.expect("button").require_content(), Ok(()));
    }
}
