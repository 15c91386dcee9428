//! A learned linear model over hashed n-grams and lexicon features: binary logistic heads for
//! the emotions, and an intent block for the requests and topics.
//!
//! Why a linear model: it trains in about a minute on the shared datasets (`baton train`),
//! scores a turn in microseconds, and its inputs include the lexicon families, so wording the
//! training data never had still reaches it through the families' stems, synonyms and negation.
//!
//! Features (all hashed with xxh3 into `2^bits` buckets, each block L2-normalised):
//! - word unigrams and bigrams of the lowercased text (apostrophes dropped: "don't" = "dont");
//! - character 3- to 5-grams inside each word padded with spaces (robust to typos and
//!   inflection);
//! - the lexicon: for every phrase family that matched, its code and strength (strong or weak),
//!   valued at the family's score;
//! - form: VADER's `neg` and negative compound, shouting (capitals) and `!!`.
//!
//! Each binary head's score is `sigmoid(w . x + bias + offset)`, where `offset` (fixed at
//! training time on a validation split) puts the head's best-F1 point at [`OPERATING_POINT`],
//! the default policy's `trigger_min_score`.
//!
//! The intent block is one softmax over the native intents of the labelled sets
//! ("banking77:card_payment_not_recognised", "bitext:get_refund", ...), each mapped to the code
//! its set's label map gives it, or to none. A code's probability is the sum of its classes',
//! shifted by the code's `offset` on the logit scale as for a head. Sets that disagree (BANKING77
//! files "cancel my purchase" under refund, Bitext under cancellation) then keep their
//! conventions in their own classes instead of pulling one weight two ways, and a code learns
//! the fine lines between neighbouring intents (an unrecognised card payment against a declined
//! one) that one yes-or-no head over ten intents blurs.
//!
//! The file format (`.model`): the 8 bytes `BATONLM1`, a little-endian `u32` header length, a
//! JSON [`ModelHeader`], then `2^bits * heads` signed bytes interleaved by bucket (all heads of
//! bucket 0, then bucket 1...), then `2^bits * intents` signed bytes interleaved the same way,
//! then one bit per bucket saying whether training saw a word there. Weights are scaled by
//! their head's or class's `scale`.

use baton_domain::ReasonCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The score at which a head's validation F1 was best (the default `trigger_min_score`).
pub const OPERATING_POINT: f64 = 0.6;

const MAGIC: &[u8; 8] = b"BATONLM1";

/// Feature namespaces, hashed in so that a word and a character n-gram never share a key.
const NS_WORD: u8 = 1;
const NS_BIGRAM: u8 = 2;
const NS_CHAR: u8 = 3;
const NS_LEXICON: u8 = 4;
const NS_FORM: u8 = 5;

/// What the model file says about itself (the JSON header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// log2 of the number of hash buckets.
    pub bits: u8,
    /// The binary heads, in the order of the interleaved weights.
    pub heads: Vec<HeadHeader>,
    /// The intent classes of the softmax block, in the order of its interleaved weights (empty:
    /// no intent block).
    #[serde(default)]
    pub intents: Vec<IntentHeader>,
    /// The codes the intent block scores, with their calibration.
    #[serde(default)]
    pub intent_codes: Vec<IntentCode>,
    /// How the model was made (data, splits, settings), for the model card.
    #[serde(default)]
    pub provenance: BTreeMap<String, serde_json::Value>,
}

/// One head's constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadHeader {
    /// The reason code this head scores.
    pub code: ReasonCode,
    /// Intercept.
    pub bias: f32,
    /// Calibration shift added to the logit (see the module docs).
    pub offset: f32,
    /// Weight of a stored byte: weight = byte * scale.
    pub scale: f32,
}

/// One class of the intent block: a native intent of a training set ("banking77:
/// card_payment_not_recognised"), and the reason code its set maps it to, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentHeader {
    /// `set:intent`.
    pub name: String,
    /// The code the set's label map gives the intent (`None`: no escalation code).
    pub code: Option<ReasonCode>,
    /// Intercept.
    pub bias: f32,
    /// Weight of a stored byte: weight = byte * scale.
    pub scale: f32,
}

/// A code scored by the intent block: the summed probability of its classes, shifted by
/// `offset` on the logit scale (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentCode {
    /// The code.
    pub code: ReasonCode,
    /// Calibration shift added to the logit of the summed probability.
    pub offset: f32,
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not a Baton model file.
    #[error(
        "not a Baton model file (it must start with `BATONLM1`): retrain it with `baton train`"
    )]
    Magic,
    /// The file ends early or its sizes disagree.
    #[error(
        "the model file is truncated or its sizes disagree ({0}): retrain it with `baton train`"
    )]
    Size(String),
    /// The header is not valid JSON of the expected shape.
    #[error("the model header is invalid: {0}")]
    Header(#[from] serde_json::Error),
}

/// Sparse features of one text: bucket indexes and values.
#[derive(Debug, Default, Clone)]
pub struct Features {
    /// Bucket of each feature.
    pub index: Vec<u32>,
    /// Value of each feature.
    pub value: Vec<f32>,
    /// How many of the leading features are word unigrams and bigrams.
    pub words: usize,
    /// How many of the leading features are n-grams, words and characters (the rest are
    /// lexicon and form).
    pub ngrams: usize,
}

/// What besides the words the model reads from a turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// Lexicon hits: code, whether the strong alternation matched, and the score.
    pub lexicon: &'a [(ReasonCode, bool, f64)],
    /// VADER `neg`, in `[0, 1]`.
    pub vader_neg: f64,
    /// VADER compound, in `[-1, 1]`.
    pub vader_compound: f64,
    /// Share of letters in capitals, when the text has 10 letters or more.
    pub caps: f64,
    /// Longest run of `!`.
    pub exclamations: usize,
}

fn hash(ns: u8, bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, u64::from(ns))
}

