//! Escalation timing on conversations with per-turn satisfaction labels (USS, or any
//! conversation file whose customer turns carry a rating).
//!
//! A customer turn is *dissatisfied* when its mean rating is at or below
//! [`TimingConfig::dissatisfied_at_or_below`] (2 on the 1-5 scale: "strict" in
//! `ESCALATION_LABEL_MAP.json`). The *trigger* of a dialogue is its second dissatisfied
//! customer turn in a row (the label map's "repeated failure"). An escalation is *on time* when
//! it comes no later than one customer turn after the trigger; an escalation on an AI turn
//! counts at the customer turn before it. A dialogue whose overall rating is at least
//! [`TimingConfig::good_at_or_above`] went well: any escalation in it is *needless*.
//!
//! Where each annotator's ratings are known (USS), [`annotator_agreement`] scores the people
//! themselves by the same rules: one annotator's own ratings are the escalation, the mean of the
//! other annotators is the label. That is how far the labels agree with a reader who saw every
//! word, the ceiling a detector can be held to.

use crate::datasets::LabelledConversation;
use baton_domain::{ConversationId, Customer, Turn};
use baton_engine::Engine;
use serde::Serialize;

/// The lines of the timing evaluation.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimingConfig {
    /// Mean turn rating at or below which a customer turn is dissatisfied.
    pub dissatisfied_at_or_below: f64,
    /// Mean overall rating from which a dialogue went well.
    pub good_at_or_above: f64,
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            dissatisfied_at_or_below: 2.0,
            good_at_or_above: 4.0,
        }
    }
}

/// Escalation timing over a set of conversations.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimingReport {
    /// What was evaluated.
    pub name: String,
    /// Dialogues read.
    pub dialogues: usize,
    /// Dialogues with two dissatisfied customer turns in a row.
    pub with_trigger: usize,
    /// Of those: escalated before their first dissatisfied turn.
    pub before_dissatisfaction: usize,
    /// Of those: escalated from the first dissatisfied turn to one turn after the trigger.
    pub at_dissatisfaction: usize,
    /// Of those: escalated later than one turn after the trigger.
    pub late: usize,
    /// Of those: never escalated.
    pub missed: usize,
    /// `(before + at) / with_trigger`: escalated no later than one turn after the trigger.
    pub on_time_share: f64,
    /// Dialogues rated well overall.
    pub good: usize,
    /// Of those: escalated anyway.
    pub needless: usize,
    /// `needless / good`.
    pub needless_share: f64,
    /// Every dialogue that escalated, whatever its labels.
    pub escalated: usize,
    /// The annotators scored against each other by the same rules, where each annotator's
    /// ratings are known.
    pub annotators: Option<AnnotatorAgreement>,
}

/// Where the first escalation happened, in customer-turn numbers (0-based).
fn first_escalation(engine: &Engine, c: &LabelledConversation) -> Option<usize> {
    let id = ConversationId::parse(c.id.clone())
        .unwrap_or_else(|_| ConversationId::parse("eval").expect("`eval` is a valid id"));
    let mut session = engine.start(id, Customer::default(), None);
    let mut customer_turn: Option<usize> = None;
    for t in &c.turns {
        let Ok(turn) = Turn::new(t.role, t.text.clone()) else {
            continue;
        };
        if t.role == baton_domain::Role::Customer {
            customer_turn = Some(customer_turn.map_or(0, |n| n + 1));
        }
        let outcome = engine.process(&mut session, turn);
        if outcome.decision.escalate {
            return Some(customer_turn.unwrap_or(0));
        }
    }
    None
}

/// Where a dialogue's first escalation fell against its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timing {
    Before,
    At,
    Late,
    Missed,
}

/// The first dissatisfied customer turn of some ratings (one per customer turn, `None` where
/// unrated) and the trigger, the second dissatisfied turn in a row.
fn dissatisfied(ratings: &[Option<f64>], config: TimingConfig) -> (Option<usize>, Option<usize>) {
    let low = |k: usize| ratings[k].is_some_and(|s| s <= config.dissatisfied_at_or_below);
    let first_low = (0..ratings.len()).find(|&k| low(k));
    let trigger = (1..ratings.len()).find(|&k| low(k) && low(k - 1));
    (first_low, trigger)
}

