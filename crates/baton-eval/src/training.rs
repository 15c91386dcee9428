//! The training data of Baton's learned model: which shared sets teach which head.
//!
//! A set teaches a head when it labels the head's code (its rows are positives or negatives),
//! or when its rows are plainly not about that code (negatives only: Reddit comments and
//! banking queries are not requests for a person). A set neither labels nor rules out some
//! codes; it does not train those heads. Rows whose native label is ambiguous for a head (a
//! Bitext password recovery for account security) are left out of that head.
//!
//! Only the train splits fit weights; validation splits set each head's operating point. Test
//! splits are never read here. USS and VADER ground truth are evaluation data only.

use crate::datasets::{self, Dataset, DatasetError, Split, UtteranceSet};
use baton_detect::model::{Example, TrainConfig};
use baton_detect::Detectors;
use baton_domain::ReasonCode;
use std::collections::BTreeMap;
use std::path::Path;

/// The heads of the learned model, in order.
pub const HEADS: &[ReasonCode] = &[
    ReasonCode::HumanRequested,
    ReasonCode::Complaint,
    ReasonCode::Refund,
    ReasonCode::Cancellation,
    ReasonCode::BillingDispute,
    ReasonCode::AccountSecurity,
    ReasonCode::Anger,
    ReasonCode::Frustration,
];

/// The sets training reads, with the codes their rows rule out and the native labels that are
/// ambiguous for a code.
struct Source {
    dataset: Dataset,
    license: &'static str,
    negative_for: &'static [ReasonCode],
    ambiguous: &'static [(&'static str, ReasonCode)],
    /// Whether the set is a negative for `negative_for` only in rows without negative emotion:
    /// everyday chat teaches the topic heads what is not a topic, but angry or sad rows would
    /// teach them that emotional wording argues against a topic, the opposite of what an angry
    /// customer asking for a refund needs.
    calm_only: bool,
}

const SOURCES: &[Source] = &[
    Source {
        dataset: Dataset::Bitext,
        license: "CDLA-Sharing-1.0 (results such as model weights are unrestricted)",
        negative_for: &[ReasonCode::AccountSecurity],
        ambiguous: &[
            ("recover_password", ReasonCode::AccountSecurity),
            ("registration_problems", ReasonCode::AccountSecurity),
        ],
        calm_only: false,
    },
    Source {
        dataset: Dataset::Banking77,
        license: "CC BY 4.0 (Casanueva et al. 2020)",
        negative_for: &[ReasonCode::HumanRequested, ReasonCode::Complaint],
        ambiguous: &[],
        calm_only: false,
    },
    Source {
        dataset: Dataset::Clinc150,
        license: "CC BY 3.0 (Larson et al. 2019)",
        negative_for: &[
            ReasonCode::HumanRequested,
            ReasonCode::Refund,
            ReasonCode::BillingDispute,
            ReasonCode::Complaint,
            ReasonCode::Cancellation,
        ],
        // CLINC150's security intents include a declined or damaged card and a PIN change,
        // which BANKING77 labels as service failures or self-service; its `cancel` means
        // "never mind" and `cancel_reservation` is a booking change. Training on those rows
        // would teach a head two meanings, so they train neither way (CLINC150 still
        // measures account_security).
        ambiguous: &[
            ("report_fraud", ReasonCode::AccountSecurity),
            ("report_lost_card", ReasonCode::AccountSecurity),
            ("freeze_account", ReasonCode::AccountSecurity),
            ("account_blocked", ReasonCode::AccountSecurity),
            ("damaged_card", ReasonCode::AccountSecurity),
            ("card_declined", ReasonCode::AccountSecurity),
            ("pin_change", ReasonCode::AccountSecurity),
            ("cancel", ReasonCode::Cancellation),
            ("cancel_reservation", ReasonCode::Cancellation),
        ],
        calm_only: false,
    },
    Source {
        dataset: Dataset::Goemotions,
        license: "Apache-2.0 (Demszky et al. 2020)",
        negative_for: &[
            ReasonCode::HumanRequested,
            ReasonCode::Refund,
            ReasonCode::Cancellation,
            ReasonCode::BillingDispute,
            ReasonCode::AccountSecurity,
            ReasonCode::Complaint,
        ],
        ambiguous: &[],
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

fn labels_for(source: &Source, set: &UtteranceSet, row: &datasets::Labelled) -> Vec<Option<bool>> {
    HEADS
        .iter()
        .map(|code| {
            let emotional = [
                ReasonCode::Anger,
                ReasonCode::Frustration,
                ReasonCode::NegativeSentiment,
            ]
            .iter()
            .any(|c| row.labels.contains(c));
            if source
                .ambiguous
                .iter()
                .any(|(native, c)| c == code && *native == row.native)
            {
                None
            } else if set.codes.contains(code) {
                Some(row.labels.contains(code))
            } else if source.negative_for.contains(code) && !(source.calm_only && emotional) {
                Some(false)
            } else {
                None
            }
        })
        .collect()
}

/// Reads the train and validation splits of every training set under `dir`, plus the seed
/// utterances at `seed` (see [`read_seed`]), and computes each row's features with `detectors`
/// (which must have no model: the model's inputs are the lexicon's outputs). Returns the
/// examples and their provenance for the model card.
///
/// # Errors
/// [`DatasetError`] when a set cannot be read.
pub fn build_examples(
    dir: &Path,
    seed: Option<&Path>,
    detectors: &Detectors,
    config: &TrainConfig,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<(Vec<Example>, BTreeMap<String, serde_json::Value>), DatasetError> {
    let mut examples = Vec::new();
    let mut sets = serde_json::Map::new();
    for (group, source) in SOURCES.iter().enumerate() {
        let mut counts = serde_json::Map::new();
        for split in [Split::Train, Split::Validation] {
            let set = datasets::load_utterances(dir, source.dataset, split)?;
            let name = format!("{} {:?}", source.dataset.name(), split).to_lowercase();
            for (i, row) in set.rows.iter().enumerate() {
                examples.push(Example {
                    features: detectors.features(config.bits, &row.text),
                    labels: labels_for(source, &set, row),
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
            let labels: Vec<Option<bool>> = HEADS
                .iter()
                .map(|c| {
                    (!matches!(c, ReasonCode::Anger | ReasonCode::Frustration))
                        .then(|| labels.contains(c))
                })
                .collect();
            let features = detectors.features(config.bits, text);
            for _ in 0..SEED_REPEAT {
                examples.push(Example {
                    features: features.clone(),
                    labels: labels.clone(),
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
    Ok((examples, provenance))
}