/// The key of a word pair: the two words joined by a space (words never contain one).
fn pair_key(buf: &mut Vec<u8>, a: &str, b: &str) -> u64 {
    buf.clear();
    buf.extend_from_slice(a.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(b.as_bytes());
    hash(NS_BIGRAM, buf)
}

fn push(out: &mut Features, mask: u64, key: u64, value: f32) {
    out.index.push((key & mask) as u32);
    out.value.push(value);
}

fn normalise(values: &mut [f32]) {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Lowercased words of `text` (letters and digits; apostrophes dropped inside words).
pub fn words(text: &str) -> Vec<String> {
    let words = Words::new(text);
    (0..words.len()).map(|i| words.word(i).to_owned()).collect()
}

/// The lowercased words of a text (as [`words`] splits them) kept in one buffer with their
/// byte ranges: no allocation per word.
#[derive(Debug, Clone, Default)]
pub struct Words {
    lower: String,
    spans: Vec<(usize, usize)>,
}

impl Words {
    /// Splits and lowercases `text`.
    pub fn new(text: &str) -> Self {
        let mut lower = String::with_capacity(text.len());
        let mut spans = Vec::with_capacity(16);
        let mut start = None;
        for c in text.chars() {
            if c.is_alphanumeric() {
                if start.is_none() {
                    start = Some(lower.len());
                }
                if c.is_ascii() {
                    lower.push(c.to_ascii_lowercase());
                } else {
                    lower.extend(c.to_lowercase());
                }
            } else if (c == '\'' || c == '’') && start.is_some() {
                continue;
            } else if let Some(s) = start.take() {
                spans.push((s, lower.len()));
            }
        }
        if let Some(s) = start {
            spans.push((s, lower.len()));
        }
        Self { lower, spans }
    }

    /// How many words.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no word.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Word `i` (`i < len()`).
    pub fn word(&self, i: usize) -> &str {
        &self.lower[self.spans[i].0..self.spans[i].1]
    }

    /// The bucket of word `i` alone (`pair` false) or of the pair that ends at it (`pair`
    /// true, `i >= 1`), as [`featurize`] hashes them; `buf` is scratch space for the pair.
    pub fn bucket(&self, bits: u8, i: usize, pair: bool, buf: &mut Vec<u8>) -> u32 {
        (self.key(i, pair, buf) & ((1u64 << bits) - 1)) as u32
    }

    /// The 64-bit hash behind [`Words::bucket`].
    fn key(&self, i: usize, pair: bool, buf: &mut Vec<u8>) -> u64 {
        if pair {
            pair_key(buf, self.word(i - 1), self.word(i))
        } else {
            hash(NS_WORD, self.word(i).as_bytes())
        }
    }
}

/// Extracts the features of `text` into `out` (cleared first) for a model of `2^bits` buckets.
pub fn featurize(bits: u8, text: &str, extras: &Extras<'_>, out: &mut Features) {
    out.index.clear();
    out.value.clear();
    let mask = (1u64 << bits) - 1;
    let words = Words::new(text);
    let mut buf = Vec::with_capacity(64);
    // Words and pairs, then each word's character 3- to 5-grams (three fewer than its length
    // plus two pads, per size), then lexicon and form: reserved once.
    let grams: usize = words.spans.iter().map(|(a, b)| 3 * (b - a) + 1).sum();
    let needed = 2 * words.len() + grams + extras.lexicon.len() + 5;
    out.index.reserve(needed);
    out.value.reserve(needed);

    for i in 0..words.len() {
        push(out, mask, words.key(i, false, &mut buf), 1.0);
        if i > 0 {
            push(out, mask, words.key(i, true, &mut buf), 1.0);
        }
    }
    normalise(&mut out.value);
    out.words = out.index.len();

    let start = out.value.len();
    for i in 0..words.len() {
        buf.clear();
        buf.push(b' ');
        buf.extend_from_slice(words.word(i).as_bytes());
        buf.push(b' ');
        for n in 3..=5 {
            for gram in buf.windows(n) {
                push(out, mask, hash(NS_CHAR, gram), 1.0);
            }
        }
    }
    normalise(&mut out.value[start..]);
    out.ngrams = out.index.len();

    for (code, strong, score) in extras.lexicon {
        let strength: &[u8] = if *strong { b"strong" } else { b"weak" };
        buf.clear();
        buf.extend_from_slice(code.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(strength);
        push(out, mask, hash(NS_LEXICON, &buf), *score as f32);
    }
    let form: [(&[u8], f64); 5] = [
        (b"vader_neg", extras.vader_neg),
        (
            b"vader_negative_compound",
            (-extras.vader_compound).max(0.0),
        ),
        (b"caps", if extras.caps >= 0.7 { 1.0 } else { 0.0 }),
        (
            b"exclamations_2",
            f64::from(u8::from(extras.exclamations >= 2)),
        ),
        (
            b"exclamations_3",
            f64::from(u8::from(extras.exclamations >= 3)),
        ),
    ];
    for (name, value) in form {
        if value > 0.0 {
            push(out, mask, hash(NS_FORM, name), value as f32);
        }
    }
}

/// A trained model: binary logistic heads, and a softmax over intent classes whose
/// probabilities add up per reason code, over shared hashed features.
#[derive(Debug, Clone)]
pub struct LinearModel {
    header: ModelHeader,
    /// The quantised weights, one row per bucket: the intent classes' bytes, then the heads'
    /// (a weight is `byte * scale` of its class or head), padded with zeros to `stride` so
    /// that a row adds as whole vectors. Kept as bytes, so the rows a turn touches stay in the
    /// CPU's caches, and in one row, so a feature costs one read.
    rows: Vec<i8>,
    /// Bytes per row: classes plus heads, rounded up to a multiple of 16.
    stride: usize,
    /// Per intent class, the index of its code in `header.intent_codes`.
    intent_code_of: Vec<Option<usize>>,
    /// Per code of `header.intent_codes`, its classes (the inverse of `intent_code_of`).
    classes_of_code: Vec<Vec<usize>>,
    /// Per code of `header.intent_codes`, `e^offset`: the factor its calibration shift puts on
    /// the odds of its summed probability.
    odds_factor: Vec<f64>,
    /// One bit per bucket: whether a word unigram or bigram of the training data fell in it.
    seen: Vec<u8>,
    /// The vector instructions this processor has, detected once when the model is built.
    arch: pulp::Arch,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// `sigmoid(logit(p) + offset)` for `factor = e^offset`, without a logarithm or an
/// exponential: the odds `p / (1 - p)` times the factor, back to a probability. `p` is kept
/// within `[1e-6, 1 - 1e-6]` first, so a certain 0 or 1 still moves with the offset.
fn shift_odds(p: f64, factor: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    factor * p / (factor * p + (1.0 - p))
}

/// Per intent class (given by its code), the index of that code in `codes`.
fn code_positions(
    classes: impl Iterator<Item = Option<ReasonCode>>,
    codes: &[ReasonCode],
) -> Vec<Option<usize>> {
    classes
        .map(|code| codes.iter().position(|c| Some(*c) == code))
        .collect()
}

/// The longest run of features added as integers before it is flushed: 256 rows of bytes
/// (at most 128 in size) still fit an `i16`, whatever a model file holds.
const MAX_RUN: usize = 256;

/// Running raw sums of one turn, laid out as a row (intent classes, then heads), with the
/// integer sums of the current run of equally valued features.
struct Sums {
    total: Vec<f32>,
    run: Vec<i16>,
}

/// The body of [`LinearModel::accumulate`]: the rows of `index`, scaled by `value`, added to
/// `sums.total`.
///
/// The features of a block share one value (each block is normalised from ones), so their rows
/// add up as integers and are scaled once per run. `pulp` compiles the loop for the widest
/// vectors the processor has (AVX2 where present, chosen once at run time) and for the base
/// instruction set otherwise; the integer sums, and so the scores, are the same either way.
struct AddRows<'a> {
    rows: &'a [i8],
    stride: usize,
    index: &'a [u32],
    value: &'a [f32],
    sums: &'a mut Sums,
}

impl pulp::WithSimd for AddRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            rows,
            stride,
            index,
            value,
            sums,
        } = self;
        let (mut run_value, mut run_len) = (0.0, 0);
        for (&i, &v) in index.iter().zip(value) {
            if v != run_value || run_len == MAX_RUN {
                flush(&mut sums.total, &mut sums.run, run_value);
                (run_value, run_len) = (v, 0);
            }
            let row = &rows[i as usize * stride..][..stride];
            // The shipped model's rows are 128 bytes: at a size known when compiling, the row
            // adds as eight unrolled vector additions with no loop or bounds checks.
            match (
                <&mut [i16; SHIPPED_STRIDE]>::try_from(&mut sums.run[..]),
                <&[i8; SHIPPED_STRIDE]>::try_from(row),
            ) {
                (Ok(run), Ok(row)) => add_row(run, row),
                _ => add_row(&mut sums.run, row),
            }
            run_len += 1;
        }
        flush(&mut sums.total, &mut sums.run, run_value);
    }
}

