//! Adapters for the labelled sets in the datasets folder given by `--datasets` (each set's
//! folder has a `SOURCE.md`), mapped to reason codes through `ESCALATION_LABEL_MAP.json`.
//!
//! Each adapter reads the upstream files unchanged and yields [`Labelled`] utterances (or, for
//! USS, [`LabelledConversation`]s) for one [`Split`]. Sets without a validation split get one
//! carved deterministically from their training data, so that tuning never sees a test row.

use baton_detect::kb::{Article, KnowledgeBase};
use baton_domain::{ReasonCode, Role};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file is missing or unreadable.
    #[error("cannot read `{path}` (is --datasets DIR, or BATON_DATASETS, the labelled datasets folder described in docs/measurements.md?)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file does not have the documented format.
    #[error("`{path}`: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The split does not exist for this set.
    #[error("{0}")]
    Split(String),
}

/// The labelled sets Baton reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    /// Bitext customer-support intents (CDLA-Sharing-1.0).
    Bitext,
    /// BANKING77 (CC BY 4.0).
    Banking77,
    /// CLINC150 with out-of-scope queries (CC BY 3.0).
    Clinc150,
    /// GoEmotions (Apache-2.0).
    Goemotions,
    /// VADER's human sentiment ratings (MIT).
    Vader,
    /// User Satisfaction Simulation dialogues (no license: evaluation only).
    Uss,
}

impl Dataset {
    /// Every set, in the order reports list them.
    pub const ALL: &'static [Dataset] = &[
        Dataset::Bitext,
        Dataset::Banking77,
        Dataset::Clinc150,
        Dataset::Goemotions,
        Dataset::Vader,
        Dataset::Uss,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Bitext => "bitext",
            Dataset::Banking77 => "banking77",
            Dataset::Clinc150 => "clinc150",
            Dataset::Goemotions => "goemotions",
            Dataset::Vader => "vader",
            Dataset::Uss => "uss",
        }
    }

    /// Parses a command-line name.
    ///
    /// # Errors
    /// The list of valid names.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
                format!("unknown dataset `{name}`: use one of {}", names.join(", "))
            })
    }

    /// Whether the set is conversations (USS) rather than single utterances.
    pub fn is_conversations(self) -> bool {
        self == Dataset::Uss
    }
}

/// Which part of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// What models are fitted on.
    Train,
    /// What thresholds are tuned on.
    Validation,
    /// Held out: reported, never tuned on.
    Test,
}

impl Split {
    /// Parses `train`, `validation` (or `dev`) or `test`.
    ///
    /// # Errors
    /// What the valid names are.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "train" => Ok(Split::Train),
            "validation" | "dev" | "val" => Ok(Split::Validation),
            "test" => Ok(Split::Test),
            _ => Err(format!(
                "unknown split `{name}`: use train, validation or test"
            )),
        }
    }
}

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Labelled {
    /// Row id within the set.
    pub id: String,
    /// The text.
    pub text: String,
    /// The reason codes the row is labelled with (positives).
    pub labels: BTreeSet<ReasonCode>,
    /// The set's native label (intent or emotions), for error analysis.
    pub native: String,
    /// Whether the row is out of scope for the assistant (CLINC150 `oos`).
    pub out_of_scope: bool,
    /// A human sentiment rating (VADER ground truth: mean of 20 raters, -4..+4), when the set
    /// has one.
    pub rating: Option<f64>,
}

/// A set of labelled utterances and the codes it labels: a code outside `codes` is neither
/// right nor wrong on this set.
#[derive(Debug, Clone)]
pub struct UtteranceSet {
    /// Which set.
    pub dataset: Dataset,
    /// The rows.
    pub rows: Vec<Labelled>,
    /// The codes this set labels.
    pub codes: Vec<ReasonCode>,
}

