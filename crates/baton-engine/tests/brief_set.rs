//! The brief against a hand-labelled set: `tests/fixtures/brief_set.jsonl` gives, for 45 real
//! conversations, the assistant turns that attempt the customer's problem and the words a
//! problem line must hold. It was labelled by hand from the conversations alone, before the
//! brief's rules for attempts and the problem line were written, and without seeing their
//! output; its header line says how.
//!
//! A conversation matches when the brief's attempted solutions are exactly the labelled
//! attempts (turns the labeller marked `borderline` count either way) and its problem line
//! holds one of the labelled terms. Each conversation is briefed as if handed off after its
//! last turn.
//!
//! `the_shipped_conversations_are_briefed_as_labelled` runs on the project's own examples.
//! `every_labelled_conversation_is_briefed_as_labelled` adds 15 Schema-Guided Dialogue
//! conversations, rebuilt from `../shared/datasets` (set `BATON_DATASETS`), which a user's
//! checkout does not have: it is ignored by default and CI runs it.

use baton_domain::{Brief, Conversation, ConversationId, Role, Turn};
use baton_engine::Engine;
use baton_policy::Policy;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};

/// Share of the shipped conversations that must match: the target, 90%. The rules were
/// revised once after a first reading of these (23 of 30 matched; 29 of 30 after).
const SHIPPED_AT_LEAST: f64 = 0.9;
/// Share of all 45 that must match: a floor under the figure measured on first reading the
/// 15 Schema-Guided Dialogue conversations (37 of 45, 82%; 8 of those 15), below the 90%
/// target. Most misses are problem lines in dialogues whose need is told over several turns
/// ("I want it in Rohnert Park"); see docs/measurements.md.
const ALL_AT_LEAST: f64 = 0.8;

#[derive(Deserialize)]
struct Label {
    source: String,
    id: String,
    attempted: Vec<usize>,
    #[serde(default)]
    borderline: Vec<usize>,
    problem_terms: Vec<String>,
}

fn labels() -> Vec<Label> {
    let text = include_str!("fixtures/brief_set.jsonl");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("label line"))
        .collect()
}