/// The row size of the shipped model (113 intent classes and 2 heads, rounded up to 16).
const SHIPPED_STRIDE: usize = 128;

/// Adds one row of bytes to the run's integer sums.
#[inline(always)]
fn add_row<R: AsMut<[i16]> + ?Sized, W: AsRef<[i8]> + ?Sized>(run: &mut R, row: &W) {
    for (a, &w) in run.as_mut().iter_mut().zip(row.as_ref()) {
        *a += i16::from(w);
    }
}

/// The softmax's numerators: each logit `z` becomes `e^(z - top)`, and 0 for a class more
/// than 16 below the best (it would weigh under e^-16 = 1e-7 of it). Compiled like
/// [`AddRows`], so the exponentials run eight at a time where AVX2 is present.
struct Exponentials<'a> {
    z: &'a mut [f32],
    top: f32,
}

impl pulp::WithSimd for Exponentials<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for z in self.z.iter_mut() {
            let d = *z - self.top;
            *z = if d < -16.0 { 0.0 } else { exp_near_zero(d) };
        }
    }
}

/// `e^x` for `x` in `[-16, 0]`, within about one unit in the last place of `f32`: `x = k ln 2
/// + r` with `|r| <= ln 2 / 2`, `e^r` by its Taylor series to the 7th term (truncation error
/// under `r^7 / 7! = 1.2e-7`), scaled by `2^k` through the exponent bits. Written without
/// calls so that it vectorises (the standard library's `exp` is a call per value).
#[inline(always)]
fn exp_near_zero(x: f32) -> f32 {
    // ln 2 split in two (Cody and Waite 1980) so that `k * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let k = (x * std::f32::consts::LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `k` is in [-24, 0] here, so `k + 127` is a normal exponent.
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    p * scale
}

/// Adds the run's integer sums times its value `v` to `total`, and empties the run.
#[inline(always)]
fn flush(total: &mut [f32], run: &mut [i16], v: f32) {
    for (t, r) in total.iter_mut().zip(run.iter_mut()) {
        *t += f32::from(*r) * v;
        *r = 0;
    }
}

impl LinearModel {
    /// log2 of the bucket count.
    pub fn bits(&self) -> u8 {
        self.header.bits
    }

