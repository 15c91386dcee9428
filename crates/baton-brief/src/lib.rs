//! The Prepare stage (DESIGN.md section 4): the handoff brief.
//!
//! Why this crate exists: the brief is what makes a handoff worth having. The customer must not
//! repeat themselves, so the agent gets, on one page, what the customer wants, in their words;
//! what the AI already tried; why it escalated; who the customer is; and a first message that
//! proves the context arrived. Everything here is extractive and deterministic (the customer's
//! own sentences, the AI's own answers), so it works offline and never invents facts.
//!
//! [`build`] assembles a [`Brief`]; [`render_markdown`] and [`render_json`] render it.
#![forbid(unsafe_code)]

pub mod entities;

use baton_domain::{
    AttemptedSolution, Brief, BriefReason, Customer, CustomerContext, Decision, ReasonCode, Role,
    SentimentSummary, Signal, TranscriptLine, Turn, BRIEF_SCHEMA_VERSION,
};
use regex::Regex;
use std::fmt::Write as _;

/// Summary lines at most (DESIGN.md: a 5-10 line summary).
pub const MAX_SUMMARY_LINES: usize = 10;
/// Turns shown as "recent" above the full transcript.
pub const RECENT_TURNS: usize = 10;

/// Everything the brief is built from.
#[derive(Debug, Clone, Copy)]
pub struct BriefInput<'a> {
    /// The conversation's id.
    pub conversation_id: &'a str,
    /// Every turn up to and including the one that escalated.
    pub turns: &'a [Turn],
    /// The signals of each turn, parallel to `turns`.
    pub turn_signals: &'a [Vec<Signal>],
    /// The decision that started the handoff.
    pub decision: &'a Decision,
    /// The customer.
    pub customer: &'a Customer,
    /// VADER compound of each customer turn.
    pub compounds: &'a [f64],
    /// Indexes of AI turns the customer rejected.
    pub rejected_ai_turns: &'a [usize],
    /// Topic codes seen, first seen first.
    pub topics: &'a [ReasonCode],
    /// The customer's language, given or detected.
    pub language: Option<&'a str>,
}

/// Builds the brief. Never fails: missing pieces are left out, not invented.
pub fn build(input: &BriefInput<'_>, extractor: &entities::Extractor) -> Brief {
    let turns = input.turns;
    let handoff_turn = turns.len().saturating_sub(1);
    let transcript: Vec<TranscriptLine> = turns
        .iter()
        .enumerate()
        .map(|(i, t)| TranscriptLine {
            turn: i,
            role: t.role,
            text: t.text.clone(),
        })
        .collect();
    let entities = turns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role == Role::Customer)
        .flat_map(|(i, t)| extractor.extract(&t.text, i))
        .fold(Vec::new(), |mut acc: Vec<baton_domain::Entity>, e| {
            if !acc
                .iter()
                .any(|x| x.kind == e.kind && x.value == e.value && x.text == e.text)
            {
                acc.push(e);
            }
            acc
        });
    let attempted_solutions: Vec<AttemptedSolution> = turns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role == Role::Ai)
        .map(|(i, t)| AttemptedSolution {
            turn: i,
            summary: gist(&t.text),
            kb_articles: t.kb_articles.clone(),
            rejected: input.rejected_ai_turns.contains(&i),
        })
        .collect();
    let intent_code = intent(input);
    let reasons = reasons(input);
    let problem = problem_statement(input, intent_code);
    let summary = summary(input, &attempted_solutions);
    let name = input.customer.name.clone();
    let warm_introduction =
        warm_introduction(name.as_deref(), problem.as_deref(), &attempted_solutions);
    Brief {
        schema_version: BRIEF_SCHEMA_VERSION.to_owned(),
        conversation_id: input.conversation_id.to_owned(),
        handoff_turn,
        summary,
        intent: intent_code.map_or_else(|| "general_support".to_owned(), |c| c.as_str().to_owned()),
        desired_outcome: desired_outcome(turns),
        reasons,
        score: input.decision.score,
        sentiment: sentiment(input.compounds),
        entities,
        attempted_solutions,
        customer: CustomerContext {
            id: input.customer.id.clone(),
            name,
            tier: input.customer.tier.clone(),
            tenure_days: input.customer.tenure_days,
            contacts_same_issue_30d: input.customer.contacts_same_issue_30d,
            deal_value: input.customer.deal_value,
            language: input
                .language
                .map(str::to_owned)
                .or_else(|| input.customer.language.clone()),
            email: input.customer.email.clone(),
        },
        step_in_progress: turns
            .iter()
            .rev()
            .find(|t| t.role == Role::Ai)
            .and_then(|t| last_question(&t.text)),
        recommended_next_step: next_step(
            intent_code,
            input.decision,
            !input.rejected_ai_turns.is_empty(),
        ),
        warm_introduction,
        recent_turns: transcript[transcript.len().saturating_sub(RECENT_TURNS)..].to_vec(),
        transcript,
    }
}

