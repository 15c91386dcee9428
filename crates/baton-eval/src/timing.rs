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
    for (i, c) in conversations.iter().enumerate() {
        let escalation = first_escalation(engine, c);
        r.escalated += usize::from(escalation.is_some());
        let ratings: Vec<Option<f64>> = c
            .turns
            .iter()
            .filter(|t| t.role == baton_domain::Role::Customer)
            .map(|t| t.satisfaction)
            .collect();
        let low = |k: usize| ratings[k].is_some_and(|s| s <= config.dissatisfied_at_or_below);
        let first_low = (0..ratings.len()).find(|&k| low(k));
        let trigger = (1..ratings.len()).find(|&k| low(k) && low(k - 1));
        if let (Some(first), Some(trigger)) = (first_low, trigger) {
            r.with_trigger += 1;
            match escalation {
                None => r.missed += 1,
                Some(e) if e < first => r.before_dissatisfaction += 1,
                Some(e) if e <= trigger + 1 => r.at_dissatisfaction += 1,
                Some(_) => r.late += 1,
            }
        }
        if c.overall.is_some_and(|o| o >= config.good_at_or_above) {
            r.good += 1;
            r.needless += usize::from(escalation.is_some());
        }
        progress(i + 1);
    }
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    r.on_time_share = share(
        r.before_dissatisfaction + r.at_dissatisfaction,
        r.with_trigger,
    );
    r.needless_share = share(r.needless, r.good);
    r
}

/// Renders a timing report as text.
pub fn render_timing(r: &TimingReport) -> String {
    format!(
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
    )
}
