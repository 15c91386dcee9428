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
    // Only what the assistant did about the problem: greetings, questions back, holding lines
    // and closings are not attempts.
    let attempted_solutions: Vec<AttemptedSolution> = turns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role == Role::Ai)
        .filter_map(|(i, t)| {
            let summary = gist(&t.text)
                .or_else(|| (!t.kb_articles.is_empty()).then(|| first_sentence(&t.text)))?;
            Some(AttemptedSolution {
                turn: i,
                summary,
                kb_articles: t.kb_articles.clone(),
                rejected: input.rejected_ai_turns.contains(&i),
            })
        })
        .collect();
    let intent_code = intent(input);
    let reasons = reasons(input);
    let problem = problem_statement(input, intent_code);
    let desired_outcome = desired_outcome(turns);
    let summary = summary(
        input,
        problem.as_deref(),
        desired_outcome.as_deref(),
        &attempted_solutions,
        &entities,
    );
    let name = input.customer.name.clone();
    let warm_introduction = warm_introduction(
        name.as_deref(),
        problem.as_deref(),
        intent_code,
        &attempted_solutions,
    );
    Brief {
        schema_version: BRIEF_SCHEMA_VERSION.to_owned(),
        conversation_id: input.conversation_id.to_owned(),
        handoff_turn,
        summary,
        intent: intent_code.map_or_else(|| "general_support".to_owned(), |c| c.as_str().to_owned()),
        desired_outcome,
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

/// Reason codes that voice how the customer feels or what they ask of the conversation, not
/// what their problem is: a sentence that holds their evidence is the problem line only when
/// no other sentence will do. (Negative sentiment is not among them: a problem told plainly
/// reads negative, "I have an error trying to change my address".)
const NOT_THE_PROBLEM: &[ReasonCode] = &[
    ReasonCode::Frustration,
    ReasonCode::Anger,
    ReasonCode::Helplessness,
    ReasonCode::HumanRequested,
    ReasonCode::RepeatedFailure,
    ReasonCode::ContextRepetition,
];

/// The customer's need in one line: the sentence that holds the intent's evidence, else the
/// first that says what they need or what went wrong ([`NEED`]), else the first of four words
/// or more, passing over sentences that voice emotion or ask for a person; only when nothing
/// else is left, the first sentence of two words or more. Never a greeting: a leading one is
/// cut off.
fn problem_statement(input: &BriefInput<'_>, intent: Option<ReasonCode>) -> Option<String> {
    let candidates: Vec<(&str, &[Signal])> = input
        .turns
        .iter()
        .zip(input.turn_signals)
        .filter(|(t, _)| t.role == Role::Customer)
        .flat_map(|(t, signals)| {
            sentences(&t.text)
                .into_iter()
                .map(move |s| (strip_greeting(s), signals.as_slice()))
        })
        .filter(|(s, _)| s.split_whitespace().count() >= 2)
        .collect();
    let holds = |sentence: &str, signal: &Signal| {
        !signal.evidence.is_empty()
            && sentence
                .to_lowercase()
                .contains(&signal.evidence.to_lowercase())
    };
    let by_intent = intent.and_then(|code| {
        candidates.iter().find(|(s, signals)| {
            signals
                .iter()
                .any(|signal| signal.code == code && holds(s, signal))
        })
    });
    let feeling = |s: &str, signals: &[Signal]| {
        signals
            .iter()
            .any(|signal| NOT_THE_PROBLEM.contains(&signal.code) && holds(s, signal))
    };
    let plain = || {
        candidates
            .iter()
            .filter(|(s, signals)| !feeling(s, signals))
    };
    by_intent
        .or_else(|| plain().find(|(s, _)| NEED.is_match(s)))
        .or_else(|| plain().find(|(s, _)| s.split_whitespace().count() >= 4))
        .or_else(|| candidates.first())
        .map(|(s, _)| clip(s))
}

/// What the customer needs or what went wrong, in the words people use for it: "I need",
/// "I can't", "my card was", "how do I", "doesn't work", "where is".
// The pattern is a constant of this crate, exercised by its tests.
#[allow(clippy::expect_used)]
static NEED: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(
        r"(?ix)\b(?:
            i\s+(?:need|want|would\s+like|'d\s+like|am\s+trying|'m\s+trying|tried|can\s?not|can't|couldn't|could\s+not|am\s+unable|'m\s+unable|have\s+(?:a|an)\s+(?:problem|issue|question)|got|received|was\s+charged|ordered|bought|paid|lost|forgot|haven't|have\s+not|didn't|did\s+not|never|wish)
          | i'm\s+(?:unable|trying|having|looking|missing)
          | how\s+(?:do|can|would|should|long)\s
          | where\s+(?:is|are|can)\s
          | why\s+(?:is|was|did|has|have|am|can't|won't|doesn't)\s
          | is\s+there\s+(?:a|any)\s+way
          | is\s+it\s+possible
          | (?:can|could|may)\s+i\s
          | help\s+me
          | (?:does|do|did|is|was|will|would|can|has|have|are|were)(?:n't|\s+not)\s
          | my\s+\w+(?:\s+\w+)?\s+(?:is|was|has|have|hasn't|isn't|wasn't|won't|doesn't|didn't|never|keeps|got|came|arrived)\b
        )",
    )
    .expect("built-in pattern compiles")
});

/// A greeting at the start of a sentence ("Hi!", "Hello there,", "Good morning").
#[allow(clippy::expect_used)]
static GREETING: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:hi|hello|hey|hiya|greetings|good\s+(?:morning|afternoon|evening|day))(?:\s+there)?\b[\s,!.:;-]*")
        .expect("built-in pattern compiles")
});

