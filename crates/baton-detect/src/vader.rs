//! VADER (Hutto & Gilbert 2014) for ASCII texts, computed as Python `vaderSentiment` 3.3.2
//! computes it, bit for bit, without allocating per word.
//!
//! Most support messages are plain ASCII, and VADER was the costliest detector Baton ran on
//! them: with this scorer, sentiment on the benchmark's 216 Bitext utterances went from
//! 314,000 to 881,000 texts/s (`cargo bench -p baton-engine`, "VADER alone", the same hour of
//! 2026-12-02), the general one having already skipped texts without a lexicon word.
//!
//! It follows the reference's rules in the reference's order: whitespace tokens with their
//! punctuation stripped when at least three characters remain; booster words and "kind of" scored
//! 0; a lexicon word's valence adjusted by a preceding "no", capitals among mixed case (+-0.733),
//! the boosters up to three words back (+-0.293, damped to 95% and 90% with distance), negation up
//! to three words back (x -0.74, "never so" x1.25), the idioms of `SPECIAL_CASES`, and "least";
//! then "but" (x0.5 before, x1.5 after, with the reference's first-equal-value replacement), `!`
//! (0.292 each, up to 4) and `?` (0.18 each for 2 or 3, 0.96 beyond) emphasis, the normalisation
//! `x / sqrt(x^2 + 15)`, and Python's `round` (3 decimals, compound 4).
//!
//! Texts with any other character (emoji, accents, other scripts) need Python's Unicode
//! casing and the emoji lexicon: [`crate::sentiment::Sentiment`] gives them to the
//! `vader-parity` crate. `.ci/run` checks both against Python on the 23,703 texts of the VADER
//! ground truth (`tests/vader_parity.rs`); the unit tests compare this scorer with the crate.
//!
//! Data: `data/vader_lexicon.tsv` is the word and mean-valence columns of `vader_lexicon.txt`
//! from `vaderSentiment` 3.3.2, and the tables below its `BOOSTER_DICT`, `NEGATE` and
//! `SPECIAL_CASES` (MIT, copyright C.J. Hutto; `data/LICENSE-VADER`).

use rustc_hash::FxHashMap;

/// Word and mean valence of each lexicon entry, one per line, tab-separated.
const LEXICON: &str = include_str!("../data/vader_lexicon.tsv");

/// A booster raises (or, negative, damps) the valence of the lexicon word after it.
const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
/// Added to a word in capitals when the text mixes capitals and lower case.
const C_INCR: f64 = 0.733;
/// A negated word's valence is multiplied by this.
const N_SCALAR: f64 = -0.74;

/// One-word boosters and dampeners (`BOOSTER_DICT` without its three two-word keys).
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// The two-word boosters, read only as the two words before a lexicon word.
const PAIR_BOOSTERS: &[([&str; 2], f64)] = &[
    (["just", "enough"], B_DECR),
    (["kind", "of"], B_DECR),
    (["sort", "of"], B_DECR),
];

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Idioms whose valence replaces the word's (the reference's `SPECIAL_CASES`; its one-word
/// "badass" is left out, as no sequence the rule builds is a single word).
const SPECIAL_CASES: &[(&[&str], f64)] = &[
    (&["the", "shit"], 3.0),
    (&["the", "bomb"], 3.0),
    (&["bad", "ass"], 1.5),
    (&["bus", "stop"], 0.0),
    (&["yeah", "right"], -2.0),
    (&["kiss", "of", "death"], -1.5),
    (&["to", "die", "for"], 3.0),
    (&["beating", "heart"], 3.5),
];

/// The parsed lexicon and tables (build once; about 7,500 entries).
pub struct Vader {
    /// Every lexicon word and one-word booster, so that a token is looked up once.
    words: FxHashMap<&'static str, Entry>,
}

/// What the tables say of one lowercased word.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Its valence in the lexicon.
    valence: Option<f64>,
    /// What it adds as a booster (negative for a dampener).
    boost: Option<f64>,
}

/// One whitespace token, as the rules read it.
struct Token {
    /// Byte range of its lowercased form in the shared buffer.
    lower: (usize, usize),
    /// Its valence in the lexicon (lowercased).
    valence: Option<f64>,
    /// What it adds as a booster (lowercased).
    boost: Option<f64>,
    /// Python's `str.isupper()`: a capital and no lower-case letter.
    upper: bool,
}

/// The four VADER scores, as [`vader_parity::SentimentScores`] holds them.
pub type Scores = vader_parity::SentimentScores;