    /// The header (heads, intents and provenance).
    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    /// The codes this model scores: the binary heads', then the intent block's.
    pub fn codes(&self) -> impl Iterator<Item = ReasonCode> + '_ {
        self.header
            .heads
            .iter()
            .map(|h| h.code)
            .chain(self.header.intent_codes.iter().map(|c| c.code))
    }

    /// Scores every code on `features`: `(code, score in [0, 1])`, in [`codes`](Self::codes)
    /// order.
    pub fn scores(&self, features: &Features) -> Vec<(ReasonCode, f64)> {
        let mut sums = self.zero();
        self.accumulate(&mut sums, &features.index, &features.value);
        self.finish(&sums)
    }

    fn zero(&self) -> Sums {
        Sums {
            total: vec![0.0; self.stride],
            run: vec![0; self.stride],
        }
    }

    fn accumulate(&self, sums: &mut Sums, index: &[u32], value: &[f32]) {
        self.arch.dispatch(AddRows {
            rows: &self.rows,
            stride: self.stride,
            index,
            value,
            sums,
        });
    }

    fn finish(&self, sums: &Sums) -> Vec<(ReasonCode, f64)> {
        let mut out: Vec<(ReasonCode, f64)> = self
            .header
            .heads
            .iter()
            .zip(&sums.total[self.header.intents.len()..])
            .map(|(h, z)| (h.code, sigmoid(f64::from(z * h.scale + h.bias + h.offset))))
            .collect();
        if !self.header.intents.is_empty() {
            // Logits, the best of them, then every exponential relative to it (vectorised).
            let mut e: Vec<f32> = self
                .header
                .intents
                .iter()
                .zip(&sums.total)
                .map(|(c, z)| z * c.scale + c.bias)
                .collect();
            let top = e.iter().copied().fold(f32::MIN, f32::max);
            self.arch.dispatch(Exponentials { z: &mut e, top });
            let mut mass = vec![0f32; self.header.intent_codes.len()];
            let mut total = 0.0;
            for (e, code) in e.iter().zip(&self.intent_code_of) {
                total += e;
                if let Some(c) = code {
                    mass[*c] += e;
                }
            }
            out.extend(
                self.header
                    .intent_codes
                    .iter()
                    .zip(mass)
                    .zip(&self.odds_factor)
                    .map(|((c, m), k)| (c.code, shift_odds(f64::from(m / total), *k))),
            );
        }
        out
    }

    /// How strongly one feature bucket argues for `code`: the head's weight, or for a code of
    /// the intent block the largest weight among its classes. `None` when the model does not
    /// score `code`.
    pub fn evidence_weight(&self, code: ReasonCode, bucket: u32) -> Option<f32> {
        let b = bucket as usize;
        if let Some(h) = self.header.heads.iter().position(|h| h.code == code) {
            let at = b * self.stride + self.header.intents.len() + h;
            return Some(f32::from(self.rows[at]) * self.header.heads[h].scale);
        }
        let c = self
            .header
            .intent_codes
            .iter()
            .position(|c| c.code == code)?;
        self.classes_of_code[c]
            .iter()
            .map(|&i| f32::from(self.rows[b * self.stride + i]) * self.header.intents[i].scale)
            .reduce(f32::max)
    }

    /// Reads a model file.
    ///
    /// # Errors
    /// [`ModelError`] when the bytes are not a whole model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(ModelError::Magic)?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| ModelError::Size("no header length".into()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(ModelError::Size("header longer than the file".into()));
        }
        let (head, body) = rest.split_at(len);
        let header: ModelHeader = serde_json::from_slice(head)?;
        if header.bits > 24 || (header.heads.is_empty() && header.intents.is_empty()) {
            return Err(ModelError::Size(format!(
                "bits {} with {} heads and {} intents are out of range",
                header.bits,
                header.heads.len(),
                header.intents.len()
            )));
        }
        let (n, k) = (header.heads.len(), header.intents.len());
        let buckets = 1usize << header.bits;
        let expected = (n + k)
            .checked_mul(buckets)
            .and_then(|w| w.checked_add(buckets.div_ceil(8)));
        if expected != Some(body.len()) {
            return Err(ModelError::Size(format!(
                "{} weight bytes for {n} heads and {k} intents at {} bits",
                body.len(),
                header.bits
            )));
        }
        let (body, seen) = body.split_at(buckets * (n + k));
        let (heads, intents) = body.split_at(buckets * n);
        let signed = |bytes: &[u8]| bytes.iter().map(|&b| b as i8).collect::<Vec<i8>>();
        Ok(Self::from_parts(
            header,
            &signed(heads),
            &signed(intents),
            seen.to_vec(),
        ))
    }

    /// A model from its header, the heads' weights (`2^bits` rows of one byte per head), the
    /// intent block's weights (`2^bits` rows of one byte per class) and the seen-bucket bits.
    fn from_parts(header: ModelHeader, heads: &[i8], intents: &[i8], seen: Vec<u8>) -> Self {
        let (k, n) = (header.intents.len(), header.heads.len());
        let stride = (k + n).div_ceil(16) * 16;
        let mut rows = vec![0i8; (1usize << header.bits) * stride];
        for (b, row) in rows.chunks_mut(stride).enumerate() {
            if let Some(from) = intents.get(b * k..(b + 1) * k) {
                row[..k].copy_from_slice(from);
            }
            if let Some(from) = heads.get(b * n..(b + 1) * n) {
                row[k..k + n].copy_from_slice(from);
            }
        }
        let intent_code_of = code_positions(
            header.intents.iter().map(|c| c.code),
            &header
                .intent_codes
                .iter()
                .map(|c| c.code)
                .collect::<Vec<_>>(),
        );
        let classes_of_code = (0..header.intent_codes.len())
            .map(|c| (0..k).filter(|&i| intent_code_of[i] == Some(c)).collect())
            .collect();
        let odds_factor = header
            .intent_codes
            .iter()
            .map(|c| f64::from(c.offset).exp())
            .collect();
        Self {
            intent_code_of,
            classes_of_code,
            odds_factor,
            header,
            rows,
            stride,
            seen,
            arch: pulp::Arch::new(),
        }
    }

    /// Writes the model file (weights quantised to signed bytes per head and per class).
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let (k, n) = (self.header.intents.len(), self.header.heads.len());
        let mut out = Vec::with_capacity(12 + header.len() + self.rows.len() + self.seen.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        // The file keeps the heads' bytes of every bucket first, then the classes'.
        for row in self.rows.chunks(self.stride) {
            out.extend(row[k..k + n].iter().map(|&w| w as u8));
        }
        for row in self.rows.chunks(self.stride) {
            out.extend(row[..k].iter().map(|&w| w as u8));
        }
        out.extend_from_slice(&self.seen);
        out
    }

    /// The share of the word unigrams and bigrams of `features` that training saw, in
    /// `[0, 1]` (1 for a text without words).
    pub fn familiarity(&self, features: &Features) -> f64 {
        let words = &features.index[..features.words];
        if words.is_empty() {
            return 1.0;
        }
        let seen = words
            .iter()
            .filter(|&&b| self.seen[b as usize / 8] & (1 << (b % 8)) != 0)
            .count();
        seen as f64 / words.len() as f64
    }

    /// Scores every code, leaning on the lexicon where the wording is new: with `m` the full
    /// score, `l` the score from the lexicon and form features alone (which training teaches
    /// to stand on their own, see [`TrainConfig::ngram_dropout`]) and `f` the
    /// [`familiarity`](Self::familiarity) of the words, a code scores `m` when `m >= l`, else
    /// `f * m + (1 - f) * l`. On wording like the training data's, the n-grams decide (they
    /// know a refund policy question from a refund request); on wording they never saw, the
    /// lexicon's stems, synonyms and negation carry the decision.
    pub fn scores_blended(&self, features: &Features) -> Vec<(ReasonCode, f64)> {
        // One pass: the lexicon and form features first (the lexicon-only sums), then the
        // n-grams on top (the full sums). Where every word is familiar, the full score stands
        // alone and the lexicon-only one is not needed.
        let f = self.familiarity(features);
        let mut sums = self.zero();
        self.accumulate(
            &mut sums,
            &features.index[features.ngrams..],
            &features.value[features.ngrams..],
        );
        let lex = (f < 1.0).then(|| self.finish(&sums));
        self.accumulate(
            &mut sums,
            &features.index[..features.ngrams],
            &features.value[..features.ngrams],
        );
        let full = self.finish(&sums);
        let Some(lex) = lex else {
            return full;
        };
        full.into_iter()
            .zip(lex)
            .map(|((code, m), (_, l))| (code, if m >= l { m } else { f * m + (1.0 - f) * l }))
            .collect()
    }
}

/// One training example: features, and per head a label (`None`: this example says nothing
/// about that head, so the head does not train on it).
#[derive(Debug, Clone)]
pub struct Example {
    /// The features.
    pub features: Features,
    /// Label per binary head, in head order.
    pub labels: Vec<Option<bool>>,
    /// The intent class, an index into the `intents` given to [`train`] (`None`: the example
    /// does not train the intent block).
    pub intent: Option<u16>,
    /// Whether the example belongs to the validation split (used to calibrate, never to fit).
    pub validation: bool,
    /// The source set: calibration weighs each set that has positives for a head equally.
    pub group: u16,
}

/// Training settings.
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    /// log2 of the bucket count.
    pub bits: u8,
    /// Passes over the training examples.
    pub epochs: usize,
    /// AdaGrad's base learning rate.
    pub learning_rate: f64,
    /// L2 penalty per example.
    pub l2: f64,
    /// Seed of the shuffle.
    pub seed: u64,
    /// Share of training steps that see only an example's lexicon and form features, so the
    /// head learns to stand on the lexicon where the wording is new to it (as dropout does).
    pub ngram_dropout: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            bits: 15,
            epochs: 30,
            learning_rate: 0.05,
            l2: 3e-5,
            seed: 7,
            ngram_dropout: 0.3,
        }
    }
}

/// One class of the intent block to train: `set:intent` and the code its set maps it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentSpec {
    /// `set:intent`.
    pub name: String,
    /// The reason code, if the set maps the intent to one.
    pub code: Option<ReasonCode>,
}

