//! Measurement of Baton's detection: per-code precision, recall and F1 on labelled utterances,
//! the escalation decision against the labels, out-of-scope AUROC through `kb_similarity`, and
//! escalation timing on conversations with per-turn satisfaction (with the annotators scored
//! against each other where their own ratings are known).
//!
//! Why this crate exists: "detection you can trust" needs numbers that anyone can reproduce.
//! `baton eval` and `baton train` are thin commands over it; the dataset tests of CI call it
//! directly.

pub mod datasets;
pub mod metrics;
pub mod timing;
pub mod training;

use baton_domain::{ConversationId, Customer, ReasonCode, Role, Turn};
use baton_engine::Engine;
use datasets::Labelled;
use metrics::Counts;
use serde::Serialize;
use std::collections::BTreeMap;

/// One code's figures on one set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CodeReport {
    /// tp / (tp + fp).
    pub precision: f64,
    /// tp / (tp + fn).
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Labelled positives.
    pub support: usize,
    /// The raw counts.
    pub counts: Counts,
}

impl From<Counts> for CodeReport {
    fn from(counts: Counts) -> Self {
        Self {
            precision: counts.precision(),
            recall: counts.recall(),
            f1: counts.f1(),
            support: counts.support(),
            counts,
        }
    }
}

/// The evaluation of a set of labelled utterances.
#[derive(Debug, Clone, Serialize)]
pub struct UtteranceReport {
    /// What was evaluated (dataset and split, or the input file).
    pub name: String,
    /// Utterances.
    pub rows: usize,
    /// A code counts as detected when its signal scores at least this (the policy's
    /// `trigger_min_score`).
    pub detection_line: f64,
    /// Per labelled code.
    pub codes: BTreeMap<ReasonCode, CodeReport>,
    /// The escalation decision, against "labelled with a code the policy triggers on"; absent
    /// when the set labels no trigger code.
    pub escalation: Option<CodeReport>,
    /// AUROC of `1 - kb_similarity` for out-of-scope rows against in-scope ones; present when
    /// the set has out-of-scope rows and a knowledge base is set.
    pub out_of_scope_auroc: Option<f64>,
    /// Pearson correlation of VADER's compound with the labelled rating, when rows carry one.
    pub sentiment_pearson: Option<f64>,
}

/// Evaluates `rows`, each as the first customer turn of a new conversation (as `baton detect`
/// does), on the codes in `codes`. Rows with a human sentiment `rating` are also correlated
/// with VADER's compound. `progress` is called after each row.
pub fn evaluate_utterances(
    engine: &Engine,
    name: &str,
    rows: &[Labelled],
    codes: &[ReasonCode],
    mut progress: impl FnMut(usize),
) -> UtteranceReport {
    let policy = engine.policy();
    let line = policy.file.trigger_min_score;
    let triggers: Vec<ReasonCode> = codes
        .iter()
        .copied()
        .filter(|c| policy.triggers().contains(c))
        .collect();
    let mut counts: BTreeMap<ReasonCode, Counts> =
        codes.iter().map(|c| (*c, Counts::default())).collect();
    let mut escalation = Counts::default();
    let mut oos: Vec<(f64, bool)> = Vec::new();
    let mut compounds = Vec::new();
    let mut ratings = Vec::new();
    let id = ConversationId::parse("eval").expect("`eval` is a valid conversation id");
    let has_out_of_scope = rows.iter().any(|r| r.out_of_scope);
    for (i, row) in rows.iter().enumerate() {
        // A row too long to be a turn detects nothing.
        let (signals, escalate) = match Turn::new(Role::Customer, row.text.clone()) {
            Ok(turn) => {
                let mut session = engine.start(id.clone(), Customer::default(), None);
                let (signals, decision) = engine.assess(&mut session, &turn);
                (signals, decision.escalate)
            }
            Err(_) => (Vec::new(), false),
        };
        for (code, c) in counts.iter_mut() {
            let predicted = signals.iter().any(|s| s.code == *code && s.score >= line);
            c.add(predicted, row.labels.contains(code));
        }
        if !triggers.is_empty() {
            escalation.add(escalate, row.labels.iter().any(|c| triggers.contains(c)));
        }
        if has_out_of_scope {
            if let Some(sim) = engine.detectors().kb_similarity(&row.text) {
                oos.push((1.0 - sim, row.out_of_scope));
            }
        }
        if let Some(rating) = row.rating {
            compounds.push(engine.detectors().vader(&row.text).compound);
            ratings.push(rating);
        }
        progress(i + 1);
    }
    UtteranceReport {
        name: name.to_owned(),
        rows: rows.len(),
        detection_line: line,
        codes: counts.into_iter().map(|(c, n)| (c, n.into())).collect(),
        escalation: (!triggers.is_empty()).then(|| escalation.into()),
        out_of_scope_auroc: metrics::auroc(&oos),
        sentiment_pearson: metrics::pearson(&compounds, &ratings),
    }
}

/// Renders a report as an aligned text table.
pub fn render_table(r: &UtteranceReport) -> String {
    let mut out = format!(
        "{} ({} utterances; a code is detected at score >= {})\n",
        r.name, r.rows, r.detection_line
    );
    out.push_str(&format!(
        "{:<22} {:>9} {:>7} {:>6} {:>8}\n",
        "code", "precision", "recall", "f1", "support"
    ));
    let mut line = |name: &str, c: &CodeReport| {
        out.push_str(&format!(
            "{:<22} {:>9.3} {:>7.3} {:>6.3} {:>8}\n",
            name, c.precision, c.recall, c.f1, c.support
        ));
    };
    for (code, c) in &r.codes {
        line(code.as_str(), c);
    }
    if let Some(e) = &r.escalation {
        line("(escalation)", e);
    }
    if let Some(a) = r.out_of_scope_auroc {
        out.push_str(&format!("out-of-scope AUROC via kb_similarity: {a:.3}\n"));
    }
    if let Some(p) = r.sentiment_pearson {
        out.push_str(&format!(
            "Pearson r, VADER compound vs human rating: {p:.3}\n"
        ));
    }
    out
}