/// The topic the conversation is about: the strongest topic among the decision's reasons, else
/// the first topic seen.
fn intent(input: &BriefInput<'_>) -> Option<ReasonCode> {
    input
        .decision
        .reasons
        .iter()
        .find(|c| input.topics.contains(c))
        .or_else(|| input.topics.first())
        .copied()
}

fn reasons(input: &BriefInput<'_>) -> Vec<BriefReason> {
    let last = input
        .turn_signals
        .last()
        .map(Vec::as_slice)
        .unwrap_or_default();
    input
        .decision
        .reasons
        .iter()
        .map(|code| {
            let signal = last.iter().find(|s| s.code == *code).or_else(|| {
                input
                    .turn_signals
                    .iter()
                    .rev()
                    .flat_map(|v| v.iter())
                    .find(|s| s.code == *code)
            });
            BriefReason {
                code: *code,
                text: code.label().to_owned(),
                evidence: signal
                    .map(|s| s.evidence.clone())
                    .unwrap_or_else(|| "policy rule".to_owned()),
                score: signal.map_or(input.decision.score, |s| s.score),
            }
        })
        .collect()
}

/// The customer turn that best states the problem: the first one whose signals include the
/// intent, else the first substantial customer turn.
fn problem_statement(input: &BriefInput<'_>, intent: Option<ReasonCode>) -> Option<String> {
    let customer_turns = || {
        input
            .turns
            .iter()
            .zip(input.turn_signals)
            .filter(|(t, _)| t.role == Role::Customer)
    };
    intent
        .and_then(|code| {
            customer_turns().find_map(|(t, signals)| {
                let evidence = signals
                    .iter()
                    .find(|s| s.code == code)?
                    .evidence
                    .to_lowercase();
                // The sentence that holds the evidence, not just the turn's first sentence.
                let sentence = sentences(&t.text)
                    .into_iter()
                    .find(|s| s.to_lowercase().contains(&evidence))
                    .map_or_else(|| first_sentence(&t.text), clip);
                Some(sentence)
            })
        })
        .or_else(|| {
            customer_turns()
                .find(|(t, _)| t.text.split_whitespace().count() >= 4)
                .map(|(t, _)| first_sentence(&t.text))
        })
}

/// Up to [`MAX_SUMMARY_LINES`] lines: the customer's opening problem, each later customer turn
/// that raised a signal, what the AI tried (and whether it was rejected), and the turn that
/// escalated.
fn summary(input: &BriefInput<'_>, attempts: &[AttemptedSolution]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let push = |line: String, lines: &mut Vec<String>| {
        if !lines.contains(&line) && lines.len() < MAX_SUMMARY_LINES {
            lines.push(line);
        }
    };
    let last = input.turns.len().saturating_sub(1);
    for (i, (turn, signals)) in input.turns.iter().zip(input.turn_signals).enumerate() {
        match turn.role {
            Role::Customer => {
                let salient = signals.iter().any(|s| s.score >= 0.5);
                let opening = !lines.iter().any(|l| l.starts_with("Customer"));
                if opening || salient || i == last {
                    push(format!("Customer: {}", clip(&turn.text)), &mut lines);
                }
            }
            Role::Ai => {
                if let Some(a) = attempts.iter().find(|a| a.turn == i) {
                    let verdict = if a.rejected {
                        " (rejected by the customer)"
                    } else {
                        ""
                    };
                    push(format!("Assistant: {}{verdict}", a.summary), &mut lines);
                }
            }
            Role::Agent => push(format!("Agent: {}", first_sentence(&turn.text)), &mut lines),
        }
    }
    // Keep the escalating turn even when the list filled up.
    if let Some(t) = input.turns.last() {
        let line = format!("Customer: {}", clip(&t.text));
        if t.role == Role::Customer && !lines.contains(&line) {
            lines.pop();
            lines.push(line);
        }
    }
    lines
}

