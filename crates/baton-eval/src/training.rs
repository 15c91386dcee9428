//! The training data of Baton's learned model: which shared sets teach which head, and the
//! classes of the intent block.
//!
//! The emotion heads: a set teaches a head when it labels the head's code (its rows are
//! positives or negatives). The intent block: every row of a labelled set belongs to one class,
//! its set's own intent (Bitext, BANKING77) or a class its set shares per code (CLINC150, calm
//! GoEmotions comments, the seed lines); the class carries the code the label map gives the
//! intent, or none. Rows whose native label is ambiguous for a code (CLINC150's security
//! intents against BANKING77's) are left out of the shared classes.
//!
//! Only the train splits fit weights; validation splits set each code's operating point. Test
//! splits are never read here. USS and VADER ground truth are evaluation data only.

use crate::datasets::{self, Dataset, DatasetError, Split, UtteranceSet};
use baton_detect::model::{Example, IntentSpec, TrainConfig};
use baton_detect::Detectors;
use baton_domain::ReasonCode;
use std::collections::BTreeMap;
use std::path::Path;

/// The binary heads of the learned model, in order: the emotions, which GoEmotions labels
/// several at a time.
pub const HEADS: &[ReasonCode] = &[ReasonCode::Anger, ReasonCode::Frustration];

/// The codes the intent block scores: requests and topics, one intent per utterance.
pub const INTENT_CODES: &[ReasonCode] = &[
    ReasonCode::HumanRequested,
    ReasonCode::Complaint,
    ReasonCode::Refund,
    ReasonCode::Cancellation,
    ReasonCode::BillingDispute,
    ReasonCode::AccountSecurity,
];

/// The sets training reads.
struct Source {
    dataset: Dataset,
    license: &'static str,
    /// Native intents that mean one code in this set and another elsewhere: their rows train
    /// no class of a set whose rows share one class per code.
    ambiguous: &'static [&'static str],
    /// Whether each native intent is a class of its own in the intent block (a set whose
    /// intents carry the codes' fine lines), or the set's rows share one class per code (a set
    /// that only says what is not a topic).
    own_classes: bool,
    /// Whether only the set's rows without negative emotion train the intent block:
    /// everyday chat teaches the block what is not a topic, but angry or sad rows would
    /// teach them that emotional wording argues against a topic, the opposite of what an angry
    /// customer asking for a refund needs.
    calm_only: bool,
}

const SOURCES: &[Source] = &[
    Source {
        dataset: Dataset::Bitext,
        license: "CDLA-Sharing-1.0 (results such as model weights are unrestricted)",
        ambiguous: &[],
        own_classes: true,
        calm_only: false,
    },
    Source {
        dataset: Dataset::Banking77,
        license: "CC BY 4.0 (Casanueva et al. 2020)",
        ambiguous: &[],
        own_classes: true,
        calm_only: false,
    },
    Source {
        dataset: Dataset::Clinc150,
        license: "CC BY 3.0 (Larson et al. 2019)",
        // CLINC150's security intents include a declined or damaged card and a PIN change,
        // which BANKING77 labels as service failures or self-service; its `cancel` means
        // "never mind" and `cancel_reservation` is a booking change. In CLINC150's one shared
        // class they would teach the block that these are not security or cancellation
        // matters, so they train nothing (CLINC150 still measures account_security).
        ambiguous: &[
            "report_fraud",
            "report_lost_card",
            "freeze_account",
            "account_blocked",
            "damaged_card",
            "card_declined",
            "pin_change",
            "cancel",
            "cancel_reservation",
        ],
        own_classes: false,
        calm_only: false,
    },
    Source {
        dataset: Dataset::Goemotions,
        license: "Apache-2.0 (Demszky et al. 2020)",
        ambiguous: &[],
        own_classes: false,
        calm_only: true,
    },
];

/// How many times each seed utterance is repeated in training: about 100 hand-written lines
/// must count beside tens of thousands of dataset rows.
pub const SEED_REPEAT: usize = 20;

/// Reads seed utterances: JSON Lines `{"text", "labels": [codes]}`, written for Baton (not
/// taken from any dataset) in wording the datasets lack (subscriptions, plain one-word
/// requests, task-assistant chat), labelled for the request and topic heads.
///
/// # Errors
/// [`DatasetError`] for an unreadable file or a malformed line.
pub fn read_seed(path: &Path) -> Result<Vec<(String, Vec<ReasonCode>)>, DatasetError> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
        labels: Vec<ReasonCode>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let line: Line = serde_json::from_str(l).map_err(|e| DatasetError::Format {
                path: path.to_owned(),
                message: format!("line {}: {e}", i + 1),
            })?;
            Ok((line.text, line.labels))
        })
        .collect()
}

fn emotional(row: &datasets::Labelled) -> bool {
    [
        ReasonCode::Anger,
        ReasonCode::Frustration,
        ReasonCode::NegativeSentiment,
    ]
    .iter()
    .any(|c| row.labels.contains(c))
}

/// A row's label per emotion head: its own where its set labels the head's code, none else.
fn labels_for(set: &UtteranceSet, row: &datasets::Labelled) -> Vec<Option<bool>> {
    HEADS
        .iter()
        .map(|code| set.codes.contains(code).then(|| row.labels.contains(code)))
        .collect()
}