/// One turn of a labelled conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledTurn {
    /// Who wrote it (USS `USER` is the customer, `SYSTEM` the AI).
    pub role: Role,
    /// The text.
    pub text: String,
    /// Mean satisfaction rating of a customer turn, 1 (very dissatisfied) to 5.
    pub satisfaction: Option<f64>,
    /// Each annotator's rating of a customer turn, in the same annotator order on every turn
    /// of the conversation (USS lists them so); empty when only the mean is known.
    pub annotator_ratings: Vec<f64>,
}

/// A conversation with per-turn and overall satisfaction.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledConversation {
    /// `FILE:INDEX`.
    pub id: String,
    /// The turns, in order.
    pub turns: Vec<LabelledTurn>,
    /// Mean overall rating, 1 to 5.
    pub overall: Option<f64>,
    /// Each annotator's overall rating, in the turns' annotator order; empty when unknown.
    pub overall_annotator_ratings: Vec<f64>,
}

/// The label map (`ESCALATION_LABEL_MAP.json`): per set, per mapping key, native labels.
#[derive(Debug, Clone)]
pub struct LabelMap(BTreeMap<String, BTreeMap<String, serde_json::Value>>);

/// Mapping keys of `ESCALATION_LABEL_MAP.json` that name a reason code. The other keys
/// (borderline, service failure, entities, bot-identity probes) are not codes.
const KEY_CODES: &[(&str, ReasonCode)] = &[
    ("human_request", ReasonCode::HumanRequested),
    ("complaint", ReasonCode::Complaint),
    ("refund", ReasonCode::Refund),
    ("cancellation", ReasonCode::Cancellation),
    ("billing_dispute", ReasonCode::BillingDispute),
    ("security_fraud", ReasonCode::AccountSecurity),
    ("frustration", ReasonCode::Frustration),
    ("low_confidence_oos", ReasonCode::LowConfidence),
];

impl LabelMap {
    /// Reads `ESCALATION_LABEL_MAP.json` from the datasets folder.
    ///
    /// # Errors
    /// When the file is missing or not the documented JSON.
    pub fn load(dir: &Path) -> Result<Self, DatasetError> {
        let path = dir.join("ESCALATION_LABEL_MAP.json");
        let text = read(&path)?;
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| format_error(&path, e))?;
        let mut sets = BTreeMap::new();
        for (set, value) in raw {
            if let serde_json::Value::Object(map) = value {
                sets.insert(set, map.into_iter().collect());
            }
        }
        Ok(Self(sets))
    }

    /// Native label -> codes for one set, from the keys that name a code. Sets whose list for
    /// a code is empty do not label that code.
    pub fn codes_for(
        &self,
        set: &str,
    ) -> (BTreeMap<String, BTreeSet<ReasonCode>>, Vec<ReasonCode>) {
        let mut by_label: BTreeMap<String, BTreeSet<ReasonCode>> = BTreeMap::new();
        let mut codes = Vec::new();
        if let Some(map) = self.0.get(set) {
            for (key, code) in KEY_CODES {
                let Some(serde_json::Value::Array(labels)) = map.get(*key) else {
                    continue;
                };
                let labels: Vec<&str> = labels.iter().filter_map(|l| l.as_str()).collect();
                if labels.is_empty() {
                    continue;
                }
                codes.push(*code);
                for l in labels {
                    by_label.entry(l.to_owned()).or_default().insert(*code);
                }
            }
        }
        (by_label, codes)
    }
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_owned(),
        source,
    })
}