fn repo_file(path: &str) -> String {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn examples(path: &str) -> HashMap<String, Conversation> {
    repo_file(path)
        .lines()
        .map(|l| serde_json::from_str::<Conversation>(l).expect("conversation"))
        .map(|c| (c.id.to_string(), c))
        .collect()
}

/// The SGD dialogues, rebuilt as the fixture's header says: from turn 0 in steps of 2 while a
/// row exists, the system turn before each user turn (after the first), then the user turn.
fn sgd(datasets: &str) -> HashMap<String, Conversation> {
    let path = format!("{datasets}/sgd_user_acts/sgd_user_turns.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut rows: HashMap<String, HashMap<u64, serde_json::Value>> = HashMap::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("sgd row");
        let key = format!(
            "{}/{}",
            row["split"].as_str().unwrap_or_default(),
            row["dialogue_id"].as_str().unwrap_or_default()
        );
        let turn = row["turn"].as_u64().unwrap_or(u64::MAX);
        rows.entry(key).or_default().insert(turn, row);
    }
    rows.into_iter()
        .map(|(key, by_turn)| {
            let mut turns = Vec::new();
            let mut t = 0;
            while let Some(row) = by_turn.get(&t) {
                if t > 0 {
                    turns.push(turn(Role::Ai, &row["prev_system"]));
                }
                turns.push(turn(Role::Customer, &row["user"]));
                t += 2;
            }
            let conversation = Conversation {
                id: ConversationId::parse(key.clone()).expect("id"),
                customer: Default::default(),
                channel: None,
                turns,
            };
            (key, conversation)
        })
        .collect()
}

fn turn(role: Role, text: &serde_json::Value) -> Turn {
    Turn::new(role, text.as_str().unwrap_or_default().to_owned()).expect("turn")
}

/// The brief of `c` handed off after its last turn.
fn brief_of(engine: &Engine, c: &Conversation) -> Brief {
    let mut session = engine.start(c.id.clone(), c.customer.clone(), c.channel.clone());
    let mut decision = None;
    for t in &c.turns {
        decision = Some(engine.process(&mut session, t.clone()).decision);
    }
    engine.brief(&session, &decision.expect("a conversation has turns"))
}

struct Score {
    matched: usize,
    total: usize,
    /// Turns listed as attempts that the labeller marked as none.
    false_attempts: Vec<String>,
    /// Those of them that greet or ask ("Hi!", "may I have your order ID?").
    greetings_or_questions: usize,
    misses: Vec<String>,
}

fn score(sources: &HashMap<&str, HashMap<String, Conversation>>) -> Score {
    let engine = Engine::new(Policy::builtin().expect("built-in policy"));
    let mut seen = BTreeSet::new();
    let mut s = Score {
        matched: 0,
        total: 0,
        false_attempts: Vec::new(),
        greetings_or_questions: 0,
        misses: Vec::new(),
    };
    for label in labels() {
        let Some(conversations) = sources.get(label.source.as_str()) else {
            continue;
        };
        // The ABCD chats are in both example files: count each conversation once.
        if !seen.insert(label.id.clone()) {
            continue;
        }
        let c = conversations
            .get(&label.id)
            .unwrap_or_else(|| panic!("{} is not in {}", label.id, label.source));
        let brief = brief_of(&engine, c);
        let found: BTreeSet<usize> = brief
            .attempted_solutions
            .iter()
            .map(|a| a.turn)
            .filter(|t| !label.borderline.contains(t))
            .collect();
        let expected: BTreeSet<usize> = label
            .attempted
            .iter()
            .copied()
            .filter(|t| !label.borderline.contains(t))
            .collect();
        for t in found.difference(&expected) {
            let text = &c.turns[*t].text;
            let lower = text.trim().to_lowercase();
            if text.contains('?') || ["hi", "hello", "hey"].iter().any(|g| lower.starts_with(g)) {
                s.greetings_or_questions += 1;
            }
            s.false_attempts
                .push(format!("{} turn {t}: {text:?}", label.id));
        }
        let problem = brief
            .summary
            .iter()
            .find_map(|l| l.strip_prefix("Problem: "))
            .unwrap_or_default()
            .to_lowercase();
        let problem_ok = label.problem_terms.iter().any(|t| problem.contains(t));
        s.total += 1;
        if found == expected && problem_ok {
            s.matched += 1;
        } else {
            s.misses.push(format!(
                "{}: attempts {found:?} (labelled {expected:?}), problem {problem:?} (terms {:?})",
                label.id, label.problem_terms
            ));
        }
    }
    s
}

fn check(s: &Score, at_least: usize, share: f64) {
    for m in &s.misses {
        eprintln!("miss: {m}");
    }
    eprintln!(
        "brief set: {} of {} conversations match ({:.0}%)",
        s.matched,
        s.total,
        100.0 * s.matched as f64 / s.total.max(1) as f64
    );
    for f in &s.false_attempts {
        eprintln!("not an attempt: {f}");
    }
    assert!(
        s.total >= at_least,
        "only {} labelled conversations",
        s.total
    );
    assert_eq!(
        s.greetings_or_questions, 0,
        "greetings or questions listed as attempts: {:?}",
        s.false_attempts
    );
    assert!(
        s.matched as f64 >= share * s.total as f64,
        "{} of {} match",
        s.matched,
        s.total
    );
}

#[test]
fn the_shipped_conversations_are_briefed_as_labelled() {
    let sources = HashMap::from([
        (
            "examples/conversations.jsonl",
            examples("examples/conversations.jsonl"),
        ),
        (
            "examples/abcd_conversations.jsonl",
            examples("examples/abcd_conversations.jsonl"),
        ),
    ]);
    check(&score(&sources), 30, SHIPPED_AT_LEAST);
}

#[test]
#[ignore = "reads ../shared/datasets; CI runs it"]
fn every_labelled_conversation_is_briefed_as_labelled() {
    let datasets = std::env::var("BATON_DATASETS")
        .expect("set BATON_DATASETS to the shared datasets folder (../shared/datasets)");
    let sources = HashMap::from([
        (
            "examples/conversations.jsonl",
            examples("examples/conversations.jsonl"),
        ),
        (
            "examples/abcd_conversations.jsonl",
            examples("examples/abcd_conversations.jsonl"),
        ),
        ("shared:sgd_user_acts/sgd_user_turns.jsonl", sgd(&datasets)),
    ]);
    check(&score(&sources), 45, ALL_AT_LEAST);
}