impl Vader {
    /// Parses the lexicon.
    pub fn new() -> Self {
        let mut words: FxHashMap<&'static str, Entry> = FxHashMap::default();
        for (word, valence) in LEXICON.lines().filter_map(|line| {
            let (word, valence) = line.split_once('\t')?;
            Some((word, valence.parse().ok()?))
        }) {
            words.entry(word).or_default().valence = Some(valence);
        }
        for &(word, boost) in BOOSTERS {
            words.entry(word).or_default().boost = Some(boost);
        }
        Self { words }
    }

    /// The scores of an ASCII `text`; `None` for a text with any other character.
    pub fn scores(&self, text: &str) -> Option<Scores> {
        if !text.is_ascii() {
            return None;
        }
        let mut buffer = String::with_capacity(text.len());
        let tokens: Vec<Token> = text
            .split(python_space)
            .filter(|t| !t.is_empty())
            .map(|token| {
                let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
                let word = if stripped.len() <= 2 { token } else { stripped };
                let start = buffer.len();
                buffer.push_str(word);
                buffer[start..].make_ascii_lowercase();
                let entry = self
                    .words
                    .get(&buffer[start..])
                    .copied()
                    .unwrap_or_default();
                Token {
                    lower: (start, buffer.len()),
                    valence: entry.valence,
                    boost: entry.boost,
                    upper: word.bytes().any(|b| b.is_ascii_uppercase())
                        && !word.bytes().any(|b| b.is_ascii_lowercase()),
                }
            })
            .collect();
        let words: Vec<&str> = tokens
            .iter()
            .map(|t| &buffer[t.lower.0..t.lower.1])
            .collect();
        let capitals = tokens.iter().filter(|t| t.upper).count();
        let cap_diff = capitals > 0 && capitals < tokens.len();

        let mut sentiments = Vec::with_capacity(tokens.len());
        for i in 0..tokens.len() {
            let word = words[i];
            let kind_of = word == "kind" && words.get(i + 1) == Some(&"of");
            let valence = if tokens[i].boost.is_some() || kind_of {
                0.0
            } else {
                valence(&tokens, &words, i, cap_diff)
            };
            sentiments.push(valence);
        }
        if let Some(b) = words.iter().position(|w| *w == "but") {
            but_check(&mut sentiments, b);
        }
        Some(score_valence(&sentiments, text))
    }
}

impl Default for Vader {
    fn default() -> Self {
        Self::new()
    }
}

/// `sentiment_valence` of the reference: the valence of token `i` in context (0 for a
/// word outside the lexicon).
fn valence(tokens: &[Token], words: &[&str], i: usize, cap_diff: bool) -> f64 {
    let Some(base) = tokens[i].valence else {
        return 0.0;
    };
    let in_lexicon = |j: usize| tokens[j].valence.is_some();
    let mut valence = base;
    if words[i] == "no" && i + 1 < words.len() && in_lexicon(i + 1) {
        // "no" negates the next word instead of counting itself.
        valence = 0.0;
    }
    if (i > 0 && words[i - 1] == "no")
        || (i > 1 && words[i - 2] == "no")
        || (i > 2 && words[i - 3] == "no" && matches!(words[i - 1], "or" | "nor"))
    {
        valence = base * N_SCALAR;
    }
    if tokens[i].upper && cap_diff {
        valence += if valence > 0.0 { C_INCR } else { -C_INCR };
    }
    for back in 0..3 {
        if i <= back || in_lexicon(i - back - 1) {
            continue;
        }
        let j = i - back - 1;
        let mut s = booster(&tokens[j], valence, cap_diff);
        if back == 1 && s != 0.0 {
            s *= 0.95;
        }
        if back == 2 && s != 0.0 {
            s *= 0.9;
        }
        valence += s;
        valence = negation_check(valence, words, back, i);
        if back == 2 {
            valence = special_idioms(valence, words, i);
        }
    }
    // "least" before the word negates it, except in "at least" and "very least".
    if i > 1 && !in_lexicon(i - 1) && words[i - 1] == "least" {
        if words[i - 2] != "at" && words[i - 2] != "very" {
            valence *= N_SCALAR;
        }
    } else if i > 0 && !in_lexicon(i - 1) && words[i - 1] == "least" {
        valence *= N_SCALAR;
    }
    valence
}