fn format_error(path: &Path, e: impl std::fmt::Display) -> DatasetError {
    DatasetError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Every `n`th training row becomes validation for sets published without one.
const CARVE_EVERY: usize = 10;

/// Loads one split of an utterance set from `dir` (the labelled datasets folder).
///
/// Splits: Bitext, CLINC150 and GoEmotions use their published splits; BANKING77's validation
/// is every 10th row of its training file (the rest is training); VADER ground truth is
/// evaluation data only and has just `test` (all 23,703 rows).
///
/// # Errors
/// [`DatasetError`] for a missing file, a malformed row or a split the set does not have.
pub fn load_utterances(
    dir: &Path,
    dataset: Dataset,
    split: Split,
) -> Result<UtteranceSet, DatasetError> {
    let map = LabelMap::load(dir)?;
    match dataset {
        Dataset::Bitext => bitext(dir, &map, split),
        Dataset::Banking77 => banking77(dir, &map, split),
        Dataset::Clinc150 => clinc(dir, &map, split),
        Dataset::Goemotions => goemotions(dir, &map, split),
        Dataset::Vader => vader(dir, split),
        Dataset::Uss => Err(DatasetError::Split(
            "uss is a set of conversations: evaluate it in conversation mode".into(),
        )),
    }
}

fn csv_rows(path: &Path) -> Result<Vec<BTreeMap<String, String>>, DatasetError> {
    let text = read(path)?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .deserialize()
        .collect::<Result<Vec<BTreeMap<String, String>>, _>>()
        .map_err(|e| format_error(path, e))
}

fn field<'a>(
    row: &'a BTreeMap<String, String>,
    name: &str,
    path: &Path,
) -> Result<&'a str, DatasetError> {
    row.get(name)
        .map(String::as_str)
        .ok_or_else(|| format_error(path, format!("no `{name}` column")))
}

/// Where a CSV set's rows come from and which columns hold what.
struct CsvSet<'a> {
    dataset: Dataset,
    folder: &'a str,
    file: &'a str,
    text: &'a str,
    label: &'a str,
}

impl CsvSet<'_> {
    /// Reads the rows whose index `keep` accepts, labelled through the set's label map.
    fn load(
        &self,
        dir: &Path,
        map: &LabelMap,
        keep: impl Fn(usize) -> bool,
    ) -> Result<UtteranceSet, DatasetError> {
        let path = dir.join(self.folder).join(self.file);
        let (by_label, codes) = map.codes_for(self.folder);
        let mut rows = Vec::new();
        for (i, row) in csv_rows(&path)?.iter().enumerate() {
            if !keep(i) {
                continue;
            }
            let native = field(row, self.label, &path)?;
            rows.push(Labelled {
                id: format!("{}-{}-{i}", self.dataset.name(), self.file),
                text: field(row, self.text, &path)?.to_owned(),
                labels: by_label.get(native).cloned().unwrap_or_default(),
                native: native.to_owned(),
                out_of_scope: false,
                rating: None,
            });
        }
        Ok(UtteranceSet {
            dataset: self.dataset,
            rows,
            codes,
        })
    }
}

fn bitext(dir: &Path, map: &LabelMap, split: Split) -> Result<UtteranceSet, DatasetError> {
    let file = match split {
        Split::Train => "train.csv",
        Split::Validation => "validation.csv",
        Split::Test => "test.csv",
    };
    CsvSet {
        dataset: Dataset::Bitext,
        folder: "bitext_customer_support_intent",
        file,
        text: "utterance",
        label: "intent",
    }
    .load(dir, map, |_| true)
}

fn banking77(dir: &Path, map: &LabelMap, split: Split) -> Result<UtteranceSet, DatasetError> {
    let file = if split == Split::Test {
        "test.csv"
    } else {
        "train.csv"
    };
    CsvSet {
        dataset: Dataset::Banking77,
        folder: "banking77",
        file,
        text: "text",
        label: "category",
    }
    .load(dir, map, |i| match split {
        Split::Test => true,
        Split::Validation => i % CARVE_EVERY == 0,
        Split::Train => i % CARVE_EVERY != 0,
    })
}

/// CLINC150's in-scope training utterances as a knowledge base, one article per intent: what
/// the out-of-scope check (`kb_similarity`) compares test queries with.
///
/// # Errors
/// As [`load_utterances`].
pub fn clinc_knowledge_base(dir: &Path) -> Result<KnowledgeBase, DatasetError> {
    let mut by_intent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (text, intent) in clinc_pairs(dir, "train")? {
        by_intent.entry(intent).or_default().push(text);
    }
    Ok(KnowledgeBase::build(
        by_intent
            .into_iter()
            .map(|(intent, texts)| {
                (
                    Article {
                        id: intent.clone(),
                        title: intent,
                    },
                    texts.join("\n"),
                )
            })
            .collect(),
    ))
}