/// Validation figures of one head after calibration.
#[derive(Debug, Clone, Serialize)]
pub struct HeadReport {
    /// The code.
    pub code: ReasonCode,
    /// Training examples (positive, all).
    pub train: (usize, usize),
    /// Validation examples (positive, all).
    pub validation: (usize, usize),
    /// The raw probability chosen as the operating point.
    pub threshold: f64,
    /// Validation F1 at that point.
    pub validation_f1: f64,
    /// The other heads' logits this head adds, and in what share (empty for most heads and
    /// for the intent block's codes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub borrowed: Vec<Borrowed>,
}

/// A share of another head's logit added to a head's, chosen on the validation split where it
/// raises the head's F1 (shares 0.1 to 1.0 in steps of 0.1).
#[derive(Debug, Clone, Serialize)]
pub struct Borrowed {
    /// The other head.
    pub code: ReasonCode,
    /// The share of its logit, in [0, 1].
    pub share: f64,
}

/// Trains one logistic head per code in `codes` with AdaGrad over class-balanced examples (each
/// head may then add a share of another's logit: see [`HeadReport::borrowed`]), and a softmax
/// over `intents` (the intent block: see the module docs), then picks each head's and each
/// intent code's operating point on the validation examples (the best-F1 threshold, mapped to
/// [`OPERATING_POINT`]). Deterministic for a given seed.
pub fn train(
    codes: &[ReasonCode],
    intents: &[IntentSpec],
    examples: &[Example],
    config: &TrainConfig,
    provenance: BTreeMap<String, serde_json::Value>,
) -> (LinearModel, Vec<HeadReport>) {
    let buckets = 1usize << config.bits;
    let fitted: Vec<FittedHead> = codes
        .iter()
        .enumerate()
        .map(|(h, &code)| fit_head(examples, code, h, buckets, config))
        .collect();
    let mut heads = Vec::new();
    let mut weights = vec![0i8; buckets * codes.len()];
    let mut reports = Vec::new();
    for (h, &code) in codes.iter().enumerate() {
        let (w, bias, share) = borrow_from_other_heads(examples, &fitted, h);
        let mut scored = probabilities(&validation_logits(examples, h, &w, bias));
        let (threshold, validation_f1) = best_threshold(&mut scored);
        let max = w.iter().fold(0f64, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        // Quantise to signed bytes, as the file stores them.
        let step = scale as f32;
        for (b, x) in w.iter().enumerate() {
            weights[b * codes.len() + h] = (*x as f32 / step).round().clamp(-127.0, 127.0) as i8;
        }
        heads.push(HeadHeader {
            code,
            bias: bias as f32,
            offset: (logit(OPERATING_POINT) - logit(threshold)) as f32,
            scale: scale as f32,
        });
        reports.push(HeadReport {
            code,
            train: fitted[h].train,
            validation: (scored.iter().filter(|(_, y, _)| *y).count(), scored.len()),
            threshold,
            validation_f1,
            borrowed: share,
        });
    }
    let mut seen = vec![0u8; buckets.div_ceil(8)];
    for e in examples.iter().filter(|e| !e.validation) {
        for &b in &e.features.index[..e.features.words] {
            seen[b as usize / 8] |= 1 << (b % 8);
        }
    }
    let block = train_intents(intents, examples, config);
    reports.extend(block.reports);
    let header = ModelHeader {
        bits: config.bits,
        heads,
        intents: block.classes,
        intent_codes: block.codes,
        provenance,
    };
    let model = LinearModel::from_parts(header, &weights, &block.weights, seen);
    (model, reports)
}

/// One binary head after fitting: plain weights per bucket (the NB-LR ratios folded in), its
/// intercept, and its training examples (positive, all).
struct FittedHead {
    code: ReasonCode,
    w: Vec<f64>,
    bias: f64,
    train: (usize, usize),
}

/// Fits head `h` (see [`train`]) on the training examples that label it.
fn fit_head(
    examples: &[Example],
    code: ReasonCode,
    h: usize,
    buckets: usize,
    config: &TrainConfig,
) -> FittedHead {
    use rand::seq::SliceRandom;
    use rand::Rng;
    use rand::SeedableRng;
    let mut order: Vec<usize> = (0..examples.len())
        .filter(|&i| !examples[i].validation && examples[i].labels[h].is_some())
        .collect();
    let positives = order
        .iter()
        .filter(|&&i| examples[i].labels[h] == Some(true))
        .count();
    let total = order.len();
    let class_weight = class_weights(examples, &order, h);
    // NB-LR (Wang & Manning 2012, "Baselines and bigrams"): each feature is scaled by its
    // log-count ratio between the classes, so the words that separate them start ahead.
    let ratio = log_count_ratio(examples, &order, h, buckets);
    let mut w = vec![0f64; buckets];
    let mut g2 = vec![1e-8f64; buckets];
    let (mut bias, mut bias_g2) = (0f64, 1e-8f64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed + h as u64);
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        for &i in &order {
            let ex = &examples[i];
            let y = ex.labels[h] == Some(true);
            let from = if rng.random_bool(config.ngram_dropout) {
                ex.features.ngrams
            } else {
                0
            };
            let index = &ex.features.index[from..];
            let value = &ex.features.value[from..];
            let mut z = bias;
            for (&j, &v) in index.iter().zip(value) {
                z += w[j as usize] * f64::from(v) * ratio[j as usize];
            }
            let weight = class_weight[&(ex.group, y)];
            let g = (sigmoid(z) - f64::from(u8::from(y))) * weight;
            for (&j, &v) in index.iter().zip(value) {
                let j = j as usize;
                let grad = g * f64::from(v) * ratio[j] + config.l2 * w[j];
                g2[j] += grad * grad;
                w[j] -= config.learning_rate * grad / g2[j].sqrt();
            }
            bias_g2 += g * g;
            bias -= config.learning_rate * g / bias_g2.sqrt();
        }
    }
    // Fold the ratios into the weights: the model file stores plain weights.
    for (x, r) in w.iter_mut().zip(&ratio) {
        *x *= r;
    }
    FittedHead {
        code,
        w,
        bias,
        train: (positives, total),
    }
}

/// `(logit, label, group)` under weights `w` and intercept `bias` on every validation example
/// that labels head `h`.
fn validation_logits(
    examples: &[Example],
    h: usize,
    w: &[f64],
    bias: f64,
) -> Vec<(f64, bool, u16)> {
    examples
        .iter()
        .filter(|e| e.validation)
        .filter_map(|e| {
            let y = e.labels[h]?;
            let z = bias
                + e.features
                    .index
                    .iter()
                    .zip(&e.features.value)
                    .map(|(&j, &v)| w[j as usize] * f64::from(v))
                    .sum::<f64>();
            Some((z, y, e.group))
        })
        .collect()
}

/// [`validation_logits`] as probabilities, for [`best_threshold`].
fn probabilities(logits: &[(f64, bool, u16)]) -> Vec<(f64, bool, u16)> {
    logits.iter().map(|&(z, y, g)| (sigmoid(z), y, g)).collect()
}