/// `sentence` without a greeting in front.
fn strip_greeting(sentence: &str) -> &str {
    GREETING
        .find(sentence)
        .map_or(sentence, |m| &sentence[m.end()..])
        .trim()
}

/// 5-10 short lines for the agent (fewer when the conversation holds less): the problem, what
/// the customer wants, what the assistant tried and how the customer took it, the facts found
/// (orders, amounts, emails), and the customer's last message when it says something else.
fn summary(
    input: &BriefInput<'_>,
    problem: Option<&str>,
    wants: Option<&str>,
    attempts: &[AttemptedSolution],
    entities: &[baton_domain::Entity],
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(p) = problem {
        lines.push(format!("Problem: {p}"));
    }
    if let Some(w) = wants.filter(|w| problem.is_none_or(|p| !p.contains(w))) {
        lines.push(format!("Wants: {w}"));
    }
    // The latest attempts, oldest first, leaving room for the facts and the last message.
    let room = MAX_SUMMARY_LINES.saturating_sub(lines.len() + 2);
    for a in &attempts[attempts.len().saturating_sub(room)..] {
        let reply = input
            .turns
            .iter()
            .skip(a.turn + 1)
            .find(|t| t.role == Role::Customer)
            .map(|t| first_sentence(&t.text));
        lines.push(match (a.rejected, reply) {
            (true, Some(r)) => format!("Tried: {} Customer: \"{r}\"", a.summary),
            (true, None) => format!("Tried: {} (rejected)", a.summary),
            _ => format!("Tried: {}", a.summary),
        });
    }
    if !entities.is_empty() {
        let facts: Vec<String> = entities
            .iter()
            .take(6)
            .map(|e| {
                format!(
                    "{} {}",
                    entity_label(e),
                    e.value.as_deref().unwrap_or(&e.text)
                )
            })
            .collect();
        lines.push(format!("Facts: {}", facts.join("; ")));
    }
    if let Some(t) = input.turns.last().filter(|t| t.role == Role::Customer) {
        let last = clip(&t.text);
        if problem.is_none_or(|p| !last.contains(p)) && !last.is_empty() {
            lines.push(format!("Last message: {last}"));
        }
    }
    lines.truncate(MAX_SUMMARY_LINES);
    lines
}