fn clinc_pairs(dir: &Path, key: &str) -> Result<Vec<(String, String)>, DatasetError> {
    let path = dir.join("clinc150_oos").join("data_full.json");
    let text = read(&path)?;
    let data: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&text).map_err(|e| format_error(&path, e))?;
    data.get(key)
        .cloned()
        .ok_or_else(|| format_error(&path, format!("no `{key}` split")))
}

fn clinc(dir: &Path, map: &LabelMap, split: Split) -> Result<UtteranceSet, DatasetError> {
    let (by_label, mut codes) = map.codes_for("clinc150_oos");
    let (inscope, oos) = match split {
        Split::Train => ("train", "oos_train"),
        Split::Validation => ("val", "oos_val"),
        Split::Test => ("test", "oos_test"),
    };
    let mut rows = Vec::new();
    for key in [inscope, oos] {
        for (i, (text, intent)) in clinc_pairs(dir, key)?.into_iter().enumerate() {
            let mut labels = by_label.get(&intent).cloned().unwrap_or_default();
            // Out of scope is measured through kb_similarity (AUROC), not as a detected code.
            labels.remove(&ReasonCode::LowConfidence);
            rows.push(Labelled {
                id: format!("clinc150-{key}-{i}"),
                out_of_scope: intent == "oos",
                rating: None,
                text,
                labels,
                native: intent,
            });
        }
    }
    codes.retain(|c| *c != ReasonCode::LowConfidence);
    Ok(UtteranceSet {
        dataset: Dataset::Clinc150,
        rows,
        codes,
    })
}

/// The GoEmotions emotion whose F1 the GoEmotions paper reports and Baton's `anger` code is
/// compared with (not part of the label map, which groups it into frustration).
pub const GOEMOTIONS_ANGER: &str = "anger";

fn goemotions(dir: &Path, map: &LabelMap, split: Split) -> Result<UtteranceSet, DatasetError> {
    let file = match split {
        Split::Train => "train.tsv",
        Split::Validation => "dev.tsv",
        Split::Test => "test.tsv",
    };
    let base = dir.join("goemotions");
    let names = |sub: &str| -> Result<Vec<String>, DatasetError> {
        Ok(read(&base.join(sub).join("labels.txt"))?
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    };
    let original = names("original")?;
    let group = names("group")?;
    let frustration: BTreeSet<String> = map
        .0
        .get("goemotions")
        .and_then(|m| m.get("frustration"))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let rows_of = |sub: &str| -> Result<Vec<(String, Vec<usize>, String)>, DatasetError> {
        let path = base.join(sub).join(file);
        read(&path)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let mut parts = line.split('\t');
                let text = parts.next().unwrap_or_default().to_owned();
                let ids = parts
                    .next()
                    .ok_or_else(|| format_error(&path, "a row without labels"))?
                    .split(',')
                    .map(|x| x.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format_error(&path, e))?;
                let id = parts.next().unwrap_or_default().to_owned();
                Ok((text, ids, id))
            })
            .collect()
    };
    let main = rows_of("original")?;
    let grouped = rows_of("group")?;
    if main.len() != grouped.len() {
        return Err(format_error(
            &base.join("group").join(file),
            "row count differs from original/",
        ));
    }
    let mut rows = Vec::new();
    for ((text, ids, id), (_, group_ids, group_id)) in main.into_iter().zip(grouped) {
        if id != group_id {
            return Err(format_error(
                &base.join("group").join(file),
                format!("row `{group_id}` is out of step with original/ `{id}`"),
            ));
        }
        let emotions: Vec<&str> = ids
            .iter()
            .filter_map(|&i| original.get(i).map(String::as_str))
            .collect();
        let mut labels = BTreeSet::new();
        if emotions.contains(&GOEMOTIONS_ANGER) {
            labels.insert(ReasonCode::Anger);
        }
        if emotions.iter().any(|e| frustration.contains(*e)) {
            labels.insert(ReasonCode::Frustration);
        }
        if group_ids
            .iter()
            .any(|&i| group.get(i).map(String::as_str) == Some("negative"))
        {
            labels.insert(ReasonCode::NegativeSentiment);
        }
        rows.push(Labelled {
            id: format!("goemotions-{id}"),
            text,
            labels,
            native: emotions.join(","),
            out_of_scope: false,
            rating: None,
        });
    }
    Ok(UtteranceSet {
        dataset: Dataset::Goemotions,
        rows,
        codes: vec![
            ReasonCode::Anger,
            ReasonCode::Frustration,
            ReasonCode::NegativeSentiment,
        ],
    })
}

