//! Detector output.

use crate::ReasonCode;
use serde::{Deserialize, Serialize};

/// One detector's finding on a turn: a reason code, a score in `[0, 1]` and the evidence
/// (the matched span, or the figure that crossed a line, e.g. `ai_confidence 0.31`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signal {
    /// What was detected.
    pub code: ReasonCode,
    /// Strength in `[0, 1]`; detectors emit only scores above zero.
    pub score: f64,
    /// The span or figure that supports the finding.
    pub evidence: String,
}

impl Signal {
    /// A signal with its score clamped to `[0, 1]` (NaN becomes 0) and rounded to 4 decimals so
    /// output is stable across platforms.
    pub fn new(code: ReasonCode, score: f64, evidence: impl Into<String>) -> Self {
        let score = if score.is_nan() {
            0.0
        } else {
            score.clamp(0.0, 1.0)
        };
        Self {
            code,
            score: (score * 10_000.0).round() / 10_000.0,
            evidence: evidence.into(),
        }
    }
}
