//! Phrase families matched with negation and intensity.
//!
//! A family is two alternations of patterns: `strong` (the phrase on its own says it) and `weak`
//! (suggestive, needs company). Patterns are written lowercase with `'` for any apostrophe and
//! `\b` word boundaries; they run on the text with ASCII letters lowercased ([`Lowered`], made
//! once per turn), which keeps byte offsets and is several times faster than case-insensitive
//! matching. A match preceded, within the same
//! clause and at most [`NEGATION_WINDOW`] words back, by a negator ("not", "never", "don't"...)
//! does not count; an intensifier ("really", "extremely", "so") or shouting raises the score.

use regex::Regex;

/// Words looked back from a match for a negator. Three is the window VADER uses
/// (Hutto & Gilbert 2014, `negated` over the preceding three tokens).
pub const NEGATION_WINDOW: usize = 3;

const NEGATORS: &[&str] = &[
    "not", "no", "never", "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "isn't", "isnt",
    "wasn't", "wasnt", "aren't", "arent", "won't", "wont", "without", "nor", "neither", "hardly",
    "nothing",
];

const INTENSIFIERS: &[&str] = &[
    "very",
    "really",
    "so",
    "extremely",
    "totally",
    "completely",
    "absolutely",
    "seriously",
    "incredibly",
    "super",
    "utterly",
    "truly",
    "beyond",
];

/// Lazy-DFA cache per family regex, in bytes (the regex crate's default is 2 MiB).
const DFA_CACHE_BYTES: usize = 16 << 20;

/// Score of a strong match before intensity.
pub const STRONG: f64 = 0.9;
/// Score of a weak match before intensity.
pub const WEAK: f64 = 0.55;

/// A text and its copy with ASCII letters lowercased: same bytes, same offsets, so a match in
/// the copy is a span of the original.
#[derive(Debug, Clone)]
pub struct Lowered<'a> {
    /// The text as written.
    pub original: &'a str,
    /// ASCII letters lowercased.
    pub lower: String,
}

impl<'a> Lowered<'a> {
    /// Lowers `text` once.
    pub fn new(text: &'a str) -> Self {
        Self {
            original: text,
            lower: text.to_ascii_lowercase(),
        }
    }
}

/// One matched phrase.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Score in `[0, 1]`.
    pub score: f64,
    /// The matched span, as written.
    pub evidence: String,
    /// Whether a strong pattern matched (else a weak one).
    pub strong: bool,
}

/// A compiled phrase family.
#[derive(Debug, Clone)]
pub struct Family {
    /// Strong and weak together, for families that have weak patterns: one scan rules out a
    /// family that does not match at all, the common case. (With strong patterns alone, the
    /// strong regex is that scan.)
    any: Option<Regex>,
    strong: Regex,
    weak: Option<Regex>,
    negatable: bool,
}

/// Rewrites `\b`, `\w` and `\W` as their ASCII forms. The lexicons are English and run on
/// lowercased text; Unicode word classes would make every family's automaton many times
/// larger (and its reverse search, which finds where a match starts, many times slower),
/// for letters the patterns never name.
fn ascii_classes(pattern: &str) -> String {
    pattern
        .replace("\\b", "(?-u:\\b)")
        .replace("\\w", "[0-9a-z_]")
        .replace("\\W", "[^0-9a-z_]")
}

fn compile(patterns: &[&str]) -> Regex {
    let body = patterns
        .iter()
        .map(|p| format!("(?:{})", ascii_classes(&p.replace('\'', "['’]?"))))
        .collect::<Vec<_>>()
        .join("|");
    // The patterns are constants of this crate: a bad one is a bug here, caught by every test
    // that builds `Detectors` before release.
    #[allow(clippy::expect_used)]
    regex::RegexBuilder::new(&body)
        // The families' bounded repetitions make large lazy DFAs; a bigger cache keeps them
        // from being rebuilt turn after turn.
        .dfa_size_limit(DFA_CACHE_BYTES)
        .build()
        .expect("built-in lexicon pattern compiles")
}

impl Family {
    /// Compiles a family. `negatable` is false for families whose phrases already carry the
    /// negation ("nothing works").
    pub fn new(strong: &[&str], weak: &[&str], negatable: bool) -> Self {
        let all: Vec<&str> = strong.iter().chain(weak).copied().collect();
        Self {
            any: (!weak.is_empty()).then(|| compile(&all)),
            strong: compile(strong),
            weak: (!weak.is_empty()).then(|| compile(weak)),
            negatable,
        }
    }

    /// The best non-negated match in `text`, strong before weak.
    pub fn best(&self, text: &str) -> Option<Hit> {
        self.best_in(&Lowered::new(text))
    }

    /// [`Family::best`] on a text already lowered (for several families on one turn).
    pub fn best_in(&self, text: &Lowered<'_>) -> Option<Hit> {
        if self
            .any
            .as_ref()
            .is_some_and(|any| !any.is_match(&text.lower))
        {
            return None;
        }
        self.best_matching(text)
    }

    /// The regex of all the family's patterns, strong and weak.
    fn all(&self) -> &Regex {
        self.any.as_ref().unwrap_or(&self.strong)
    }