/// Mean human rating at or below which a VADER ground-truth text counts as negative
/// (`ESCALATION_LABEL_MAP.json`, "mild" line, on the -4..+4 scale).
pub const VADER_NEGATIVE_AT_OR_BELOW: f64 = -0.5;

const VADER_FILES: &[&str] = &[
    "tweets_GroundTruth.txt",
    "amazonReviewSnippets_GroundTruth.txt",
    "movieReviewSnippets_GroundTruth.txt",
    "nytEditorialSnippets_GroundTruth.txt",
];

/// VADER ground truth: `(id, mean rating, text)` of every file.
///
/// # Errors
/// As [`load_utterances`].
fn vader_ratings(dir: &Path) -> Result<Vec<(String, f64, String)>, DatasetError> {
    let mut out = Vec::new();
    for file in VADER_FILES {
        let path = dir.join("vader_ground_truth").join(file);
        for line in read(&path)?.lines() {
            let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
            let mut parts = line.splitn(3, '\t');
            let (Some(id), Some(mean), Some(text)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let mean: f64 = mean
                .trim()
                .parse()
                .map_err(|e| format_error(&path, format!("rating `{mean}`: {e}")))?;
            out.push((format!("{file}:{id}"), mean, text.to_owned()));
        }
    }
    Ok(out)
}

fn vader(dir: &Path, split: Split) -> Result<UtteranceSet, DatasetError> {
    if split != Split::Test {
        return Err(DatasetError::Split(
            "vader ground truth is evaluation data: it has only the test split".into(),
        ));
    }
    let rows = vader_ratings(dir)?
        .into_iter()
        .map(|(id, mean, text)| Labelled {
            id,
            text,
            labels: if mean <= VADER_NEGATIVE_AT_OR_BELOW {
                BTreeSet::from([ReasonCode::NegativeSentiment])
            } else {
                BTreeSet::new()
            },
            native: format!("{mean}"),
            out_of_scope: false,
            rating: Some(mean),
        })
        .collect();
    Ok(UtteranceSet {
        dataset: Dataset::Vader,
        rows,
        codes: vec![ReasonCode::NegativeSentiment],
    })
}

const USS_FILES: &[&str] = &["MWOZ.txt", "SGD.txt", "ReDial.txt", "CCPE.txt"];

/// Loads USS dialogues: validation is the even-numbered dialogues of each file, test the
/// odd-numbered ones. There is no training split: the set has no license and Baton never
/// trains on it.
///
/// # Errors
/// [`DatasetError`] for a missing file, a malformed line, or `train`.
pub fn load_conversations(
    dir: &Path,
    split: Split,
) -> Result<Vec<LabelledConversation>, DatasetError> {
    if split == Split::Train {
        return Err(DatasetError::Split(
            "uss has no training split: it is evaluation data only (no license)".into(),
        ));
    }
    let mut out = Vec::new();
    for file in USS_FILES {
        let path = dir.join("user_satisfaction_simulation").join(file);
        let text = read(&path)?;
        let mut index = 0;
        for block in text.split("\n\n") {
            let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.is_empty() {
                continue;
            }
            let this = index;
            index += 1;
            let keep = match split {
                Split::Validation => this % 2 == 0,
                _ => this % 2 == 1,
            };
            if !keep {
                continue;
            }
            let mut turns = Vec::new();
            let mut overall = Vec::new();
            for line in lines {
                let parts: Vec<&str> = line.split('\t').collect();
                let (role, text) = match parts.as_slice() {
                    [role, text, ..] => (*role, *text),
                    _ => return Err(format_error(&path, format!("line without a tab: `{line}`"))),
                };
                let ratings = parts
                    .get(3)
                    .map(|r| annotator_ratings(r))
                    .unwrap_or_default();
                match (role, text) {
                    ("USER", "OVERALL") => overall = ratings,
                    ("USER", _) => turns.push(LabelledTurn {
                        role: Role::Customer,
                        text: text.to_owned(),
                        satisfaction: mean(&ratings),
                        annotator_ratings: ratings,
                    }),
                    ("SYSTEM", _) => turns.push(LabelledTurn {
                        role: Role::Ai,
                        text: text.to_owned(),
                        satisfaction: None,
                        annotator_ratings: Vec::new(),
                    }),
                    _ => {
                        return Err(format_error(
                            &path,
                            format!("role `{role}`: expected USER or SYSTEM"),
                        ))
                    }
                }
            }
            out.push(LabelledConversation {
                id: format!("{file}:{this}"),
                turns,
                overall: mean(&overall),
                overall_annotator_ratings: overall,
            });
        }
    }
    Ok(out)
}

/// The ratings of a USS line's last column (`3,3,2,3`: one per annotator); what does not
/// parse is left out.
fn annotator_ratings(ratings: &str) -> Vec<f64> {
    ratings
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect()
}

/// The mean of some ratings; `None` for none.
pub fn mean(ratings: &[f64]) -> Option<f64> {
    (!ratings.is_empty()).then(|| ratings.iter().sum::<f64>() / ratings.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_rating_averages_annotators() {
        assert_eq!(mean(&annotator_ratings("3,3,2,3")), Some(2.75));
        assert_eq!(annotator_ratings("3, 4,x"), vec![3.0, 4.0]);
        assert_eq!(mean(&annotator_ratings("")), None);
    }

    #[test]
    fn names_parse_and_unknown_ones_list_the_valid_ones() {
        assert_eq!(Dataset::parse("banking77"), Ok(Dataset::Banking77));
        let err = Dataset::parse("bank").expect_err("unknown");
        assert!(err.contains("banking77"), "{err}");
        assert_eq!(Split::parse("dev"), Ok(Split::Validation));
        assert!(Split::parse("holdout").is_err());
    }

    #[test]
    fn the_label_map_names_codes_and_skips_empty_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("ESCALATION_LABEL_MAP.json"),
            r#"{"_about": "x", "s": {"refund": ["get_refund"], "security_fraud": [], "entities": ["order_id"]}}"#,
        )
        .expect("write");
        let map = LabelMap::load(dir.path()).expect("map");
        let (by_label, codes) = map.codes_for("s");
        assert_eq!(codes, vec![ReasonCode::Refund]);
        assert_eq!(
            by_label.get("get_refund"),
            Some(&BTreeSet::from([ReasonCode::Refund]))
        );
        assert!(!by_label.contains_key("order_id"));
    }

    #[test]
    fn uss_dialogues_alternate_between_validation_and_test() {
        let dir = tempfile::tempdir().expect("tempdir");
        let uss = dir.path().join("user_satisfaction_simulation");
        std::fs::create_dir_all(&uss).expect("mkdir");
        let dialogue = "USER\thi\t\t3,3\nSYSTEM\thello\t\nUSER\tno that is wrong\t\t1,2\nUSER\tOVERALL\t\t2,2\n";
        for f in USS_FILES {
            std::fs::write(uss.join(f), format!("{dialogue}\n{dialogue}\n{dialogue}")).expect("w");
        }
        let val = load_conversations(dir.path(), Split::Validation).expect("val");
        let test = load_conversations(dir.path(), Split::Test).expect("test");
        assert_eq!((val.len(), test.len()), (8, 4));
        assert_eq!(val[0].turns.len(), 3);
        assert_eq!(val[0].turns[2].satisfaction, Some(1.5));
        assert_eq!(val[0].overall, Some(2.0));
        assert!(load_conversations(dir.path(), Split::Train).is_err());
    }
}