/// The kind of an entity in words ("order id").
fn entity_label(e: &baton_domain::Entity) -> String {
    serde_json::to_value(e.kind)
        .ok()
        .and_then(|v| v.as_str().map(|k| k.replace('_', " ")))
        .unwrap_or_default()
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

/// What one sentence of an assistant's turn does: a coarse dialogue act, enough to tell an
/// attempt at the problem from the talk around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// A greeting, thanks, apology or acknowledgement: "Hi!", "Thanks so much!", "ok".
    Pleasantry,
    /// Asks the customer something, or asks for their details ("may I have your order ID?",
    /// "I'd just need your phone number").
    Question,
    /// Holds the conversation: "one moment", "let me check that for you".
    Holding,
    /// Ends it: "anything else I can help with?", "have a great day".
    Closing,
    /// Answers, explains, states a policy, or takes or offers an action.
    Content,
}

/// Opening words of a pleasantry ("I'm sorry!", "Thanks for waiting.").
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
    "welcome",
    "i understand",
    "i see",
    "great",
    "perfect",
    "sure",
    "ok",
    "okay",
    "alright",
    "got it",
    "of course",
    "no problem",
    "certainly",
    "absolutely",
    "glad",
    "happy to help",
];

/// Phrases of the acts other than content, each matched in the lowercased sentence.
#[allow(clippy::expect_used)]
static ACTS: std::sync::LazyLock<[(Act, Regex); 5]> = std::sync::LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("built-in pattern compiles");
    [
        (
            Act::Closing,
            re(
                r"\banything else\b|\bsomething else i can\b|\b(?:a|my|our) pleasure\b|\b(?:happy|glad) to (?:help|assist)\b|\bhave an? (?:great|good|nice|wonderful|lovely) (?:day|evening|night|weekend)\b|\bthanks? (?:you )?for (?:contacting|reaching out|chatting|your patience)|\bglad (?:i|we) could help\b|^(?:good)?bye\b",
            ),
        ),
        (
            Act::Pleasantry,
            re(
                r"\bhow (?:can|may|might) (?:i|we) (?:help|assist)\b|\bwhat can (?:i|we) do for you\b|^welcome to\b|\bhow are you\b|\b(?:sorry|apologi[sz]e) for (?:the |any |my )?(?:doubt|confusion|wait|waiting|delay|inconvenience|misunderstanding|trouble)\b",
            ),
        ),
        (
            Act::Holding,
            re(
                r"^(?:ok,? |okay,? |sure,? |alright,? )?(?:let me (?:check|look|see|verify|pull|find|take a look|confirm|search)|(?:i|we) will (?:answer|help you with|look into|check) (?:your question|that|this|it)\b|one (?:moment|second|sec|minute)|just a (?:moment|second|minute)|give me (?:a|one) (?:moment|second|minute)|please (?:wait|hold|bear with)|bear with me|(?:i'm|i am) (?:checking|looking)|i'll (?:check|look into it|take a look))\b",
            ),
        ),
        (
            Act::Question,
            // Asking for the customer's details: "(you would) give me the order ID", "provide us
            // your email". Only with the customer as the giver, so that "I've sent a label to
            // your email" stays an action.
            re(
                r"\b(?:give|provide|send|share|tell|confirm|verify)\s+(?:me|us)\b.*\b(?:order (?:id|number)|e-?mail|user ?name|full name|phone(?: number)?|(?:home |shipping |billing )?address|account (?:id|number)|zip(?: code)?|post ?code|date of birth|membership|pin|card number|last (?:four|4) digits)\b",
            ),
        ),
        (
            Act::Question,
            re(
                r"^(?:[a-z]+, )?(?:(?:may|can|could) i (?:have|get|ask|know|confirm|take)|(?:can|could|would) you (?:please )?(?:provide|give|tell|confirm|send|share|enter|verify|spell|let me know)|please (?:provide|give|tell|confirm|send|share|enter|verify|let me know)|(?:i'd|i would|i will|i'll|i) (?:just |also )?need (?:your|you to|to (?:have|get|know|verify|confirm) your)|what(?:'s| is) your\b)",
            ),
        ),
    ]
});

