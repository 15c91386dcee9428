//! What each command answers: typed structs, serialised as the HTTP API's JSON bodies
//! (CONTRACTS.md, "HTTP API"), so the server and its OpenAPI document cannot drift apart.

use baton_domain::{
    AgentStatus, Brief, Contribution, HandoffState, Mode, ReasonCode, Role, Signal, SkippedRule,
};
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// The answer to a turn (`POST /v1/conversations/{id}/turns`): the decision, its
/// explanation, where the handoff stands, and what to tell the customer. Stored with the turn
/// and returned unchanged to a retry with the same `client_turn_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnAnswer {
    /// The conversation.
    pub conversation_id: String,
    /// The turn's 0-based index.
    pub turn: usize,
    /// Who spoke.
    pub role: Role,
    /// Whether the policy escalated on this turn.
    pub escalate: bool,
    /// The operating mode this turn calls for.
    pub mode: Mode,
    /// The combined score in [0, 1].
    pub score: f64,
    /// The threshold the score was compared with, after lowering by signals.
    pub threshold: f64,
    /// The reason codes behind the decision, strongest first.
    pub reasons: Vec<ReasonCode>,
    /// The handoff state after the turn.
    pub state: HandoffState,
    /// The queue, once routed.
    pub queue: Option<String>,
    /// The turn's signals (code, score in [0, 1], evidence).
    pub signals: Vec<Signal>,
    /// Each signal's share of the score.
    pub contributions: Vec<Contribution>,
    /// The policy rules that fired.
    pub rules_fired: Vec<String>,
    /// Whether the AI may answer the customer now (false while an agent owns the conversation).
    pub ai_may_reply: bool,
    /// Rules that failed to evaluate and were skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_rules: Vec<SkippedRule>,
    /// The policy runs in shadow mode: an escalation is logged, not acted on.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shadow: bool,
    /// The brief, when the turn escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief: Option<Brief>,
    /// Place in line (1 is next), while waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The wait quoted to the customer, seconds (a high percentile of the Erlang C wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_wait_seconds: Option<u64>,
    /// The expected (mean) wait, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_wait_seconds: Option<f64>,
    /// The agent it was offered or assigned to at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// False when the queue is closed now (business hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_open: Option<bool>,
    /// When a closed queue opens (RFC 3339), if it opens again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    /// The async paths offered instead of waiting (queue closed, or the wait over its limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Vec<String>>,
    /// The meeting link offered with the alternatives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_link: Option<String>,
    /// What to tell the customer now, from the policy's message templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_message: Option<String>,
    /// Input fields that were ignored (e.g. a misspelt `teir`), so a typo is never silent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A new conversation (`POST /v1/conversations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Created {
    /// Its id (generated when none was given).
    pub id: String,
    /// Always `ai_active`.
    pub state: HandoffState,
    /// Input fields that were ignored, and customer attributes that look like a misspelt
    /// customer field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A claim (`POST .../claim`): the agent owns the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claimed {
    /// The conversation.
    pub conversation_id: String,
    /// `assigned`.
    pub state: HandoffState,
    /// The new owner.
    pub agent_id: String,
    /// The brief to read first.
    pub brief: Option<Brief>,
    /// False: the AI is locked out while the agent owns it.
    pub ai_may_reply: bool,
}

/// A declined offer (`POST .../decline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Declined {
    /// The conversation.
    pub conversation_id: String,
    /// True.
    pub declined: bool,
}

/// An agent's message to the customer (`POST .../reply`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replied {
    /// The conversation.
    pub conversation_id: String,
    /// The turn's 0-based index.
    pub turn: usize,
    /// `agent`.
    pub role: Role,
    /// The handoff state after it.
    pub state: HandoffState,
    /// Whether the AI may answer now.
    pub ai_may_reply: bool,
}

/// An internal note (`POST .../notes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Noted {
    /// The conversation.
    pub conversation_id: String,
    /// True.
    pub noted: bool,
}

/// A resolution (`POST .../resolve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolved {
    /// The conversation.
    pub conversation_id: String,
    /// `resolved`.
    pub state: HandoffState,
    /// The resolution category.
    pub disposition: String,
    /// True: the AI may answer again.
    pub ai_may_reply: bool,
}

/// A hand-back to the AI (`POST .../handback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HandedBack {
    /// The conversation.
    pub conversation_id: String,
    /// `returned_to_ai`.
    pub state: HandoffState,
    /// True.
    pub ai_may_reply: bool,
    /// What to tell the customer, from the policy's `messages.handback`.
    pub customer_message: String,
}

/// A transfer (`POST .../transfer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transferred {
    /// The conversation.
    pub conversation_id: String,
    /// Where it stands now: `queued`, or `offered`/`assigned` when an agent took it at once.
    pub state: HandoffState,
    /// The queue it went to.
    pub queue: String,
}

/// The async path (`POST .../followup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FollowedUp {
    /// The conversation.
    pub conversation_id: String,
    /// `async_followup`.
    pub state: HandoffState,
    /// `email`, `callback` or `meeting` (the policy's `routing.async_options`).
    pub via: String,
    /// True.
    pub ai_may_reply: bool,
    /// The meeting link, for `meeting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_link: Option<String>,
}

/// A presence change (`POST /v1/agents/{agent}/presence`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceSet {
    /// The agent.
    pub agent_id: String,
    /// The new presence.
    pub status: AgentStatus,
}

/// A customer's rating of the human part (the widget's `rate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rated {
    /// The conversation.
    pub conversation_id: String,
    /// 1 (poor) to 5 (excellent).
    pub csat: u8,
}
