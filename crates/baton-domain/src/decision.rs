//! The policy's verdict on one turn (DESIGN.md section 3).

use crate::ReasonCode;
use serde::{Deserialize, Serialize};

/// How the AI and humans share a conversation (DESIGN.md section 1).
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
pub enum Mode {
    /// Routine and low risk: the AI handles it alone.
    AiOnly,
    /// A human should watch; the AI drafts replies, summaries and knowledge-base links.
    AiAssisted,
    /// Full handoff to a human.
    Escalate,
}

/// How much one signal added to a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contribution {
    /// The signal's code.
    pub code: ReasonCode,
    /// The detector's score, in `[0, 1]`.
    pub signal_score: f64,
    /// The policy weight applied to it, in `[0, 1]`.
    pub weight: f64,
    /// `signal_score * weight`: this signal's share of the escalation score before combination.
    pub contribution: f64,
    /// How much this signal lowered the threshold, in score units.
    pub threshold_reduction: f64,
    /// Whether the signal is a deterministic trigger that fired on its own.
    pub triggered: bool,
}

/// A policy rule that could not be evaluated and was skipped (the decision still stands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkippedRule {
    /// The rule's name in the policy.
    pub rule: String,
    /// Why it was skipped.
    pub error: String,
}

/// The decision for one turn: whether to escalate, in which mode, the score and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// The operating mode this turn calls for.
    pub mode: Mode,
    /// Whether to hand the conversation to a human now.
    pub escalate: bool,
    /// Escalation score in `[0, 1]`.
    pub score: f64,
    /// The threshold the score was compared with, after signals lowered it.
    pub threshold: f64,
    /// The codes the policy counted toward this decision, strongest first.
    pub reasons: Vec<ReasonCode>,
    /// Per-signal contributions, strongest first.
    pub contributions: Vec<Contribution>,
    /// Names of the policy rules that fired.
    pub rules_fired: Vec<String>,
    /// Rules that failed to evaluate and were skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_rules: Vec<SkippedRule>,
    /// Shadow mode: the policy would have escalated, but was told only to log it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}