/// The intent classes met so far, in order of first appearance (so training is reproducible).
#[derive(Default)]
struct Classes {
    specs: Vec<IntentSpec>,
    index: BTreeMap<String, u16>,
}

impl Classes {
    fn of(&mut self, name: String, code: Option<ReasonCode>) -> u16 {
        if let Some(&i) = self.index.get(&name) {
            return i;
        }
        let i = self.specs.len() as u16;
        self.index.insert(name.clone(), i);
        self.specs.push(IntentSpec { name, code });
        i
    }
}

/// The row's class in the intent block: `set:intent` for a set with [`Source::own_classes`],
/// else `set:code` (or `set:other`). Rows of a [`Source::ambiguous`] intent train no class, and
/// neither do emotional rows of a [`Source::calm_only`] set. (A set with its own classes needs
/// no such list: an intent its label map does not place is a class without a code, which keeps
/// its rows apart from the codes' classes without claiming a code.)
fn intent_for(source: &Source, row: &datasets::Labelled, classes: &mut Classes) -> Option<u16> {
    if source.calm_only && emotional(row) {
        return None;
    }
    if source.ambiguous.contains(&row.native.as_str()) {
        return None;
    }
    let code = INTENT_CODES
        .iter()
        .copied()
        .find(|c| row.labels.contains(c));
    let name = if source.own_classes {
        format!("{}:{}", source.dataset.name(), row.native)
    } else {
        format!(
            "{}:{}",
            source.dataset.name(),
            code.map_or("other", |c| c.as_str())
        )
    };
    Some(classes.of(name, code))
}

/// What [`build_examples`] returns: the examples, the intent classes they refer to, and the
/// provenance for the model card.
pub struct TrainingData {
    /// Every example, train and validation.
    pub examples: Vec<Example>,
    /// The intent block's classes, indexed by [`Example::intent`].
    pub intents: Vec<IntentSpec>,
    /// Sets, licenses and settings, for the model card.
    pub provenance: BTreeMap<String, serde_json::Value>,
}

/// Reads the train and validation splits of every training set under `dir`, plus the seed
/// utterances at `seed` (see [`read_seed`]), and computes each row's features with `detectors`
/// (which must have no model: the model's inputs are the lexicon's outputs).
///
/// # Errors
/// [`DatasetError`] when a set cannot be read.
pub fn build_examples(
    dir: &Path,
    seed: Option<&Path>,
    detectors: &Detectors,
    config: &TrainConfig,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<TrainingData, DatasetError> {
    let mut examples = Vec::new();
    let mut classes = Classes::default();
    let mut sets = serde_json::Map::new();
    for (group, source) in SOURCES.iter().enumerate() {
        let mut counts = serde_json::Map::new();
        for split in [Split::Train, Split::Validation] {
            let set = datasets::load_utterances(dir, source.dataset, split)?;
            let name = format!("{} {:?}", source.dataset.name(), split).to_lowercase();
            for (i, row) in set.rows.iter().enumerate() {
                examples.push(Example {
                    features: detectors.features(config.bits, &row.text),
                    labels: labels_for(&set, row),
                    intent: intent_for(source, row, &mut classes),
                    validation: split == Split::Validation,
                    group: group as u16,
                });
                progress(&name, i + 1, set.rows.len());
            }
            counts.insert(
                format!("{split:?}").to_lowercase(),
                serde_json::json!(set.rows.len()),
            );
        }
        counts.insert("license".into(), serde_json::json!(source.license));
        sets.insert(
            source.dataset.name().into(),
            serde_json::Value::Object(counts),
        );
    }
    if let Some(path) = seed {
        let rows = read_seed(path)?;
        let group = SOURCES.len() as u16;
        for (text, labels) in &rows {
            let code = INTENT_CODES.iter().copied().find(|c| labels.contains(c));
            let intent = classes.of(
                format!("baton-seed:{}", code.map_or("other", |c| c.as_str())),
                code,
            );
            let features = detectors.features(config.bits, text);
            for _ in 0..SEED_REPEAT {
                examples.push(Example {
                    features: features.clone(),
                    labels: vec![None; HEADS.len()],
                    intent: Some(intent),
                    validation: false,
                    group,
                });
            }
        }
        sets.insert(
            "baton-seed".into(),
            serde_json::json!({"train": rows.len(), "repeated": SEED_REPEAT, "license": "MIT OR Apache-2.0 (written for Baton)"}),
        );
    }
    let mut provenance = BTreeMap::new();
    provenance.insert("datasets".to_owned(), serde_json::Value::Object(sets));
    provenance.insert(
        "settings".to_owned(),
        serde_json::to_value(config).unwrap_or_default(),
    );
    provenance.insert(
        "heads".to_owned(),
        serde_json::json!(HEADS.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
    );
    provenance.insert(
        "intent_classes".to_owned(),
        serde_json::json!(classes.specs.len()),
    );
    Ok(TrainingData {
        examples,
        intents: classes.specs,
        provenance,
    })
}
