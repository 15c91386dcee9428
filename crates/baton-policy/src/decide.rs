//! Signals -> decision (DESIGN.md section 3).

use crate::Policy;
use baton_domain::{Contribution, Customer, Decision, Mode, ReasonCode, Signal, SkippedRule};
use cel::common::types::{CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use std::collections::{BTreeMap, HashMap};

/// What the policy may look at besides the signals.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// This turn's signals.
    pub signals: &'a [Signal],
    /// The customer.
    pub customer: &'a Customer,
    /// Turns so far, this one included.
    pub turns: usize,
    /// Customer turns so far.
    pub customer_turns: usize,
    /// Failed AI answers in a row.
    pub failures: u32,
    /// Topic codes seen in the conversation.
    pub topics: &'a [ReasonCode],
    /// The customer's language.
    pub language: Option<&'a str>,
    /// The channel.
    pub channel: Option<&'a str>,
    /// `customer` already converted for the rules ([`Policy::customer_value`]), when the caller
    /// keeps one per conversation; converted on each decision otherwise.
    pub customer_value: Option<&'a CustomerValue>,
}

/// A customer converted once into the value rules read as `customer`. Converting a customer
/// with a few attributes costs more than evaluating the rules, so a conversation keeps one.
#[derive(Debug, Clone)]
pub struct CustomerValue {
    value: cel::Value,
    /// Per rule, in policy order: whether a condition part that reads only `customer` is
    /// false for this customer, so the rule cannot hold on any turn.
    pub(crate) ruled_out: Vec<bool>,
}

impl<'a> Facts<'a> {
    /// The facts of a conversation's first turn: these signals and this customer, one turn,
    /// no failures, topics, language or channel yet.
    pub fn first_turn(signals: &'a [Signal], customer: &'a Customer) -> Self {
        Self {
            signals,
            customer,
            turns: 1,
            customer_turns: 1,
            failures: 0,
            topics: &[],
            language: None,
            channel: None,
            customer_value: None,
        }
    }
}

fn json_to_cel(v: &serde_json::Value) -> cel::Value {
    use serde_json::Value as J;
    match v {
        J::Null => cel::Value::Null,
        J::Bool(b) => cel::Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => cel::Value::from(s.as_str()),
        J::Array(items) => cel::Value::from(items.iter().map(json_to_cel).collect::<Vec<_>>()),
        J::Object(map) => cel::Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_cel(v)))
                .collect::<HashMap<String, cel::Value>>(),
        ),
    }
}

/// `customer` as CEL reads it.
fn customer_cel(customer: &Customer) -> cel::Value {
    json_to_cel(&serde_json::to_value(customer).unwrap_or_default())
}

/// A CEL map with string keys borrowed from `'v` (no copies of the keys).
fn cel_map<'v>(
    entries: impl IntoIterator<Item = (&'v str, Box<dyn Val + 'v>)>,
) -> Box<dyn Val + 'v> {
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::String(CelString::from(k)), v))
        .collect();
    Box::new(CelMap::from(map))
}

fn int(n: usize) -> Box<dyn Val + 'static> {
    Box::new(CelInt::from(i64::try_from(n).unwrap_or(i64::MAX)))
}

impl Policy {
    /// `customer` as the rules read it; keep it for the conversation and pass it in
    /// [`Facts::customer_value`].
    pub fn customer_value(&self, customer: &Customer) -> CustomerValue {
        if let Some(anonymous) = &self.anonymous {
            if *customer == Customer::default() {
                return anonymous.clone();
            }
        }
        let value = customer_cel(customer);
        let ruled_out = if self.rules.iter().all(|r| r.customer_guards.is_empty()) {
            Vec::new()
        } else {
            let mut ctx = cel::Context::with_env(self.cel_env.clone());
            ctx.add_variable_from_value("customer", value.clone());
            // Ruled out when the leading customer-only parts hold up to one that is false:
            // evaluated left to right, the whole condition is then false.
            let false_before_anything_else = |guards: &[cel::Program]| {
                for guard in guards {
                    match guard.execute(&ctx) {
                        Ok(cel::Value::Bool(true)) => {}
                        Ok(cel::Value::Bool(false)) => return true,
                        _ => return false,
                    }
                }
                false
            };
            self.rules
                .iter()
                .map(|r| false_before_anything_else(&r.customer_guards))
                .collect()
        };
        CustomerValue { value, ruled_out }
    }

