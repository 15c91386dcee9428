//! Sentiment per turn (VADER) and its trajectory over the conversation.

use baton_domain::{ReasonCode, Signal};

/// Customer turns the trajectory looks back over.
pub const TRAJECTORY_TURNS: usize = 3;
/// VADER's own neutral band: compound above -0.05 is not negative (Hutto & Gilbert 2014, the
/// thresholds the vaderSentiment README recommends).
pub const NEUTRAL_BELOW: f64 = -0.05;

/// VADER scoring, with exact parity to Python `vaderSentiment` 3.3.2.
pub struct Sentiment {
    /// ASCII texts (most support messages): Baton's own scorer, which allocates nothing per
    /// word.
    ascii: crate::vader::Vader,
    /// Every other text: the `vader-parity` crate, which carries Python's Unicode casing and
    /// the emoji lexicon. Loaded on the first such text, so a deployment that sees only ASCII
    /// never parses a second copy of the lexicon.
    general: std::sync::OnceLock<vader_parity::SentimentIntensityAnalyzer>,
}

impl Sentiment {
    /// Loads the VADER lexicon (about 7,500 entries; build once).
    pub fn new() -> Self {
        Self {
            ascii: crate::vader::Vader::new(),
            general: std::sync::OnceLock::new(),
        }
    }

    /// The four VADER scores of `text`: `neg`, `neu` and `pos` in `[0, 1]` (3 decimals),
    /// `compound` in `[-1, 1]` (4 decimals), as Python computes them. `.ci/run` checks the
    /// result against Python on 23,703 texts (`tests/vader_parity.rs`).
    pub fn scores(&self, text: &str) -> vader_parity::SentimentScores {
        self.ascii.scores(text).unwrap_or_else(|| {
            self.general
                .get_or_init(vader_parity::SentimentIntensityAnalyzer::new)
                .polarity_scores(text)
        })
    }
}

impl Default for Sentiment {
    fn default() -> Self {
        Self::new()
    }
}

/// `negative_sentiment` from the compounds of every customer turn so far (oldest first).
///
/// The score blends the last turn (weight 0.6) with the mean of the last
/// [`TRAJECTORY_TURNS`] turns (weight 0.4), each counted only when below [`NEUTRAL_BELOW`],
/// plus up to 0.3 for a fall of more than 0.3 across that window. So one sharp message and a
/// steady slide both register, and a single mild turn after good ones barely does.
pub fn negative_sentiment(compounds: &[f64]) -> Option<Signal> {
    let last = *compounds.last()?;
    let window = &compounds[compounds.len().saturating_sub(TRAJECTORY_TURNS)..];
    let mean = window.iter().sum::<f64>() / window.len() as f64;
    let neg = |c: f64| if c < NEUTRAL_BELOW { -c } else { 0.0 };
    let fall = (window[0] - last - 0.3).max(0.0);
    let score = 0.6 * neg(last) + 0.4 * neg(mean) + fall.min(0.3);
    if score <= 0.0 {
        return None;
    }
    let trail: Vec<String> = window.iter().map(|c| format!("{c:.2}")).collect();
    Some(Signal::new(
        ReasonCode::NegativeSentiment,
        score,
        format!("compound {last:.2}; last turns {}", trail.join(" -> ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_beyond_ascii_are_scored_by_the_crate_with_their_emoji() {
        let sentiment = Sentiment::new();
        let with_emoji = sentiment.scores("great 😀");
        let crate_scores =
            vader_parity::SentimentIntensityAnalyzer::new().polarity_scores("great 😀");
        assert_eq!(with_emoji.compound, crate_scores.compound);
        assert!(with_emoji.compound > sentiment.scores("great").compound);
    }

    #[test]
    fn a_slide_scores_higher_than_one_mild_turn() {
        let mild = negative_sentiment(&[0.5, 0.4, -0.1]).map_or(0.0, |s| s.score);
        let slide = negative_sentiment(&[0.3, -0.4, -0.7]).map_or(0.0, |s| s.score);
        assert!(slide > mild, "slide {slide} mild {mild}");
        assert!(negative_sentiment(&[0.2, 0.6]).is_none());
        assert!(negative_sentiment(&[]).is_none());
    }
}