/// `_special_idioms_check`, for a word `i` with three words before it.
fn special_idioms(mut valence: f64, words: &[&str], i: usize) -> f64 {
    let idiom = |from: usize, to: usize| {
        SPECIAL_CASES
            .iter()
            .find(|(seq, _)| *seq == &words[from..=to])
            .map(|(_, v)| *v)
    };
    // "1 0", "2 1 0", "2 1", "3 2 1", "3 2": the first that is an idiom.
    let before = [
        (i - 1, i),
        (i - 2, i),
        (i - 2, i - 1),
        (i - 3, i - 1),
        (i - 3, i - 2),
    ];
    if let Some(v) = before.iter().find_map(|&(a, b)| idiom(a, b)) {
        valence = v;
    }
    if i + 1 < words.len() {
        if let Some(v) = idiom(i, i + 1) {
            valence = v;
        }
    }
    if i + 2 < words.len() {
        if let Some(v) = idiom(i, i + 2) {
            valence = v;
        }
    }
    // Two-word boosters ("kind of", "sort of") just before: "3 2 1" is never one.
    for pair in [&words[i - 3..i - 1], &words[i - 2..i]] {
        if let Some((_, boost)) = PAIR_BOOSTERS.iter().find(|(key, _)| *key == pair) {
            valence += boost;
        }
    }
    valence
}

/// `scalar_inc_dec`: what `token`, if a booster, adds to the word of `valence` after it.
fn booster(token: &Token, valence: f64, cap_diff: bool) -> f64 {
    let Some(boost) = token.boost else {
        return 0.0;
    };
    let mut scalar = if valence < 0.0 { -boost } else { boost };
    if token.upper && cap_diff {
        scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
    }
    scalar
}

/// Python's `str.split()` separators among ASCII characters.
fn python_space(c: char) -> bool {
    c.is_ascii_whitespace() || matches!(c, '\x0b' | '\x1c'..='\x1f')
}

/// The reference's `negated` of one word: a negation word, or any word with "n't".
fn negated(word: &str) -> bool {
    NEGATE.contains(&word) || word.contains("n't")
}

/// `_negation_check` for the word `back + 1` before word `i`.
fn negation_check(valence: f64, words: &[&str], back: usize, i: usize) -> f64 {
    let so_or_this = |w: &str| w == "so" || w == "this";
    match back {
        0 if negated(words[i - 1]) => valence * N_SCALAR,
        1 if words[i - 2] == "never" && so_or_this(words[i - 1]) => valence * 1.25,
        1 if words[i - 2] == "without" && words[i - 1] == "doubt" => valence,
        1 if negated(words[i - 2]) => valence * N_SCALAR,
        2 if (words[i - 3] == "never" && so_or_this(words[i - 2])) || so_or_this(words[i - 1]) => {
            valence * 1.25
        }
        2 if words[i - 3] == "without" && (words[i - 2] == "doubt" || words[i - 1] == "doubt") => {
            valence
        }
        2 if negated(words[i - 3]) => valence * N_SCALAR,
        _ => valence,
    }
}

/// `_but_check`: every value before the first "but" halved, every one after it raised by half,
/// replacing, as the reference does, the first value equal to the one read.
fn but_check(sentiments: &mut [f64], but: usize) {
    for k in 0..sentiments.len() {
        let value = sentiments[k];
        let Some(si) = sentiments.iter().position(|s| *s == value) else {
            continue;
        };
        if si < but {
            sentiments[si] = value * 0.5;
        } else if si > but {
            sentiments[si] = value * 1.5;
        }
    }
}

/// `score_valence`: the compound and the three proportions, rounded as Python rounds them.
/// What `!` and `?` add to the sum of valences, away from zero: 0.292 per `!` (at most four),
/// and 0.18 per `?` for two or three, 0.96 for more (vaderSentiment 3.3.2,
/// `_punctuation_emphasis`).
fn punctuation_emphasis(text: &str) -> f64 {
    let exclamations = text.bytes().filter(|&b| b == b'!').count().min(4);
    let questions = text.bytes().filter(|&b| b == b'?').count();
    let qm = match questions {
        0 | 1 => 0.0,
        2 | 3 => questions as f64 * 0.18,
        _ => 0.96,
    };
    exclamations as f64 * 0.292 + qm
}