fn sentiment(compounds: &[f64]) -> SentimentSummary {
    let at_handoff = compounds.last().copied().unwrap_or(0.0);
    let trend = match (compounds.first(), compounds.len()) {
        (Some(first), n) if n >= 2 => {
            let delta = at_handoff - first;
            if delta <= -0.2 {
                "worsening"
            } else if delta >= 0.2 {
                "improving"
            } else {
                "steady"
            }
        }
        _ => "steady",
    };
    SentimentSummary {
        at_handoff,
        trajectory: compounds.to_vec(),
        trend: trend.to_owned(),
    }
}

/// "I want ...", "I need ...", "could you ...": what the customer asks for.
// The pattern is a constant of this crate, exercised by its tests.
#[allow(clippy::expect_used)]
static OUTCOME: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:i (?:just )?(?:want|need|would like|'d like|expect)|i'd like|please|can you|could you)\s+(?P<what>[^.!?\n]{3,100})")
        .expect("built-in pattern compiles")
});

/// The last thing the customer said they want, in their words.
fn desired_outcome(turns: &[Turn]) -> Option<String> {
    turns
        .iter()
        .rev()
        .filter(|t| t.role == Role::Customer)
        .find_map(|t| OUTCOME.captures_iter(&t.text).last())
        .map(|c| c[0].trim().to_owned())
}