/// Offers of an action put as a question ("Would you like me to send a new label?"): content.
#[allow(clippy::expect_used)]
static OFFER: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(r"^(?:[a-z]+, )?(?:would you like (?:me|us) to|shall (?:i|we)|should (?:i|we)|do you want (?:me|us) to|(?:i|we) can [a-z]+ .+ if you|would it help if)\b")
        .expect("built-in pattern compiles")
});

/// A question that lost its mark: "which city are you in.", "what time works for you".
#[allow(clippy::expect_used)]
static WH_QUESTION: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(r"^(?:which|what|where|when|who|how)(?: [a-z]+)? (?:is|are|was|were|do|does|did|would|will|can|should|works?)\b")
        .expect("built-in pattern compiles")
});

/// The act of one sentence of an assistant's turn.
fn act(sentence: &str) -> Act {
    let lower = sentence.trim().to_lowercase();
    let words = lower.split_whitespace().count();
    if let Some((act, _)) = ACTS.iter().find(|(_, re)| re.is_match(&lower)) {
        return *act;
    }
    if OFFER.is_match(&lower) && words >= 5 {
        return Act::Content;
    }
    if lower.ends_with('?') || WH_QUESTION.is_match(&lower) {
        return Act::Question;
    }
    let pleasantry = PLEASANTRIES.iter().any(|p| {
        lower.starts_with(p) && !lower[p.len()..].starts_with(|c: char| c.is_alphanumeric())
    });
    if words < 3 || (pleasantry && words <= 6) {
        return Act::Pleasantry;
    }
    Act::Content
}

/// A leading "ok, " / "sure, " / "thanks, " in front of what the sentence says.
#[allow(clippy::expect_used)]
static DISCOURSE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:ok|okay|sure|alright|all right|great|thanks|thank you|so|well|right)[,!.]\s+",
    )
    .expect("built-in pattern compiles")
});

/// The gist of an assistant turn that attempts the problem: its first sentence that answers,
/// explains or acts ([`Act::Content`]), without a leading "ok, "; `None` for a turn that only
/// greets, asks, holds or closes.
fn gist(text: &str) -> Option<String> {
    let sentence = sentences(text)
        .into_iter()
        .find(|s| act(s) == Act::Content)?;
    let rest = DISCOURSE
        .find(sentence)
        .map_or(sentence, |m| &sentence[m.end()..]);
    let mut chars = rest.chars();
    let rest: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    Some(clip(&rest))
}