fn score_valence(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    // Left to right from +0, as Python 3.11's `sum` adds floats.
    let mut sum = sentiments.iter().fold(0.0, |a, s| a + s);
    let emphasis = punctuation_emphasis(text);
    if sum > 0.0 {
        sum += emphasis;
    } else if sum < 0.0 {
        sum -= emphasis;
    }
    let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let (mut pos_sum, mut neg_sum, mut neutral) = (0.0f64, 0.0f64, 0usize);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neutral += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += emphasis;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= emphasis;
    }
    let total = pos_sum + neg_sum.abs() + neutral as f64;
    Scores {
        neg: python_round((neg_sum / total).abs(), 3),
        neu: python_round((neutral as f64 / total).abs(), 3),
        pos: python_round((pos_sum / total).abs(), 3),
        compound: python_round(compound, 4),
    }
}

/// Python's `round(x, digits)`: the decimal nearest to `x`'s exact value, ties to even, read
/// back as the nearest double.
///
/// For `|x| <= 1` and 3 or 4 digits, `x * 10^digits` is within 1.2e-12 of the exact product,
/// so away from a tie its nearest integer is the exact one, and dividing it by `10^digits`
/// (correctly rounded, like every IEEE division) gives the double nearest that decimal, as
/// Python's parse of it does. Near a tie the exact value decides: Rust's fixed-precision
/// formatting rounds it to nearest, ties to even, as Python does (a tie is rare enough that
/// formatting's allocation does not matter).
fn python_round(x: f64, digits: usize) -> f64 {
    let scale = if digits == 3 { 1e3 } else { 1e4 };
    let y = x * scale;
    if (y - y.floor() - 0.5).abs() > 1e-6 {
        return y.round_ties_even() / scale;
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that exercise every rule, each compared with the `vader-parity` crate (itself
    /// checked against Python): boosters near and far, capitals, negation at each distance,
    /// "no", "least", "but" with repeated values, idioms, "kind of", and punctuation.
    const RULES: &[&str] = &[
        "VADER is smart, handsome, and funny.",
        "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
        "VADER is not smart, handsome, nor funny.",
        "At least it isn't a horrible book.",
        "The book was only kind of good.",
        "The plot was good, but the characters are uncompelling and the dialog is not great.",
        "Today SUX!",
        "Today only kinda sux! But I'll get by, lol",
        "Make sure you :) or :D today!",
        "Catch utf-8 emoji such as such as and and",
        "Not bad at all",
        "no good, no bad, no or nor happy",
        "the least bit happy, at least happy, very least happy, least happy",
        "good but good but bad good good",
        "never so good, never this bad, without doubt great, without a doubt sad",
        "that was the bomb, yeah right, kiss of death, to die for",
        "i am sort of happy and kind of sad and just enough pleased",
        "is this real?? really??? really????",
        "wow!!!!!!! great",
        "   ",
        "",
        "ok",
        "GREAT GREAT",
        "great GREAT fine",
        "I don't like it, it's not good and I can't stand it",
        "nope, not happy. Never happy! rarely good, seldom bad",
        "you are the shit and a bad ass, badass",
        "a beating heart and a bus stop",
        "extremely bad, EXTREMELY bad, really really good",
        "I'd rather not... :( :-( </3",
    ];

    #[test]
    fn every_rule_matches_the_reference_port() {
        let ours = Vader::new();
        let reference = vader_parity::SentimentIntensityAnalyzer::new();
        for text in RULES {
            let got = ours.scores(text).expect("ascii");
            let want = reference.polarity_scores(text);
            assert_eq!(
                (got.neg, got.neu, got.pos, got.compound),
                (want.neg, want.neu, want.pos, want.compound),
                "{text:?}"
            );
        }
    }

    /// Words the rules look at, in several casings and with punctuation around them.
    const VOCABULARY: &[&str] = &[
        "good",
        "bad",
        "GREAT",
        "Horrible",
        "no",
        "No",
        "not",
        "isn't",
        "never",
        "so",
        "this",
        "without",
        "doubt",
        "least",
        "at",
        "very",
        "VERY",
        "but",
        "BUT",
        "kind",
        "of",
        "sort",
        "kinda",
        "just",
        "enough",
        "the",
        "shit",
        "bomb",
        "yeah",
        "right",
        "kiss",
        "death",
        "to",
        "die",
        "for",
        "bus",
        "stop",
        "or",
        "nor",
        "extremely",
        "barely",
        "happy!",
        "sad?",
        ":)",
        ":-(",
        "lol",
        "okay...",
        "!!",
        "??",
        "'love'",
        "(hate)",
        "refund",
        "order",
        "x",
        "ok",
    ];

    static OURS: std::sync::LazyLock<Vader> = std::sync::LazyLock::new(Vader::new);
    static REFERENCE: std::sync::LazyLock<vader_parity::SentimentIntensityAnalyzer> =
        std::sync::LazyLock::new(vader_parity::SentimentIntensityAnalyzer::new);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn any_mix_of_rule_words_scores_as_the_reference_port(
            words in proptest::collection::vec(proptest::sample::select(VOCABULARY), 0..14),
            spaces in proptest::collection::vec(
                proptest::sample::select(&[" ", "  ", "\t", "\n"][..]),
                14,
            ),
        ) {
            let text: String = words.iter().zip(&spaces).flat_map(|(w, s)| [*w, *s]).collect();
            let got = OURS.scores(&text).expect("ascii");
            let want = REFERENCE.polarity_scores(&text);
            // Where the valences cancel, the float remainder decides whether `!` and `?`
            // count, and which way: Python adds left to right and so does Baton, while the
            // crate's sum can leave another remainder (0 where Python's is not, the other way
            // round, or one of the other sign). Each compound is then the emphasis alone, its
            // negative or 0. Python is the reference: see
            // `cancelling_valences_keep_python_s_remainder`.
            let emphasis = emphasis_alone(&text);
            let cancelled = (got.neg, got.neu, got.pos) == (want.neg, want.neu, want.pos)
                && emphasis > 0.0
                && got.compound != want.compound
                && [got.compound, want.compound]
                    .iter()
                    .all(|c| [-emphasis, 0.0, emphasis].contains(c));
            proptest::prop_assume!(!cancelled);
            proptest::prop_assert_eq!(
                (got.neg, got.neu, got.pos, got.compound),
                (want.neg, want.neu, want.pos, want.compound),
                "{:?}", text
            );
        }
    }

    /// The compound of a text whose valences sum to zero but for its `!` and `?`.
    fn emphasis_alone(text: &str) -> f64 {
        let e = punctuation_emphasis(text);
        python_round(e / (e * e + 15.0).sqrt(), 4)
    }

    /// `python3 -c "from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer as S;
    /// print(S().polarity_scores('!! :-( death kind :) '))"` (vaderSentiment 3.3.2, Python
    /// 3.11): -1.5 - 2.9 + 2.4 + 2.0 leaves -4.4e-16, so the two `!` count against; and
    /// likewise for ":-( stop happy! " (compound 0.0) and "death bad lol happy! okay... "
    /// (compound -0.0752).
    #[test]
    fn cancelling_valences_keep_python_s_remainder() {
        let got = OURS.scores("!! :-( death kind :) ").expect("ascii");
        assert_eq!(
            (got.neg, got.neu, got.pos, got.compound),
            (0.464, 0.072, 0.464, -0.1491)
        );
        // -1.5 - 1.2 + 2.7 is exactly 0 in Python: the `!` counts for nothing.
        let got = OURS.scores(":-( stop happy! ").expect("ascii");
        assert_eq!(
            (got.neg, got.neu, got.pos, got.compound),
            (0.574, 0.0, 0.426, 0.0)
        );
        assert_eq!(emphasis_alone("!!"), 0.1491);
        // Python leaves a negative remainder here, so the `!` counts against (the crate's is
        // positive, and its compound 0.0752).
        let got = OURS.scores("death bad lol happy! okay... ").expect("ascii");
        assert_eq!(
            (got.neg, got.neu, got.pos, got.compound),
            (0.46, 0.0, 0.54, -0.0752)
        );
    }

    #[test]
    fn texts_beyond_ascii_are_left_to_the_general_scorer() {
        assert!(OURS.scores("café très bien").is_none());
        assert!(OURS.scores("great 😀").is_none());
    }

    #[test]
    fn python_round_is_half_even_on_exact_ties() {
        assert_eq!(python_round(0.0625, 3), 0.062);
        assert_eq!(python_round(0.1875, 3), 0.188);
        assert_eq!(python_round(-0.51234, 4), -0.5123);
        assert_eq!(python_round(0.03125, 4), 0.0312);
    }

    proptest::proptest! {
        #[test]
        fn python_round_equals_the_exact_decimal_rounding(
            x in -1.0f64..=1.0,
            four in proptest::bool::ANY,
        ) {
            let digits = if four { 4 } else { 3 };
            let exact: f64 = format!("{x:.digits$}").parse().expect("a number");
            proptest::prop_assert_eq!(python_round(x, digits).to_bits(), exact.to_bits(), "{}", x);
        }
    }
}