    /// The variables rules read, built straight into CEL's own value types with static keys:
    /// a decision allocates no string for the signal and conversation keys.
    pub(crate) fn cel_context(
        &self,
        facts: &Facts<'_>,
        everything: bool,
    ) -> cel::Context<'static, 'static> {
        let mut ctx = cel::Context::with_env(self.cel_env.clone());
        if self.reads_customer || everything {
            let value = match facts.customer_value {
                Some(v) => v.value.clone(),
                None => customer_cel(facts.customer),
            };
            ctx.add_variable_from_value("customer", value);
        }
        let mut scores = [0.0f64; ReasonCode::ALL.len()];
        for s in facts.signals {
            if let Some(i) = ReasonCode::ALL.iter().position(|c| *c == s.code) {
                scores[i] = scores[i].max(s.score);
            }
        }
        let read = match &self.read_signals {
            Some(codes) if !everything => codes.as_slice(),
            _ => ReasonCode::ALL,
        };
        ctx.add_variable_as_val(
            "signals",
            cel_map(
                ReasonCode::ALL
                    .iter()
                    .zip(scores)
                    .filter(|(c, _)| read.contains(c))
                    .map(|(c, v)| (c.as_str(), Box::new(CelDouble::from(v)) as Box<dyn Val>)),
            ),
        );
        if !(self.reads_conversation || everything) {
            return ctx;
        }
        let topics: Vec<Box<dyn Val>> = facts
            .topics
            .iter()
            .map(|c| Box::new(CelString::from(c.as_str())) as Box<dyn Val>)
            .collect();
        let conversation: [(&'static str, Box<dyn Val>); 6] = [
            ("turns", int(facts.turns)),
            ("customer_turns", int(facts.customer_turns)),
            ("failures", int(facts.failures as usize)),
            ("topics", Box::new(CelList::from(topics))),
            (
                "language",
                Box::new(CelString::from(facts.language.unwrap_or("").to_owned())),
            ),
            (
                "channel",
                Box::new(CelString::from(facts.channel.unwrap_or("").to_owned())),
            ),
        ];
        ctx.add_variable_as_val("conversation", cel_map(conversation));
        ctx
    }

    /// The first queue, in policy order, whose `when` condition holds for this handoff; a
    /// condition that fails to evaluate counts as not holding. `topic` is the strongest topic
    /// code and `intent` the brief's intent.
    pub fn queue_rule(
        &self,
        facts: &Facts<'_>,
        topic: Option<ReasonCode>,
        intent: Option<&str>,
    ) -> Option<&str> {
        if self.queue_rules.is_empty() {
            return None;
        }
        let mut ctx = self.cel_context(facts, true);
        ctx.add_variable_from_value("topic", topic.map_or("", |t| t.as_str()));
        ctx.add_variable_from_value("intent", intent.unwrap_or("").to_owned());
        ctx.add_variable_from_value("language", facts.language.unwrap_or("").to_owned());
        self.queue_rules
            .iter()
            .find(|(_, program)| matches!(program.execute(&ctx), Ok(cel::Value::Bool(true))))
            .map(|(name, _)| name.as_str())
    }

    /// Decides on one turn.
    ///
    /// 1. Deterministic triggers: a code in `triggers` whose signal scores at least
    ///    `trigger_min_score` escalates.
    /// 2. Rules, in order: a CEL condition that holds escalates (with its reason) or raises the
    ///    mode. A rule that fails to evaluate is skipped and listed in `skipped_rules`.
    /// 3. Score: `1 - prod(1 - weight * signal)` (noisy-OR, so independent signals add up
    ///    without passing 1), raised to the strongest trigger's signal when one fired.
    /// 4. Threshold: `threshold - sum(lowers * signal)`, floored at `min_threshold`.
    ///
    /// Reasons are the triggered codes, then rule reasons, then every code whose weighted
    /// contribution reaches `min_contribution`, strongest first. In shadow mode an escalation is
    /// reported with `shadow: true` and `escalate: false`.
    pub fn decide(&self, facts: &Facts<'_>) -> Decision {
        let f = &self.file;
        let mut best: BTreeMap<ReasonCode, &Signal> = BTreeMap::new();
        for s in facts.signals {
            if best.get(&s.code).is_none_or(|b| s.score > b.score) {
                best.insert(s.code, s);
            }
        }
        let mut contributions: Vec<Contribution> = best
            .values()
            .map(|s| {
                let weight = self.weights.get(&s.code).copied().unwrap_or(0.0);
                Contribution {
                    code: s.code,
                    signal_score: s.score,
                    weight,
                    contribution: round4(weight * s.score),
                    threshold_reduction: round4(
                        self.lowers.get(&s.code).copied().unwrap_or(0.0) * s.score,
                    ),
                    triggered: self.triggers.contains(&s.code) && s.score >= f.trigger_min_score,
                }
            })
            .collect();
        contributions.sort_by(|a, b| {
            b.triggered
                .cmp(&a.triggered)
                .then(b.contribution.total_cmp(&a.contribution))
                .then(a.code.cmp(&b.code))
        });

        let mut reasons: Vec<ReasonCode> = contributions
            .iter()
            .filter(|c| c.triggered)
            .map(|c| c.code)
            .collect();
        let mut escalate = !reasons.is_empty();
        let mut mode_floor = Mode::AiOnly;
        let mut rules_fired = Vec::new();
        let mut skipped_rules = Vec::new();
        let ruled_out = facts
            .customer_value
            .map_or(&[][..], |v| v.ruled_out.as_slice());
        let mut live = self
            .rules
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                !ruled_out.get(*i).copied().unwrap_or(false)
                    && r.signal_guards
                        .iter()
                        .all(|g| g.holds(best.get(&g.code).map_or(0.0, |s| s.score)))
            })
            .map(|(_, r)| r)
            .peekable();
        if live.peek().is_some() {
            let ctx = self.cel_context(facts, false);
            for rule in live {
                match rule.program.execute(&ctx) {
                    Ok(cel::Value::Bool(true)) => {
                        rules_fired.push(rule.name.clone());
                        if rule.escalate {
                            escalate = true;
                            if let Some(r) = rule.reason {
                                if !reasons.contains(&r) {
                                    reasons.push(r);
                                }
                            }
                        }
                        if let Some(m) = rule.mode {
                            mode_floor = max_mode(mode_floor, m);
                        }
                    }
                    Ok(cel::Value::Bool(false)) => {}
                    Ok(other) => skipped_rules.push(SkippedRule {
                        rule: rule.name.clone(),
                        error: format!("condition gave {other:?}, not true or false"),
                    }),
                    Err(e) => skipped_rules.push(SkippedRule {
                        rule: rule.name.clone(),
                        error: e.to_string(),
                    }),
                }
            }
        }