/// The step the conversation was on: the last question or offer of the assistant's last turn
/// that asks something of the customer (not a greeting or a closing).
fn last_question(text: &str) -> Option<String> {
    sentences(text)
        .into_iter()
        .rev()
        .find(|s| s.ends_with('?') && matches!(act(s), Act::Question | Act::Content))
        .map(clip)
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

/// The agent's first message: a greeting by name, that the conversation was read (with the
/// problem in the customer's terms, turned to "you", when it is a statement; else its topic),
/// that rejected suggestions will not come again, and that the agent takes it from here. It
/// never quotes the customer's feelings back: the problem line holds none.
fn warm_introduction(
    name: Option<&str>,
    problem: Option<&str>,
    topic: Option<ReasonCode>,
    attempts: &[AttemptedSolution],
) -> String {
    let hello = match name {
        Some(n) if !n.trim().is_empty() => format!("Hi {}, thanks for waiting.", n.trim()),
        _ => "Hi, thanks for waiting.".to_owned(),
    };
    let read = " I've read your conversation with our assistant";
    let context = match (problem.and_then(second_person), topic) {
        (Some(p), _) => format!("{read}, and I can see that {p}."),
        (None, Some(code)) => format!("{read} about {}.", code.label()),
        (None, None) => format!("{read}, so you won't need to repeat anything."),
    };
    let tried = if attempts.iter().any(|a| a.rejected) {
        " I can also see the suggestions so far didn't solve it, so I won't repeat them."
    } else {
        ""
    };
    format!("{hello}{context}{tried} I'll take it from here.")
}

/// Opening words of a clause that asks rather than states.
const ASKING: &[&str] = &[
    "can ", "could ", "would ", "will ", "please", "how ", "what ", "when ", "where ", "why ",
    "is ", "are ", "do ", "does ", "did ",
];

/// A statement of the customer's, addressed back to them ("my card was charged twice" ->
/// "your card was charged twice"), up to the first clause that asks ("my parcel hasn't
/// arrived, how long does shipping take?" -> "your parcel hasn't arrived"); `None` when it
/// opens with a question, which reads badly turned around.
fn second_person(problem: &str) -> Option<String> {
    let statement = problem
        .split([',', ';'])
        .take_while(|clause| {
            let c = clause.trim().to_lowercase();
            !c.contains('?') && !ASKING.iter().any(|a| c.starts_with(a))
        })
        .collect::<Vec<_>>()
        .join(",");
    let statement = statement.trim().trim_end_matches(['.', '!']);
    if statement.split_whitespace().count() < 3 {
        return None;
    }
    let mut words: Vec<String> = Vec::new();
    let mut after_i = false;
    for (i, w) in statement.split_whitespace().enumerate() {
        let lower = w.to_lowercase();
        let swapped = match (lower.as_str(), after_i) {
            ("i", _) => "you",
            ("i'm", _) => "you're",
            ("i've", _) => "you've",
            ("i'd", _) => "you'd",
            ("i'll", _) => "you'll",
            ("am", _) | ("was", true) => {
                if lower == "am" {
                    "are"
                } else {
                    "were"
                }
            }
            ("wasn't", true) => "weren't",
            ("my", _) => "your",
            ("me", _) => "you",
            ("mine", _) => "yours",
            ("myself", _) => "yourself",
            _ if i == 0 => lower.as_str(),
            _ => w,
        };
        after_i = lower == "i";
        words.push(swapped.to_owned());
    }
    Some(words.join(" "))
}

/// The JSON Schema of the brief (draft 2020-12), published as `schemas/brief.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Brief)).unwrap_or_default()
}

/// The brief as pretty-printed JSON.
pub fn render_json(brief: &Brief) -> String {
    serde_json::to_string_pretty(brief).unwrap_or_default()
}

/// Writes a `## title` section with one bullet per line, or nothing when there are none.
fn section(md: &mut String, title: &str, lines: impl Iterator<Item = String>) {
    let mut lines = lines.peekable();
    if lines.peek().is_none() {
        return;
    }
    let _ = writeln!(md, "## {title}\n");
    for line in lines {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md);
}

/// The brief as Markdown, for agents, tickets and chat tools; sections with nothing in them
/// are left out.
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
    section(
        &mut md,
        "Why",
        brief.reasons.iter().map(|r| {
            format!(
                "`{}`: {} (\"{}\", {:.2})",
                r.code, r.text, r.evidence, r.score
            )
        }),
    );
    section(&mut md, "Summary", brief.summary.iter().cloned());
    section(
        &mut md,
        "Details",
        brief.entities.iter().map(|e| {
            format!(
                "{}: {}",
                entity_label(e),
                e.value.as_deref().unwrap_or(&e.text)
            )
        }),
    );
    section(
        &mut md,
        "Already tried",
        brief.attempted_solutions.iter().map(|a| {
            let kb = if a.kb_articles.is_empty() {
                String::new()
            } else {
                format!(" [{}]", a.kb_articles.join(", "))
            };
            let mark = if a.rejected { " (rejected)" } else { "" };
            format!("{}{kb}{mark}", a.summary)
        }),
    );
    let c = &brief.customer;
    section(
        &mut md,
        "Customer",
        [
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
        ]
        .into_iter()
        .filter_map(|(label, value)| value.map(|v| format!("{label}: {v}"))),
    );
    if let Some(step) = &brief.step_in_progress {
        let _ = writeln!(md, "**Step in progress:** {step}\n");
    }
    let _ = writeln!(md, "## Next step\n\n{}\n", brief.recommended_next_step);
    let _ = writeln!(
        md,
        "## Suggested first message\n\n> {}\n",
        brief.warm_introduction
    );
    if !brief.recent_turns.is_empty() {
        let _ = writeln!(md, "## Recent turns\n");
    }
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