/// What the labels say of one escalation (customer-turn number, or none): its timing when the
/// dialogue has two dissatisfied turns in a row, and whether the dialogue went well.
fn judge(
    escalation: Option<usize>,
    ratings: &[Option<f64>],
    overall: Option<f64>,
    config: TimingConfig,
) -> (Option<Timing>, bool) {
    let (first_low, trigger) = dissatisfied(ratings, config);
    let timing = first_low
        .zip(trigger)
        .map(|(first, trigger)| match escalation {
            None => Timing::Missed,
            Some(e) if e < first => Timing::Before,
            Some(e) if e <= trigger + 1 => Timing::At,
            Some(_) => Timing::Late,
        });
    let good = overall.is_some_and(|o| o >= config.good_at_or_above);
    (timing, good)
}

/// Replays every conversation through the whole pipeline and reports when it escalated.
pub fn evaluate_timing(
    engine: &Engine,
    name: &str,
    conversations: &[LabelledConversation],
    config: TimingConfig,
    mut progress: impl FnMut(usize),
) -> TimingReport {
    let mut r = TimingReport {
        name: name.to_owned(),
        dialogues: conversations.len(),
        ..TimingReport::default()
    };
    let mut escalations = Vec::with_capacity(conversations.len());
    for (i, c) in conversations.iter().enumerate() {
        let escalation = first_escalation(engine, c);
        escalations.push(escalation);
        r.escalated += usize::from(escalation.is_some());
        let ratings: Vec<Option<f64>> = c
            .turns
            .iter()
            .filter(|t| t.role == baton_domain::Role::Customer)
            .map(|t| t.satisfaction)
            .collect();
        let (timing, good) = judge(escalation, &ratings, c.overall, config);
        if let Some(timing) = timing {
            r.with_trigger += 1;
            *match timing {
                Timing::Before => &mut r.before_dissatisfaction,
                Timing::At => &mut r.at_dissatisfaction,
                Timing::Late => &mut r.late,
                Timing::Missed => &mut r.missed,
            } += 1;
        }
        if good {
            r.good += 1;
            r.needless += usize::from(escalation.is_some());
        }
        progress(i + 1);
    }
    r.on_time_share = share(
        r.before_dissatisfaction + r.at_dissatisfaction,
        r.with_trigger,
    );
    r.needless_share = share(r.needless, r.good);
    r.annotators = annotator_agreement(conversations, &escalations, config);
    r
}

fn share(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// How one way of escalating fares, pooled over annotators: on time and needless, as in
/// [`TimingReport`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Agreement {
    /// Annotator-dialogue pairs whose reference (the others' mean) has two dissatisfied turns
    /// in a row.
    pub with_trigger: usize,
    /// Of those: escalated no later than one customer turn after the trigger.
    pub on_time: usize,
    /// `on_time / with_trigger`.
    pub on_time_share: f64,
    /// Annotator-dialogue pairs whose reference rates the dialogue well overall.
    pub good: usize,
    /// Of those: escalated anyway.
    pub needless: usize,
    /// `needless / good`.
    pub needless_share: f64,
}

/// The annotators judged as detectors: each annotator's own ratings decide the escalation,
/// and the mean of the other annotators of the same dialogue is the label. Baton is scored
/// against the same labels, so the rows compare.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct AnnotatorAgreement {
    /// Annotator-dialogue pairs scored: every annotator of a dialogue that has at least two,
    /// each of whom rated every rated customer turn and the dialogue overall.
    pub pairs: usize,
    /// Escalating at the annotator's own second dissatisfied turn in a row (the label's rule).
    pub two_in_a_row: Agreement,
    /// Escalating at the annotator's own first dissatisfied turn.
    pub first_dissatisfied: Agreement,
    /// Baton's escalations, against each annotator's label (the others' mean).
    pub baton: Agreement,
}

