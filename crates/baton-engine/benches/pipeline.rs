//! Throughput of the whole per-turn pipeline (detect, decide, transition, route, brief) on the
//! real conversations shipped in `examples/conversations.jsonl`.
//!
//! `cargo bench -p baton-engine` reports the time per conversation replay and per single
//! first turn; criterion's throughput line gives turns per second.
// criterion's macros define undocumented items.
#![allow(missing_docs)]

use baton_domain::{Conversation, ConversationId, Customer, Role, Turn};
use baton_engine::Engine;
use baton_policy::Policy;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

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

criterion_group!(benches, bench);
criterion_main!(benches);
