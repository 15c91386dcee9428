//! Throughput of the whole per-turn pipeline (detect, decide, transition, route, brief) on the
//! real conversations shipped in `examples/conversations.jsonl`.
//!
//! `cargo bench -p baton-engine` reports the time per conversation replay and per single
//! first turn; criterion's throughput line gives turns per second. The `assess` group measures
//! what issue 3 targets: every detector plus the policy decision (no brief, no routing) on the
//! shipped Bitext utterances (all under 300 bytes), one core, and its parts.
// criterion's macros define undocumented items.
#![allow(missing_docs)]

use baton_domain::{Conversation, ConversationId, Customer, Role, Turn};
use baton_engine::Engine;
use baton_policy::Policy;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// The allocator the `baton` binary ships with (crates/baton/src/main.rs), so the figures are
/// the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn conversations() -> Vec<Conversation> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/conversations.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("examples/conversations.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("conversation"))
        .collect()
}

fn utterances() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/bitext_utterances.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("examples/bitext_utterances.jsonl")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("utterance");
            v["text"].as_str().expect("text").to_owned()
        })
        .collect()
}

fn assess(c: &mut Criterion) {
    let engine = Engine::new(Policy::builtin().expect("built-in policy"));
    let texts = utterances();
    assert!(texts.iter().all(|t| t.len() <= 300));
    let turns: Vec<Turn> = texts
        .iter()
        .map(|t| Turn::new(Role::Customer, t.clone()).expect("turn"))
        .collect();
    let id = ConversationId::parse("bench").expect("id");
    let mut group = c.benchmark_group("assess");
    group.throughput(Throughput::Elements(turns.len() as u64));
    group.bench_function("detectors + decision, first customer turns", |b| {
        b.iter(|| {
            for t in &turns {
                let mut s = engine.start(id.clone(), Customer::default(), None);
                black_box(engine.assess(&mut s, t));
            }
        })
    });
    let detectors = engine.detectors();
    group.bench_function("VADER alone", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(detectors.vader(t));
            }
        })
    });
    group.bench_function("learned model inputs alone", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(detectors.features(17, t));
            }
        })
    });
    let facts: Vec<Vec<baton_domain::Signal>> = turns
        .iter()
        .map(|t| {
            let mut s = engine.start(id.clone(), Customer::default(), None);
            engine.assess(&mut s, t).0
        })
        .collect();
    let customer = Customer::default();
    group.bench_function("policy decision alone", |b| {
        b.iter(|| {
            for signals in &facts {
                black_box(
                    engine
                        .policy()
                        .decide(&baton_policy::Facts::first_turn(signals, &customer)),
                );
            }
        })
    });
    let known: Customer = serde_json::from_str(
        r#"{"id": "cust-9", "name": "Dana", "tier": "gold", "tenure_days": 400,
            "contacts_same_issue_30d": 1, "deal_value": 1200, "language": "en",
            "plan": "pro", "region": "eu-west", "seats": 12}"#,
    )
    .expect("customer");
    group.bench_function("policy decision alone, a known customer", |b| {
        b.iter(|| {
            for signals in &facts {
                black_box(
                    engine
                        .policy()
                        .decide(&baton_policy::Facts::first_turn(signals, &known)),
                );
            }
        })
    });
    let kept = engine.policy().customer_value(&known);
    group.bench_function(
        "policy decision alone, a known customer kept per conversation",
        |b| {
            b.iter(|| {
                for signals in &facts {
                    black_box(engine.policy().decide(&baton_policy::Facts {
                        customer_value: Some(&kept),
                        ..baton_policy::Facts::first_turn(signals, &known)
                    }));
                }
            })
        },
    );
    group.finish();
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(Policy::builtin().expect("built-in policy"));
    let convs = conversations();
    let turns: usize = convs.iter().map(|c| c.turns.len()).sum();

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(turns as u64));
    group.bench_function("replay shipped conversations", |b| {
        b.iter(|| {
            for conv in &convs {
                let mut s = engine.start(conv.id.clone(), conv.customer.clone(), None);
                for t in &conv.turns {
                    black_box(engine.process(&mut s, t.clone()));
                }
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    let id = ConversationId::parse("bench").expect("id");
    let turn = Turn::new(
        Role::Customer,
        "I was charged twice for order 8812, I want a refund",
    )
    .expect("turn");
    group.bench_function("one escalating first turn, brief included", |b| {
        b.iter(|| {
            let mut s = engine.start(id.clone(), Customer::default(), None);
            black_box(engine.process(&mut s, turn.clone()))
        })
    });
    let quiet = Turn::new(Role::Customer, "what time do you open on saturday").expect("turn");
    group.bench_function("one routine first turn", |b| {
        b.iter(|| {
            let mut s = engine.start(id.clone(), Customer::default(), None);
            black_box(engine.process(&mut s, quiet.clone()))
        })
    });
    group.finish();
}

criterion_group!(benches, assess, bench);
criterion_main!(benches);