/// The shares of another head's logit that a head may add to its own.
const SHARES: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Head `h`'s weights and intercept after adding, for each other head in turn, the share of
/// its logit (from [`SHARES`]) that gives the best validation F1; a share is kept only if it
/// raises that F1. The heads are linear over the same features, so the sum is one linear
/// head and the file format is unchanged; the shares are tried on the validation logits,
/// which add up the same way. This is stacking on the validation split: the `frustration`
/// head learns from five GoEmotions emotions (anger among them), nearly five times the
/// `anger` positives, and its logit carries what the narrower head missed.
fn borrow_from_other_heads(
    examples: &[Example],
    fitted: &[FittedHead],
    h: usize,
) -> (Vec<f64>, f64, Vec<Borrowed>) {
    let (mut w, mut bias) = (fitted[h].w.clone(), fitted[h].bias);
    let mut logits = validation_logits(examples, h, &w, bias);
    let mut best = best_threshold(&mut probabilities(&logits)).1;
    let mut borrowed = Vec::new();
    let others = fitted.iter().enumerate().filter(|(o, _)| *o != h);
    for other in others.map(|(_, other)| other) {
        let theirs = validation_logits(examples, h, &other.w, other.bias);
        let with_share = |share: f64| -> Vec<(f64, bool, u16)> {
            logits
                .iter()
                .zip(&theirs)
                .map(|(&(z, y, g), &(zo, _, _))| (z + share * zo, y, g))
                .collect()
        };
        let mut chosen = None;
        for share in SHARES {
            let f1 = best_threshold(&mut probabilities(&with_share(share))).1;
            if f1 > best + 1e-9 {
                (best, chosen) = (f1, Some(share));
            }
        }
        if let Some(share) = chosen {
            logits = with_share(share);
            for (a, b) in w.iter_mut().zip(&other.w) {
                *a += share * b;
            }
            bias += share * other.bias;
            borrowed.push(Borrowed {
                code: other.code,
                share,
            });
        }
    }
    (w, bias, borrowed)
}

/// A trained intent block.
struct IntentBlock {
    classes: Vec<IntentHeader>,
    codes: Vec<IntentCode>,
    weights: Vec<i8>,
    reports: Vec<HeadReport>,
}

/// A class's gradient below this does not update its weights: once training has separated an
/// example from most classes, their probabilities are near zero and so are their updates.
const INTENT_MIN_GRADIENT: f32 = 1e-4;