        let mut keep = 1.0;
        for c in &contributions {
            keep *= 1.0 - c.contribution.clamp(0.0, 1.0);
        }
        let mut score: f64 = 1.0 - keep;
        if let Some(strongest) = contributions
            .iter()
            .filter(|c| c.triggered)
            .map(|c| c.signal_score)
            .reduce(f64::max)
        {
            score = score.max(strongest);
        }
        let lowered: f64 = contributions.iter().map(|c| c.threshold_reduction).sum();
        let threshold = (f.threshold - lowered).max(f.min_threshold);
        if score >= threshold {
            escalate = true;
        }
        for c in &contributions {
            if c.contribution >= f.min_contribution && !reasons.contains(&c.code) {
                reasons.push(c.code);
            }
        }

        let quiet_mode = if score >= f.assist_threshold {
            max_mode(Mode::AiAssisted, mode_floor)
        } else {
            mode_floor
        };
        let shadow = f.shadow && escalate;
        let (escalate, mode) = if escalate && !f.shadow {
            (true, Mode::Escalate)
        } else {
            (
                false,
                if mode_floor == Mode::Escalate {
                    Mode::AiAssisted
                } else {
                    quiet_mode
                },
            )
        };
        Decision {
            mode,
            escalate,
            score: round4(score),
            threshold: round4(threshold),
            reasons,
            contributions,
            rules_fired,
            skipped_rules,
            shadow,
        }
    }
}

fn max_mode(a: Mode, b: Mode) -> Mode {
    let rank = |m| match m {
        Mode::AiOnly => 0,
        Mode::AiAssisted => 1,
        Mode::Escalate => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