/// Scores each annotator against the others ([`AnnotatorAgreement`]), and Baton's
/// `escalations` (customer-turn number per conversation, in the same order) against the same
/// labels; `None` when no conversation has per-annotator ratings from two annotators or more.
pub fn annotator_agreement(
    conversations: &[LabelledConversation],
    escalations: &[Option<usize>],
    config: TimingConfig,
) -> Option<AnnotatorAgreement> {
    let mut a = AnnotatorAgreement::default();
    for (c, &baton) in conversations.iter().zip(escalations) {
        let rated: Vec<&[f64]> = c
            .turns
            .iter()
            .filter(|t| t.role == baton_domain::Role::Customer)
            .map(|t| t.annotator_ratings.as_slice())
            .collect();
        let overall = c.overall_annotator_ratings.as_slice();
        let annotators = overall.len();
        if annotators < 2 || rated.iter().any(|r| !r.is_empty() && r.len() != annotators) {
            continue;
        }
        let others = |r: &[f64], who: usize| {
            (!r.is_empty()).then(|| (r.iter().sum::<f64>() - r[who]) / (r.len() - 1) as f64)
        };
        for who in 0..annotators {
            a.pairs += 1;
            let reference: Vec<Option<f64>> = rated.iter().map(|r| others(r, who)).collect();
            let own: Vec<Option<f64>> = rated.iter().map(|r| r.get(who).copied()).collect();
            let (first, two) = dissatisfied(&own, config);
            let label_overall = others(overall, who);
            for (escalation, tally) in [
                (two, &mut a.two_in_a_row),
                (first, &mut a.first_dissatisfied),
                (baton, &mut a.baton),
            ] {
                let (timing, good) = judge(escalation, &reference, label_overall, config);
                if let Some(timing) = timing {
                    tally.with_trigger += 1;
                    tally.on_time += usize::from(matches!(timing, Timing::Before | Timing::At));
                }
                if good {
                    tally.good += 1;
                    tally.needless += usize::from(escalation.is_some());
                }
            }
        }
    }
    for tally in [&mut a.two_in_a_row, &mut a.first_dissatisfied, &mut a.baton] {
        tally.on_time_share = share(tally.on_time, tally.with_trigger);
        tally.needless_share = share(tally.needless, tally.good);
    }
    (a.pairs > 0).then_some(a)
}

