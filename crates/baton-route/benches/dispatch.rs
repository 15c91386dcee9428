//! One assignment decision at scale: 5,000 agents (all busy) and 50,000 waiting conversations
//! over 20 queues. An iteration is what happens when an agent finishes: the conversation
//! leaves, the agent picks the best waiting conversation across its queues and is given it,
//! and a new customer arrives so the backlog stays at 50,000.
//!
//! Before criterion runs, every decision of a 20,000-iteration warm run is timed on its own
//! and the 50th, 99th and 99.9th percentiles are printed (the target is p99 <= 100 us).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use baton_domain::{Agent, AgentId, AgentStatus, ConversationId, Skill};
use baton_route::{Dispatcher, NewConversation, QueueConfig, RoutingConfig, SkillRequirement};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Instant;

const AGENTS: usize = 5_000;
const WAITING: usize = 50_000;
const QUEUES: usize = 20;

struct World {
    d: Dispatcher,
    assigned: std::collections::VecDeque<ConversationId>,
    next: usize,
    now: i64,
}

fn conversation(n: usize, now: i64) -> NewConversation {
    NewConversation {
        id: ConversationId::parse(format!("c{n}")).expect("id"),
        queue: format!("q{}", n % QUEUES),
        priority: [0, 0, 0, 10, 30][n % 5],
        language: None,
        owner: None,
        queued_at: now,
        why: "bench".into(),
    }
}

fn world() -> World {
    let queues = (0..QUEUES)
        .map(|q| QueueConfig {
            skills: vec![SkillRequirement::from(format!("s{q}").as_str())],
            offer_timeout_seconds: None,
            ..QueueConfig::named(format!("q{q}"))
        })
        .collect();
    let mut d = Dispatcher::new(queues, RoutingConfig::default());
    let mut now = 0;
    for a in 0..AGENTS {
        // Three skills each, so every queue has 750 agents and agents span queues.
        let skills = (0..3)
            .map(|k| Skill::new(format!("s{}", (a + k * 7) % QUEUES), 3))
            .collect();
        let agent = Agent {
            id: AgentId::parse(format!("a{a}")).expect("id"),
            name: format!("A{a}"),
            skills,
            languages: Vec::new(),
            capacity: 2,
            status: AgentStatus::Online,
        };
        d.upsert_agent(agent, now).expect("agent");
    }
    let mut assigned = std::collections::VecDeque::new();
    let mut next = 0;
    // Fill every agent, then build the backlog.
    while d.len() < AGENTS * 2 + WAITING {
        now += 10;
        d.enqueue(conversation(next, now), now).expect("enqueue");
        next += 1;
    }
    for e in d.drain_events() {
        if let baton_route::RouteEvent::Assigned { conversation, .. } = e {
            assigned.push_back(conversation);
        }
    }
    World {
        d,
        assigned,
        next,
        now,
    }
}

impl World {
    /// The oldest assignment finishes; its agent takes the next conversation; a customer
    /// arrives.
    fn step(&mut self) {
        self.now += 10;
        let done = self.assigned.pop_front().expect("an assigned conversation");
        self.d
            .finish(done.as_str(), true, self.now)
            .expect("finish");
        self.d
            .enqueue(conversation(self.next, self.now), self.now)
            .expect("enqueue");
        self.next += 1;
        for e in self.d.drain_events() {
            if let baton_route::RouteEvent::Assigned { conversation, .. } = e {
                self.assigned.push_back(conversation);
            }
        }
    }
}

fn percentiles(w: &mut World) {
    let mut times: Vec<f64> = (0..20_000)
        .map(|_| {
            let started = Instant::now();
            w.step();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "assignment decision, {AGENTS} agents, {WAITING} waiting: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        at(0.5),
        at(0.99),
        at(0.999),
        times[times.len() - 1]
    );
}

fn bench(c: &mut Criterion) {
    let mut w = world();
    assert_eq!(w.d.waiting_estimates().len(), WAITING);
    percentiles(&mut w);
    c.bench_function(
        "agent frees, takes the best of 50k waiting, one arrives",
        |b| {
            b.iter(|| {
                w.step();
                black_box(w.d.len())
            })
        },
    );
    c.bench_function("position and wait estimate of the newest arrival", |b| {
        b.iter(|| {
            let id = format!("c{}", w.next - 1);
            black_box(w.d.estimate(&id))
        })
    });
    c.bench_function("positions and estimates of all 50k waiting", |b| {
        b.iter(|| black_box(w.d.waiting_estimates().len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