/// Trains the intent block (see the module docs): one softmax over `intents`, fitted with
/// AdaGrad and the same n-gram dropout as the heads; then each code's operating point is
/// picked on the validation examples, as for the heads.
fn train_intents(
    intents: &[IntentSpec],
    examples: &[Example],
    config: &TrainConfig,
) -> IntentBlock {
    use rand::seq::SliceRandom;
    use rand::Rng;
    use rand::SeedableRng;
    let k = intents.len();
    let buckets = 1usize << config.bits;
    let mut codes: Vec<ReasonCode> = intents.iter().filter_map(|c| c.code).collect();
    codes.sort_unstable();
    codes.dedup();
    if k == 0 {
        return IntentBlock {
            classes: Vec::new(),
            codes: Vec::new(),
            weights: Vec::new(),
            reports: Vec::new(),
        };
    }
    let mut order: Vec<usize> = (0..examples.len())
        .filter(|&i| !examples[i].validation && examples[i].intent.is_some())
        .collect();
    let mut w = vec![0f32; buckets * k];
    let mut g2 = vec![1e-8f32; buckets * k];
    let mut bias = vec![0f32; k];
    let mut bias_g2 = vec![1e-8f32; k];
    let rate = config.learning_rate as f32;
    let l2 = config.l2 as f32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(1000));
    let mut z = vec![0f32; k];
    let mut g = vec![0f32; k];
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        for &i in &order {
            let ex = &examples[i];
            let Some(y) = ex.intent else { continue };
            let from = if rng.random_bool(config.ngram_dropout) {
                ex.features.ngrams
            } else {
                0
            };
            let index = &ex.features.index[from..];
            let value = &ex.features.value[from..];
            class_probabilities(&mut z, &bias, &w, index, value);
            for (c, (gc, p)) in g.iter_mut().zip(&z).enumerate() {
                *gc = p - f32::from(u8::from(c == usize::from(y)));
            }
            for (&j, &v) in index.iter().zip(value) {
                let at = j as usize * k;
                for c in 0..k {
                    if g[c].abs() < INTENT_MIN_GRADIENT {
                        continue;
                    }
                    let grad = g[c] * v + l2 * w[at + c];
                    g2[at + c] += grad * grad;
                    w[at + c] -= rate * grad / g2[at + c].sqrt();
                }
            }
            for c in 0..k {
                bias_g2[c] += g[c] * g[c];
                bias[c] -= rate * g[c] / bias_g2[c].sqrt();
            }
        }
    }
    // Calibrate each code on the validation examples.
    let code_index = code_positions(intents.iter().map(|c| c.code), &codes);
    let mut scored: Vec<Vec<(f64, bool, u16)>> = vec![Vec::new(); codes.len()];
    for e in examples.iter().filter(|e| e.validation) {
        let Some(y) = e.intent else { continue };
        class_probabilities(&mut z, &bias, &w, &e.features.index, &e.features.value);
        let mut mass = vec![0f64; codes.len()];
        for (p, c) in z.iter().zip(&code_index) {
            if let Some(c) = c {
                mass[*c] += f64::from(*p);
            }
        }
        for (c, m) in mass.into_iter().enumerate() {
            scored[c].push((m, code_index[usize::from(y)] == Some(c), e.group));
        }
    }
    let mut reports = Vec::new();
    let mut code_headers = Vec::new();
    for (c, &code) in codes.iter().enumerate() {
        let (threshold, validation_f1) = best_threshold(&mut scored[c]);
        let train_counts = order
            .iter()
            .filter(|&&i| {
                examples[i]
                    .intent
                    .is_some_and(|y| code_index[usize::from(y)] == Some(c))
            })
            .count();
        reports.push(HeadReport {
            code,
            train: (train_counts, order.len()),
            validation: (
                scored[c].iter().filter(|(_, y, _)| *y).count(),
                scored[c].len(),
            ),
            threshold,
            validation_f1,
            borrowed: Vec::new(),
        });
        code_headers.push(IntentCode {
            code,
            offset: (logit(OPERATING_POINT) - logit(threshold)) as f32,
        });
    }
    // Quantise each class's weights to signed bytes.
    let mut weights = vec![0i8; buckets * k];
    let mut classes = Vec::with_capacity(k);
    for (c, spec) in intents.iter().enumerate() {
        let max = (0..buckets).fold(0f32, |m, b| m.max(w[b * k + c].abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        for b in 0..buckets {
            weights[b * k + c] = (w[b * k + c] / scale).round().clamp(-127.0, 127.0) as i8;
        }
        classes.push(IntentHeader {
            name: spec.name.clone(),
            code: spec.code,
            bias: bias[c],
            scale,
        });
    }
    IntentBlock {
        classes,
        codes: code_headers,
        weights,
        reports,
    }
}

/// Fills `z` with the class probabilities of one example: `bias` plus the rows of `w` (one row
/// of `z.len()` weights per bucket) for its features, through a softmax.
fn class_probabilities(z: &mut [f32], bias: &[f32], w: &[f32], index: &[u32], value: &[f32]) {
    let k = z.len();
    z.copy_from_slice(bias);
    for (&j, &v) in index.iter().zip(value) {
        let row = &w[j as usize * k..(j as usize + 1) * k];
        for (a, x) in z.iter_mut().zip(row) {
            *a += x * v;
        }
    }
    softmax_in_place(z);
}

/// Turns logits into probabilities, in place.
fn softmax_in_place(z: &mut [f32]) {
    let top = z.iter().fold(f32::MIN, |m, x| m.max(*x));
    let mut total = 0.0;
    for x in z.iter_mut() {
        *x = (*x - top).exp();
        total += *x;
    }
    for x in z.iter_mut() {
        *x /= total;
    }
}

/// Example weights per (group, label). A group (source set) with both classes is balanced
/// within itself: each class carries half of the group's examples, so the head learns the
/// distinctions inside a domain (a lost card against a card that will not link) rather than
/// the domain itself. A group of negatives only weighs [`NEGATIVE_ONLY_WEIGHT`] per example:
/// it teaches what is not the topic without outvoting the labelled sets.
fn class_weights(
    examples: &[Example],
    order: &[usize],
    head: usize,
) -> std::collections::HashMap<(u16, bool), f64> {
    let mut counts: std::collections::HashMap<u16, (usize, usize)> = Default::default();
    for &i in order {
        let e = &examples[i];
        let c = counts.entry(e.group).or_default();
        if e.labels[head] == Some(true) {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    let mut weights = std::collections::HashMap::new();
    for (g, (pos, neg)) in counts {
        if pos == 0 {
            weights.insert((g, false), NEGATIVE_ONLY_WEIGHT);
        } else {
            let n = (pos + neg) as f64;
            weights.insert((g, true), n / (2.0 * pos as f64));
            weights.insert((g, false), n / (2.0 * neg.max(1) as f64));
        }
    }
    weights
}

/// Weight of each example of a set that has no positives for a head.
pub const NEGATIVE_ONLY_WEIGHT: f64 = 0.5;

/// Per bucket, `ln((p / |p|) / (q / |q|))` where `p` and `q` count the positive and negative
/// training examples in which the bucket occurs, each smoothed by 1: a bucket's evidence for
/// the head's class. Buckets absent from training get 0.
fn log_count_ratio(examples: &[Example], order: &[usize], head: usize, buckets: usize) -> Vec<f64> {
    let mut p = vec![0f64; buckets];
    let mut q = vec![0f64; buckets];
    let mut seen = vec![false; buckets];
    for &i in order {
        let ex = &examples[i];
        let counts = if ex.labels[head] == Some(true) {
            &mut p
        } else {
            &mut q
        };
        for &j in &ex.features.index {
            counts[j as usize] += 1.0;
            seen[j as usize] = true;
        }
    }
    let (sp, sq) = (
        p.iter().sum::<f64>() + buckets as f64,
        q.iter().sum::<f64>() + buckets as f64,
    );
    p.iter()
        .zip(&q)
        .zip(&seen)
        .map(|((p, q), seen)| {
            if *seen {
                ((p + 1.0) / sp / ((q + 1.0) / sq)).ln()
            } else {
                0.0
            }
        })
        .collect()
}

/// The threshold with the best mean F1 over the groups (source sets) that have positives in
/// `scored` (probability, label, group), and that mean: every set that labels a code counts
/// equally, whatever its size. Thresholds are tried on a grid of logits from -8 to 8 in steps
/// of 0.05. With no positives, 0.5.
pub fn best_threshold(scored: &mut [(f64, bool, u16)]) -> (f64, f64) {
    let mut groups: Vec<u16> = scored.iter().filter(|s| s.1).map(|s| s.2).collect();
    groups.sort_unstable();
    groups.dedup();
    if groups.is_empty() {
        return (0.5, 0.0);
    }
    // Every grid step's mean F1; the best plateau's middle step wins, so a head that separates
    // its validation examples perfectly gets the cut halfway between them, not at their edge.
    let mut means = Vec::with_capacity(321);
    for step in 0..=320 {
        let t = sigmoid(-8.0 + 0.05 * f64::from(step));
        let mut total = 0.0;
        for g in &groups {
            let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
            for (p, y, _) in scored.iter().filter(|s| s.2 == *g) {
                match (*p >= t, *y) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fn_ += 1,
                    (false, false) => {}
                }
            }
            total += 2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64;
        }
        means.push((t, total / groups.len() as f64));
    }
    let top = means.iter().fold(f64::MIN, |m, (_, f)| m.max(*f));
    let plateau: Vec<&(f64, f64)> = means.iter().filter(|(_, f)| top - f < 1e-9).collect();
    *plateau[plateau.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The features of `text` at 12 bits.
    fn featured(text: &str) -> Features {
        let mut f = Features::default();
        featurize(12, text, &Extras::default(), &mut f);
        f
    }

    /// Four rounds of `texts` (the last for validation), each made an example by `make` from
    /// its features, its label and whether it is for validation.
    fn rounds<L: Copy>(
        texts: &[(&str, L)],
        make: impl Fn(Features, L, bool) -> Example,
    ) -> Vec<Example> {
        (0..4)
            .flat_map(|round| texts.iter().map(move |&(t, y)| (t, y, round == 3)))
            .map(|(t, y, validation)| make(featured(t), y, validation))
            .collect()
    }

    #[test]
    fn shifting_the_odds_equals_the_sigmoid_of_the_shifted_logit() {
        for p in [0.0, 1e-9, 0.01, 0.3, 0.5, 0.77, 0.999, 1.0] {
            for offset in [-2.5f64, -0.3, 0.0, 0.15, 1.9] {
                let direct = sigmoid(logit(p) + offset);
                let shifted = shift_odds(p, offset.exp());
                assert!((direct - shifted).abs() < 1e-12, "p {p} offset {offset}");
            }
        }
    }

    #[test]
    fn exp_near_zero_matches_the_standard_library() {
        let mut worst: f32 = 0.0;
        for i in 0..=160_000 {
            let x = -16.0 * i as f32 / 160_000.0;
            let (ours, std) = (exp_near_zero(x), x.exp());
            worst = worst.max((ours - std).abs() / std);
        }
        assert!(worst < 3e-7, "relative error {worst:e}");
    }

    #[test]
    fn words_lowercase_and_drop_apostrophes() {
        assert_eq!(words("I DON'T want it’s"), ["i", "dont", "want", "its"]);
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn best_threshold_separates_a_separable_set() {
        let mut s = vec![
            (0.9, true, 0),
            (0.8, true, 0),
            (0.3, false, 0),
            (0.1, false, 0),
        ];
        let (t, f1) = best_threshold(&mut s);
        assert!((f1 - 1.0).abs() < 1e-12);
        assert!(t > 0.3 && t < 0.8, "{t}");
        // Two sets that want different cuts: the mean F1 counts the small one as much.
        let mut s = vec![
            (0.9, true, 0),
            (0.2, false, 0),
            (0.5, true, 1),
            (0.4, false, 1),
        ];
        let (t, f1) = best_threshold(&mut s);
        assert!((f1 - 1.0).abs() < 1e-12 && t > 0.4 && t <= 0.5, "{t} {f1}");
    }

    #[test]
    fn a_trained_model_learns_a_word_and_survives_its_file_format() {
        let texts = [
            ("please refund me", true),
            ("i want a refund now", true),
            ("refund my order", true),
            ("what time is it", false),
            ("where is my parcel", false),
            ("hello there", false),
        ];
        let examples = rounds(&texts, |features, y, validation| Example {
            features,
            labels: vec![Some(y)],
            intent: None,
            validation,
            group: 0,
        });
        let config = TrainConfig {
            bits: 12,
            ..TrainConfig::default()
        };
        let (model, reports) = train(
            &[ReasonCode::Refund],
            &[],
            &examples,
            &config,
            BTreeMap::new(),
        );
        assert_eq!(reports[0].validation, (3, 6));
        let yes = model.scores(&featured("can I get a refund"))[0].1;
        let f = featured("what time do you open");
        let no = model.scores(&f)[0].1;
        assert!(yes >= OPERATING_POINT && no < OPERATING_POINT, "{yes} {no}");
        let again = LinearModel::from_bytes(&model.to_bytes()).expect("round trip");
        assert_eq!(again.scores(&f), model.scores(&f));
        assert!(matches!(
            LinearModel::from_bytes(b"nope"),
            Err(ModelError::Magic)
        ));
        let mut cut = model.to_bytes();
        cut.truncate(cut.len() - 1);
        assert!(matches!(
            LinearModel::from_bytes(&cut),
            Err(ModelError::Size(_))
        ));
    }

    #[test]
    fn a_narrow_head_borrows_a_broader_heads_logit_when_validation_gains() {
        // Head 0 (narrow) never trains on "so livid"; head 1 (broad) learns it. Validation
        // counts "so livid" for head 0, so adding head 1's logit is what gets it right.
        let train_rows: [(&str, Option<bool>, bool); 5] = [
            ("furious now", Some(true), true),
            ("so livid", None, true),
            ("hello there", Some(false), false),
            ("what time is it", Some(false), false),
            ("where is my parcel", Some(false), false),
        ];
        let mut examples = Vec::new();
        for _ in 0..3 {
            for &(text, narrow, broad) in &train_rows {
                examples.push(Example {
                    features: featured(text),
                    labels: vec![narrow, Some(broad)],
                    intent: None,
                    validation: false,
                    group: 0,
                });
            }
        }
        // A line sharing no n-gram with training scores like "so livid" does for head 0 alone.
        let validation = train_rows
            .iter()
            .map(|r| (r.0, r.2))
            .chain([("bzzt", false)]);
        for (text, broad) in validation {
            examples.push(Example {
                features: featured(text),
                labels: vec![Some(broad), Some(broad)],
                intent: None,
                validation: true,
                group: 0,
            });
        }
        let config = TrainConfig {
            bits: 12,
            ngram_dropout: 0.0,
            ..TrainConfig::default()
        };
        let codes = [ReasonCode::Anger, ReasonCode::Frustration];
        let (model, reports) = train(&codes, &[], &examples, &config, BTreeMap::new());
        assert_eq!(reports[0].borrowed.len(), 1, "{:?}", reports[0]);
        assert_eq!(reports[0].borrowed[0].code, ReasonCode::Frustration);
        assert!(reports[0].borrowed[0].share > 0.0);
        assert!((reports[0].validation_f1 - 1.0).abs() < 1e-12);
        // The broad head already separates its validation rows: it borrows nothing.
        assert!(reports[1].borrowed.is_empty(), "{:?}", reports[1]);
        let livid = model.scores(&featured("so livid"))[0].1;
        let calm = model.scores(&featured("hello there"))[0].1;
        assert!(
            livid >= OPERATING_POINT && calm < OPERATING_POINT,
            "{livid} {calm}"
        );
    }

    #[test]
    fn an_intent_block_adds_up_its_classes_per_code() {
        // Two sets that file "cancel my purchase" under different codes, each in its own
        // class; a class without a code; the code's score is the sum of its classes.
        let intents = [
            ("a:get_refund", Some(ReasonCode::Refund)),
            ("a:cancel_order", Some(ReasonCode::Cancellation)),
            ("b:request_refund", Some(ReasonCode::Refund)),
            ("a:opening_hours", None),
        ]
        .map(|(name, code)| IntentSpec {
            name: name.to_owned(),
            code,
        });
        let texts = [
            ("please refund me", 0),
            ("i want my money back", 0),
            ("cancel my order please", 1),
            ("i need to cancel the order", 1),
            ("refund the purchase i cancelled", 2),
            ("reverse that card purchase and refund it", 2),
            ("what time do you open", 3),
            ("are you open on sunday", 3),
        ];
        let examples = rounds(&texts, |features, class, validation| Example {
            features,
            labels: Vec::new(),
            intent: Some(class),
            validation,
            group: u16::from(class == 2),
        });
        let config = TrainConfig {
            bits: 12,
            ..TrainConfig::default()
        };
        let (model, reports) = train(&[], &intents, &examples, &config, BTreeMap::new());
        let codes: Vec<ReasonCode> = model.codes().collect();
        assert_eq!(codes, [ReasonCode::Refund, ReasonCode::Cancellation]);
        assert_eq!(reports[0].validation, (4, 8), "{reports:?}");
        let score = |text: &str, code: ReasonCode| {
            let scores = model.scores(&featured(text));
            scores.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
        };
        let refund = score("can i get a refund", ReasonCode::Refund).expect("scored");
        let open = score("when do you open", ReasonCode::Refund).expect("scored");
        let cancel = score("cancel the order", ReasonCode::Cancellation).expect("scored");
        assert!(
            refund >= OPERATING_POINT && open < OPERATING_POINT,
            "{refund} {open}"
        );
        assert!(cancel >= OPERATING_POINT, "{cancel}");
        let bucket = Words::new("Refund").bucket(12, 0, false, &mut Vec::new());
        assert!(model.evidence_weight(ReasonCode::Refund, bucket) > Some(0.0));
        assert_eq!(model.evidence_weight(ReasonCode::Anger, bucket), None);
        let again = LinearModel::from_bytes(&model.to_bytes()).expect("round trip");
        let f = featured("refund my cancelled order");
        assert_eq!(again.scores(&f), model.scores(&f));
    }
}