/// Renders a timing report as text.
pub fn render_timing(r: &TimingReport) -> String {
    let mut out = format!(
        "{name} ({dialogues} dialogues, {escalated} escalated)\n\
         dialogues with 2 dissatisfied turns in a row: {with_trigger}\n\
         \x20 escalated before dissatisfaction:      {before}\n\
         \x20 escalated at it (<= 1 turn after):     {at}\n\
         \x20 escalated late:                        {late}\n\
         \x20 never escalated:                       {missed}\n\
         \x20 on time (before or at):                {on_time:.1}%\n\
         dialogues rated well overall: {good}; escalated needlessly: {needless} ({needless_share:.1}%)\n",
        name = r.name,
        dialogues = r.dialogues,
        escalated = r.escalated,
        with_trigger = r.with_trigger,
        before = r.before_dissatisfaction,
        at = r.at_dissatisfaction,
        late = r.late,
        missed = r.missed,
        on_time = 100.0 * r.on_time_share,
        good = r.good,
        needless = r.needless,
        needless_share = 100.0 * r.needless_share,
    );
    if let Some(a) = &r.annotators {
        out.push_str(&format!(
            "the annotators as detectors ({pairs} annotator-dialogue pairs; label: the others' mean)\n",
            pairs = a.pairs
        ));
        for (rule, t) in [
            ("own 2nd dissatisfied turn in a row", &a.two_in_a_row),
            ("own 1st dissatisfied turn", &a.first_dissatisfied),
            ("Baton, against the same labels", &a.baton),
        ] {
            out.push_str(&format!(
                "\x20 {rule:<36} on time {}/{} ({:.1}%); needless {}/{} ({:.1}%)\n",
                t.on_time,
                t.with_trigger,
                100.0 * t.on_time_share,
                t.needless,
                t.good,
                100.0 * t.needless_share,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::{mean, LabelledTurn};
    use baton_domain::Role;

    /// A dialogue of customer turns only, each with its annotators' ratings.
    fn dialogue(turns: &[&[f64]], overall: &[f64]) -> LabelledConversation {
        LabelledConversation {
            id: "d".into(),
            turns: turns
                .iter()
                .map(|r| LabelledTurn {
                    role: Role::Customer,
                    text: "x".into(),
                    satisfaction: mean(r),
                    annotator_ratings: r.to_vec(),
                })
                .collect(),
            overall: mean(overall),
            overall_annotator_ratings: overall.to_vec(),
        }
    }

    #[test]
    fn judge_places_the_escalation_against_the_trigger() {
        let c = TimingConfig::default();
        let r = [Some(3.0), Some(2.0), Some(1.0), Some(3.0), Some(3.0)];
        // First dissatisfied turn 1, trigger 2: on time up to turn 3.
        assert_eq!(judge(Some(0), &r, None, c).0, Some(Timing::Before));
        assert_eq!(judge(Some(3), &r, None, c).0, Some(Timing::At));
        assert_eq!(judge(Some(4), &r, None, c).0, Some(Timing::Late));
        assert_eq!(judge(None, &r, Some(4.0), c), (Some(Timing::Missed), true));
        let calm = [Some(3.0), Some(2.0), Some(3.0)];
        assert_eq!(judge(Some(1), &calm, Some(3.9), c), (None, false));
    }

    #[test]
    fn each_annotator_is_scored_against_the_others_mean() {
        // Annotator 0 alone is unhappy at turns 1 and 2; annotators 1 and 2 agree with each
        // other that turns 2 and 3 were bad, and rate the dialogue 2 overall (annotator 0: 4).
        let d = dialogue(
            &[
                &[3.0, 3.0, 3.0],
                &[1.0, 3.0, 3.0],
                &[1.0, 2.0, 2.0],
                &[3.0, 1.0, 2.0],
            ],
            &[4.0, 2.0, 2.0],
        );
        let a = annotator_agreement(
            std::slice::from_ref(&d),
            &[Some(1)],
            TimingConfig::default(),
        )
        .expect("ratings");
        assert_eq!(a.pairs, 3);
        // Labels: for 0, the others' mean is low at turns 2 and 3 (trigger 3); for 1, the
        // others' means at turns 1-3 are (2, 1.5, 2.5), for 2 (2, 1.5, 2): trigger 2 for both.
        assert_eq!(a.two_in_a_row.with_trigger, 3);
        // On their own second low turn in a row, 0 escalates at 2 (trigger 3), 1 and 2 at 3
        // (trigger 2, one turn late is still on time).
        assert_eq!(a.two_in_a_row.on_time, 3);
        assert_eq!(a.first_dissatisfied.on_time, 3);
        // Baton escalated at turn 1: before every label's first dissatisfied turn but 1's and
        // 2's (turn 1 itself), on time for all three.
        assert_eq!((a.baton.with_trigger, a.baton.on_time), (3, 3));
        // Overall: nobody's others rate it 4 or more (0's others: 2; 1's: 3; 2's: 3).
        assert_eq!(a.two_in_a_row.good, 0);
        // At or below 1.5, each annotator's label is low at one turn at most: no trigger.
        let strict = TimingConfig {
            dissatisfied_at_or_below: 1.5,
            ..TimingConfig::default()
        };
        let a = annotator_agreement(&[d], &[None], strict).expect("ratings");
        assert_eq!(a.two_in_a_row.with_trigger, 0);
    }

    #[test]
    fn agreement_needs_two_annotators_who_rated_every_turn() {
        let single = dialogue(&[&[1.0], &[1.0]], &[1.0]);
        assert_eq!(
            annotator_agreement(&[single], &[None], TimingConfig::default()),
            None
        );
        let ragged = dialogue(&[&[1.0, 2.0], &[1.0]], &[1.0, 2.0]);
        assert_eq!(
            annotator_agreement(&[ragged], &[None], TimingConfig::default()),
            None
        );
        let good = dialogue(&[&[3.0, 1.0], &[3.0, 1.0]], &[5.0, 4.0]);
        let a = annotator_agreement(&[good], &[Some(0)], TimingConfig::default()).expect("ratings");
        // Annotator 1 escalates (two of its own 1s) where annotator 0's 5 says it went well:
        // needless; annotator 0 never escalates, and annotator 1's 4 also says well.
        assert_eq!((a.two_in_a_row.good, a.two_in_a_row.needless), (2, 1));
        assert_eq!(a.two_in_a_row.with_trigger, 1);
        assert_eq!(a.two_in_a_row.on_time, 0);
        // Baton escalated at turn 0: early for 0's label, needless for both.
        assert_eq!((a.baton.on_time, a.baton.needless), (1, 2));
    }
}
