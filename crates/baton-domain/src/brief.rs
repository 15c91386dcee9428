//! The handoff brief (DESIGN.md section 4): everything an agent needs so the customer never
//! repeats themselves. Built by `baton-brief`; this module holds only its shape.

use crate::{ReasonCode, Role};
use serde::{Deserialize, Serialize};

/// Version of the brief's JSON shape. Bumped on any incompatible change.
pub const BRIEF_SCHEMA_VERSION: &str = "1.0";

/// One line of the transcript.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
pub struct TranscriptLine {
    /// 0-based turn index in the conversation.
    pub turn: usize,
    /// Who wrote it.
    pub role: Role,
    /// What was written.
    pub text: String,
}

/// An escalation reason with its human text and the evidence behind it.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
pub struct BriefReason {
    /// The code.
    pub code: ReasonCode,
    /// What the code means, in words.
    pub text: String,
    /// The span or figure that supports it.
    pub evidence: String,
    /// The signal's score in `[0, 1]`.
    pub score: f64,
}

/// Sentiment at handoff and how it moved.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
pub struct SentimentSummary {
    /// VADER compound of the last customer turn, in `[-1, 1]`.
    pub at_handoff: f64,
    /// VADER compound of each customer turn, oldest first.
    pub trajectory: Vec<f64>,
    /// `improving`, `steady` or `worsening`, from the slope of the trajectory.
    pub trend: String,
}

/// Kinds of entity the extractor finds.
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
pub enum EntityKind {
    /// An order number.
    OrderId,
    /// An invoice number.
    InvoiceId,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// An amount of money with its currency.
    Amount,
    /// A calendar date or relative day.
    Date,
    /// An account or customer number.
    AccountId,
}

/// An entity found in the customer's turns.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
pub struct Entity {
    /// What kind of entity.
    pub kind: EntityKind,
    /// The text as the customer wrote it.
    pub text: String,
    /// A normalised value (digits only for ids, ISO 4217 + amount for money), when one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The turn it was found in.
    pub turn: usize,
}

/// Something the AI already suggested or tried, so the agent does not repeat it.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
pub struct AttemptedSolution {
    /// The AI turn it came from.
    pub turn: usize,
    /// The gist of the AI's answer: its first sentence that answers, explains or acts (an AI
    /// turn that only greets, asks, holds or closes is no attempt).
    pub summary: String,
    /// Knowledge-base articles the AI used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kb_articles: Vec<String>,
    /// Whether the customer's next turn rejected it.
    pub rejected: bool,
}

/// Who the customer is, as far as Baton knows.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
pub struct CustomerContext {
    /// Customer id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Days since sign-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenure_days: Option<u32>,
    /// Earlier contacts on the same issue in 30 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts_same_issue_30d: Option<u32>,
    /// Account or deal value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deal_value: Option<f64>,
    /// Language (ISO 639-1), given or detected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The handoff brief, versioned by [`BRIEF_SCHEMA_VERSION`].
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
pub struct Brief {
    /// [`BRIEF_SCHEMA_VERSION`].
    pub schema_version: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// The turn at which the handoff started.
    pub handoff_turn: usize,
    /// Up to 10 short extractive lines, each led by what it is: `Problem:`, `Wants:`, `Tried:`
    /// (with the customer's reply when they rejected it), `Facts:` and `Last message:`.
    pub summary: Vec<String>,
    /// The customer's intent, e.g. `refund`, in words.
    pub intent: String,
    /// What the customer wants to happen, in their words, when they said it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_outcome: Option<String>,
    /// Why the conversation is escalating.
    pub reasons: Vec<BriefReason>,
    /// The escalation score in `[0, 1]`.
    pub score: f64,
    /// Sentiment at handoff and its trajectory.
    pub sentiment: SentimentSummary,
    /// Entities found in the customer's turns.
    pub entities: Vec<Entity>,
    /// What the AI already tried.
    pub attempted_solutions: Vec<AttemptedSolution>,
    /// Who the customer is.
    pub customer: CustomerContext,
    /// The step the conversation was on when it escalated (the last AI question or offer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_in_progress: Option<String>,
    /// What the agent should do first.
    pub recommended_next_step: String,
    /// A first message for the agent that proves the context arrived.
    pub warm_introduction: String,
    /// The recent turns (at most the last 10); the full transcript is in `transcript`.
    pub recent_turns: Vec<TranscriptLine>,
    /// The full transcript up to the handoff.
    pub transcript: Vec<TranscriptLine>,
}
