//! Sentiment per turn (VADER) and its trajectory over the conversation.

use baton_domain::{ReasonCode, Signal};

/// Customer turns the trajectory looks back over.
pub const TRAJECTORY_TURNS: usize = 3;
/// VADER's own neutral band: compound above -0.05 is not negative (Hutto & Gilbert 2014, the
/// thresholds the vaderSentiment README recommends).
pub const NEUTRAL_BELOW: f64 = -0.05;

/// The words of VADER's lexicon: the first column of `vader_lexicon.txt` from
/// `vaderSentiment` 3.3.2 (MIT, copyright C.J. Hutto; `data/LICENSE-VADER`).
const LEXICON_WORDS: &str = include_str!("../data/vader_words.txt");

/// VADER scoring, with exact parity to Python `vaderSentiment` 3.3.2.
pub struct Sentiment {
    analyzer: vader_parity::SentimentIntensityAnalyzer,
    words: rustc_hash::FxHashSet<&'static str>,
}

impl Sentiment {
    /// Loads the VADER lexicon (about 7,500 entries; build once).
    pub fn new() -> Self {
        Self {
            analyzer: vader_parity::SentimentIntensityAnalyzer::new(),
            words: LEXICON_WORDS.lines().collect(),
        }
    }

    /// The four VADER scores of `text`.
    ///
    /// About half of support messages hold no word of VADER's lexicon (52% of Bitext's, "where
    /// is my order 1234"); those are answered without running VADER, with the scores it gives
    /// them: every one of its rules (negation, boosters, idioms, "but", capitals, punctuation)
    /// only adjusts the valence of a lexicon word, so such a text is neutral. `.ci/run`
    /// checks the result against Python on 23,703 texts (`tests/vader_parity.rs`).
    pub fn scores(&self, text: &str) -> vader_parity::SentimentScores {
        match self.nothing_to_score(text) {
            Some(tokens) => vader_parity::SentimentScores {
                neg: 0.0,
                neu: if tokens { 1.0 } else { 0.0 },
                pos: 0.0,
                compound: 0.0,
            },
            None => self.analyzer.polarity_scores(text),
        }
    }

    /// `Some(whether the text has any token)` when VADER would find no lexicon word in
    /// `text`; `None` when it might. Only ASCII texts are judged (no emoji to translate, and
    /// lowercasing is ASCII's); a token counts as a lexicon word when, lowercased, either as
    /// written or with its punctuation stripped, it is one (VADER strips a token's
    /// punctuation only when three characters remain, so both forms are checked).
    fn nothing_to_score(&self, text: &str) -> Option<bool> {
        if !text.is_ascii() {
            return None;
        }
        // Python's `str.split()` separators among ASCII characters.
        let space = |c: char| c.is_ascii_whitespace() || matches!(c, '\x0b' | '\x1c'..='\x1f');
        let mut lower = String::new();
        let mut tokens = false;
        for token in text.split(space).filter(|t| !t.is_empty()) {
            tokens = true;
            let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
            let forms = if stripped.len() == token.len() {
                &[token][..]
            } else {
                &[token, stripped][..]
            };
            for form in forms {
                lower.clear();
                lower.push_str(form);
                lower.make_ascii_lowercase();
                if self.words.contains(lower.as_str()) {
                    return None;
                }
            }
        }
        Some(tokens)
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
    fn a_slide_scores_higher_than_one_mild_turn() {
        let mild = negative_sentiment(&[0.5, 0.4, -0.1]).map_or(0.0, |s| s.score);
        let slide = negative_sentiment(&[0.3, -0.4, -0.7]).map_or(0.0, |s| s.score);
        assert!(slide > mild, "slide {slide} mild {mild}");
        assert!(negative_sentiment(&[0.2, 0.6]).is_none());
        assert!(negative_sentiment(&[]).is_none());
    }
}