    /// [`Family::best_in`] once a scan has shown that some pattern of the family matches.
    fn best_matching(&self, text: &Lowered<'_>) -> Option<Hit> {
        self.first_hit(&self.strong, text, STRONG).or_else(|| {
            self.weak
                .as_ref()
                .and_then(|weak| self.first_hit(weak, text, WEAK))
        })
    }

    fn first_hit(&self, re: &Regex, lowered: &Lowered<'_>, base: f64) -> Option<Hit> {
        let text = lowered.original;
        re.find_iter(&lowered.lower)
            .find(|m| !(self.negatable && negated(&text[..m.start()])))
            .map(|m| {
                let span = &text[m.range()];
                Hit {
                    score: (base + intensity(&text[..m.start()], span)).min(1.0),
                    evidence: span.trim().to_owned(),
                    strong: base >= STRONG,
                }
            })
    }
}

/// Several families scanned together: one pass of a [`regex::RegexSet`] over the text tells
/// which families match at all (most turns match none or one), and only those are searched
/// for their best hit. Same results as calling [`Family::best_in`] on each.
#[derive(Debug, Clone)]
pub struct FamilySet<K> {
    scan: regex::RegexSet,
    families: Vec<(K, Family)>,
}

impl<K: Copy> FamilySet<K> {
    /// Builds the scan over `families`, keyed by `K`.
    pub fn new(families: Vec<(K, Family)>) -> Self {
        // As in `compile`: the patterns are this crate's constants.
        #[allow(clippy::expect_used)]
        let scan = regex::RegexSetBuilder::new(families.iter().map(|(_, f)| f.all().as_str()))
            .dfa_size_limit(DFA_CACHE_BYTES)
            .build()
            .expect("built-in lexicon patterns compile");
        Self { scan, families }
    }

    /// The family of `key`.
    pub fn family(&self, key: K) -> Option<&Family>
    where
        K: PartialEq,
    {
        self.families
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| f)
    }

    /// Every family that matches `text`, with its best hit, in the order given to
    /// [`FamilySet::new`].
    pub fn hits(&self, text: &Lowered<'_>) -> Vec<(K, Hit)> {
        // A plain search stops at the first match; the overlapping one that tells which
        // families match reads the whole text, so it runs only when something matched.
        if !self.scan.is_match(&text.lower) {
            return Vec::new();
        }
        self.scan
            .matches(&text.lower)
            .iter()
            .filter_map(|i| {
                let (key, family) = &self.families[i];
                family.best_matching(text).map(|hit| (*key, hit))
            })
            .collect()
    }
}

/// The words of the clause that ends at the end of `before`, last first.
fn clause_words_backwards(before: &str) -> impl Iterator<Item = &str> {
    let clause_start = before
        .rfind(['.', ',', ';', '!', '?', ':', '\n'])
        .map_or(0, |i| i + 1);
    let clause = &before[clause_start..];
    // "but" starts a new clause for negation too ("not cheap but I want a refund").
    let clause = clause.rfind(" but ").map_or(clause, |i| &clause[i + 5..]);
    clause.split_whitespace().rev()
}

/// Whether a negator stands within [`NEGATION_WINDOW`] words before a match.
pub fn negated(before: &str) -> bool {
    clause_words_backwards(before)
        .take(NEGATION_WINDOW)
        .any(|w| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '’');
            let w = w.to_lowercase().replace('’', "'");
            NEGATORS.contains(&w.as_str()) || w.ends_with("n't")
        })
}

/// Extra score for an intensifier just before the span or a span in capitals.
fn intensity(before: &str, span: &str) -> f64 {
    let mut extra = 0.0;
    if clause_words_backwards(before)
        .take(2)
        .any(|w| INTENSIFIERS.contains(&w.to_lowercase().as_str()))
    {
        extra += 0.05;
    }
    let letters = span.chars().filter(|c| c.is_alphabetic()).count();
    if letters >= 4 && span.chars().filter(|c| c.is_uppercase()).count() == letters {
        extra += 0.05;
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negation_blocks_a_match_in_the_same_clause_only() {
        let f = Family::new(&[r"\brefund"], &[], true);
        assert!(f.best("I want a refund").is_some());
        assert!(f.best("I don't want a refund").is_none());
        assert!(f.best("I do not need any refund").is_none());
        assert!(f.best("Not happy. Refund me").is_some());
        assert!(f.best("it was not cheap but I want a refund").is_some());
    }

    #[test]
    fn weak_scores_below_strong_and_intensity_raises() {
        let f = Family::new(&[r"\bfurious\b"], &[r"\bannoyed\b"], true);
        let strong = f.best("I am furious").expect("strong");
        let weak = f.best("I am annoyed").expect("weak");
        assert!(strong.score > weak.score);
        let intense = f.best("I am really FURIOUS").expect("intense");
        assert!(intense.score > strong.score);
        assert_eq!(intense.evidence, "FURIOUS");
    }

    #[test]
    fn curly_apostrophes_match_straight_ones() {
        let f = Family::new(&[r"\bdoesn't work\b"], &[], false);
        assert!(f.best("it doesn’t work").is_some());
        assert!(f.best("it doesnt work").is_some());
    }
}