/// The sentences of a text, split after `.`, `!`, `?` or a newline followed by white space.
fn sentences(text: &str) -> Vec<&str> {
    let text = text.trim();
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        if matches!(c, '.' | '!' | '?' | '\n') && text[end..].starts_with(char::is_whitespace) {
            out.push(text[start..end].trim());
            start = end;
        }
    }
    out.push(text[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// A text cut to at most 200 characters.
fn clip(text: &str) -> String {
    let text = text.trim().replace('\n', " ");
    if text.chars().count() > 200 {
        let cut: String = text.chars().take(197).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// The first sentence of a text, at most 200 characters.
pub fn first_sentence(text: &str) -> String {
    clip(sentences(text).first().copied().unwrap_or_default())
}

/// Opening words of a pleasantry that carries no content ("I'm sorry!", "Thanks for waiting.").
const PLEASANTRIES: &[&str] = &[
    "sorry",
    "i'm sorry",
    "i am sorry",
    "apologies",
    "i apologize",
    "i apologise",
    "thanks",
    "thank you",
    "hi",
    "hello",
    "hey",
    "i understand",
    "i see",
    "great",
    "sure",
    "of course",
    "no problem",
    "certainly",
    "absolutely",
];

/// The gist of an AI answer: its first sentence that is not a pleasantry.
fn gist(text: &str) -> String {
    let all = sentences(text);
    let is_pleasantry = |s: &str| {
        let lower = s.to_lowercase();
        let words = s.split_whitespace().count();
        words <= 6 && PLEASANTRIES.iter().any(|p| lower.starts_with(p))
    };
    clip(
        all.iter()
            .find(|s| !is_pleasantry(s))
            .or(all.first())
            .copied()
            .unwrap_or_default(),
    )
}

fn last_question(text: &str) -> Option<String> {
    text.split_inclusive(['.', '!', '?'])
        .rev()
        .find(|s| s.trim_end().ends_with('?'))
        .map(|s| s.trim().to_owned())
}

fn next_step(intent: Option<ReasonCode>, decision: &Decision, rejected: bool) -> String {
    use ReasonCode::*;
    let mut step = match intent {
        Some(BillingDispute) => "Check the charges on the account against the order, confirm the error, and start the reversal or refund.",
        Some(Refund) => "Check the order's refund eligibility and status, then issue or expedite the refund and give the customer a date.",
        Some(AccountSecurity) => "Verify the customer's identity first, then secure the account: block cards, reset credentials, review recent activity.",
        Some(Legal) => "Do not discuss liability; acknowledge, collect the facts and route to the legal contact per procedure.",
        Some(Compliance) => "Log the data or compliance request with its date; follow the data-request procedure and its deadline.",
        Some(Complaint) => "Acknowledge the complaint, log it formally, and agree on a concrete remedy and follow-up date.",
        Some(Cancellation) => "Confirm what the customer wants cancelled, check for fees or alternatives, then process it or make a retention offer.",
        Some(ChurnRisk) => "Acknowledge the frustration, fix the underlying issue, and consider a retention offer.",
        Some(CustomPricing) => "Qualify the request (volume, term, use) and hand to sales for a quote.",
        _ if decision.reasons.contains(&HumanRequested) => "Greet the customer, confirm the problem from the summary, and resolve it directly.",
        _ => "Confirm the problem from the summary and resolve it directly.",
    }
    .to_owned();
    if rejected {
        step.push_str(" Avoid the answers listed under attempted solutions: the customer already rejected them.");
    }
    step
}

fn warm_introduction(
    name: Option<&str>,
    problem: Option<&str>,
    attempts: &[AttemptedSolution],
) -> String {
    let hello = match name {
        Some(n) if !n.trim().is_empty() => format!("Hi {}, thanks for waiting.", n.trim()),
        _ => "Hi, thanks for waiting.".to_owned(),
    };
    let context = match problem {
        Some(p) => format!(
            " I've read your conversation with our assistant, and I can see you wrote: \"{}\".",
            p.trim_end_matches(['.', '!', '?'])
        ),
        None => " I've read your conversation with our assistant.".to_owned(),
    };
    let tried = if attempts.iter().any(|a| a.rejected) {
        " I can also see the suggestions so far didn't solve it, so I won't repeat them."
    } else {
        ""
    };
    format!("{hello}{context}{tried} I'll take it from here.")
}

/// The JSON Schema of the brief (draft 2020-12), published as `schemas/brief.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Brief)).unwrap_or_default()
}

/// The brief as pretty-printed JSON.
pub fn render_json(brief: &Brief) -> String {
    serde_json::to_string_pretty(brief).unwrap_or_default()
}

/// The brief as Markdown, for agents, tickets and chat tools.
pub fn render_markdown(brief: &Brief) -> String {
    let mut md = String::new();
    let who = brief.customer.name.as_deref().unwrap_or("Customer");
    let _ = writeln!(md, "# Handoff: {who} ({})\n", brief.conversation_id);
    let _ = writeln!(md, "**Intent:** {}  ", brief.intent.replace('_', " "));
    if let Some(outcome) = &brief.desired_outcome {
        let _ = writeln!(md, "**Wants:** {outcome}  ");
    }
    let _ = writeln!(md, "**Escalation score:** {:.2}  ", brief.score);
    let _ = writeln!(
        md,
        "**Sentiment at handoff:** {:.2} ({})\n",
        brief.sentiment.at_handoff, brief.sentiment.trend
    );
    let _ = writeln!(md, "## Why\n");
    for r in &brief.reasons {
        let _ = writeln!(
            md,
            "- `{}`: {} (\"{}\", {:.2})",
            r.code, r.text, r.evidence, r.score
        );
    }
    let _ = writeln!(md, "\n## Summary\n");
    for line in &brief.summary {
        let _ = writeln!(md, "- {line}");
    }
    if !brief.entities.is_empty() {
        let _ = writeln!(md, "\n## Details\n");
        for e in &brief.entities {
            let kind = serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "- {}: {}",
                kind.replace('_', " "),
                e.value.as_deref().unwrap_or(&e.text)
            );
        }
    }
    if !brief.attempted_solutions.is_empty() {
        let _ = writeln!(md, "\n## Already tried\n");
        for a in &brief.attempted_solutions {
            let kb = if a.kb_articles.is_empty() {
                String::new()
            } else {
                format!(" [{}]", a.kb_articles.join(", "))
            };
            let mark = if a.rejected { " (rejected)" } else { "" };
            let _ = writeln!(md, "- {}{kb}{mark}", a.summary);
        }
    }
    let c = &brief.customer;
    let _ = writeln!(md, "\n## Customer\n");
    for (label, value) in [
        ("id", c.id.clone()),
        ("tier", c.tier.clone()),
        ("tenure (days)", c.tenure_days.map(|v| v.to_string())),
        (
            "contacts on this issue (30 days)",
            c.contacts_same_issue_30d.map(|v| v.to_string()),
        ),
        ("deal value", c.deal_value.map(|v| v.to_string())),
        ("language", c.language.clone()),
        ("email", c.email.clone()),
    ] {
        if let Some(v) = value {
            let _ = writeln!(md, "- {label}: {v}");
        }
    }
    if let Some(step) = &brief.step_in_progress {
        let _ = writeln!(md, "\n**Step in progress:** {step}");
    }
    let _ = writeln!(md, "\n## Next step\n\n{}\n", brief.recommended_next_step);
    let _ = writeln!(
        md,
        "## Suggested first message\n\n> {}\n",
        brief.warm_introduction
    );
    let _ = writeln!(md, "## Recent turns\n");
    for t in &brief.recent_turns {
        let _ = writeln!(
            md,
            "{}. **{}:** {}",
            t.turn + 1,
            t.role.as_str(),
            t.text.replace('\n', " ")
        );
    }
    md
}

#[cfg(test)]
mod tests;
