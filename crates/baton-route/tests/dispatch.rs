//! The dispatcher's behaviour, call by call, and its invariants under random operations.

use baton_domain::{Agent, AgentId, AgentStatus, ConversationId, Skill};
use baton_route::dispatch::RouteEvent;
use baton_route::{
    Dispatcher, NewConversation, QueueConfig, RoutingConfig, SkillRequirement, StepConfig,
    Strategy as Pick,
};
use proptest::prelude::*;

const S: i64 = 1000;

fn agent(id: &str, skills: &[(&str, u8)], capacity: u32) -> Agent {
    Agent {
        id: AgentId::parse(id).expect("id"),
        name: id.to_uppercase(),
        skills: skills.iter().map(|(n, l)| Skill::new(*n, *l)).collect(),
        languages: Vec::new(),
        capacity,
        status: AgentStatus::Online,
    }
}

fn conversation(id: &str, queue: &str, priority: i64, at: i64) -> NewConversation {
    NewConversation {
        id: ConversationId::parse(id).expect("id"),
        queue: queue.into(),
        priority,
        language: None,
        owner: None,
        queued_at: at,
        why: "test".into(),
    }
}

fn queue(name: &str, skills: &[&str]) -> QueueConfig {
    QueueConfig {
        skills: skills.iter().map(|s| SkillRequirement::from(*s)).collect(),
        offer_timeout_seconds: None,
        ..QueueConfig::named(name)
    }
}

fn assigned(events: &[RouteEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            RouteEvent::Assigned {
                conversation,
                agent,
                ..
            } => Some((conversation.to_string(), agent.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_vip_overtakes_standard_conversations_and_equal_priority_is_first_in_first_out() {
    let mut d = Dispatcher::new(vec![queue("support", &[])], RoutingConfig::default());
    let mut a = agent("a1", &[], 1);
    a.status = AgentStatus::Away;
    d.upsert_agent(a.clone(), 0).expect("agent");
    d.enqueue(conversation("std-1", "support", 0, 0), 0)
        .expect("enqueue");
    d.enqueue(conversation("std-2", "support", 0, 10 * S), 10 * S)
        .expect("enqueue");
    d.enqueue(conversation("vip", "support", 30, 20 * S), 20 * S)
        .expect("enqueue");
    assert_eq!(d.position("vip"), Some(1));
    assert_eq!(d.position("std-1"), Some(2));
    assert_eq!(d.position("std-2"), Some(3));
    d.set_presence("a1", AgentStatus::Online, 30 * S)
        .expect("online");
    assert_eq!(
        assigned(&d.drain_events()),
        vec![("vip".into(), "a1".into())]
    );
    d.finish("vip", true, 90 * S).expect("finish");
    assert_eq!(
        assigned(&d.drain_events()),
        vec![("std-1".into(), "a1".into())]
    );
    d.audit().expect("invariants");
}

#[test]
fn aging_lets_a_long_wait_overtake_a_newer_higher_priority() {
    // One point a minute: a standard conversation that has waited 40 minutes (effective 40)
    // goes before a VIP (30) who just arrived.
    let mut d = Dispatcher::new(vec![queue("support", &[])], RoutingConfig::default());
    let mut a = agent("a1", &[], 1);
    a.status = AgentStatus::Away;
    d.upsert_agent(a, 0).expect("agent");
    d.enqueue(conversation("old", "support", 0, 0), 0)
        .expect("enqueue");
    d.enqueue(conversation("vip", "support", 30, 40 * 60 * S), 40 * 60 * S)
        .expect("enqueue");
    assert_eq!(d.position("old"), Some(1));
    d.set_presence("a1", AgentStatus::Online, 40 * 60 * S)
        .expect("online");
    assert_eq!(assigned(&d.drain_events())[0].0, "old");
}

#[test]
fn an_unaccepted_offer_moves_to_the_next_agent_and_the_first_goes_away() {
    let q = QueueConfig {
        offer_timeout_seconds: Some(30),
        ..queue("support", &[])
    };
    let mut d = Dispatcher::new(vec![q], RoutingConfig::default());
    d.upsert_agent(agent("a1", &[], 1), 0).expect("agent");
    d.upsert_agent(agent("a2", &[], 1), 5 * S).expect("agent");
    d.enqueue(conversation("c1", "support", 0, 10 * S), 10 * S)
        .expect("enqueue");
    // a1 has been idle longest: offered first.
    let events = d.drain_events();
    assert!(
        matches!(&events[0], RouteEvent::Offered { agent, expires_at, .. } if agent == "a1" && *expires_at == 40 * S)
    );
    assert_eq!(d.holder("c1"), Some(("a1", false)));
    assert_eq!(d.next_timer(), Some(40 * S));
    d.advance(39 * S);
    assert!(d.drain_events().is_empty());
    d.advance(40 * S);
    let events = d.drain_events();
    assert!(events
        .iter()
        .any(|e| matches!(e, RouteEvent::OfferExpired { agent, .. } if agent == "a1")));
    assert!(events
        .iter()
        .any(|e| matches!(e, RouteEvent::AgentAway { agent, .. } if agent == "a1")));
    assert!(events
        .iter()
        .any(|e| matches!(e, RouteEvent::Offered { agent, .. } if agent == "a2")));
    d.accept("c1", "a2", 45 * S).expect("accept");
    assert_eq!(d.holder("c1"), Some(("a2", true)));
    // Accepting someone else's offer is refused.
    assert!(d.accept("c1", "a1", 46 * S).is_err());
    d.audit().expect("invariants");
}

#[test]
fn a_declined_conversation_is_not_offered_to_that_agent_again() {
    let q = QueueConfig {
        offer_timeout_seconds: Some(30),
        ..queue("support", &[])
    };
    let mut d = Dispatcher::new(vec![q], RoutingConfig::default());
    d.upsert_agent(agent("a1", &[], 1), 0).expect("agent");
    d.enqueue(conversation("c1", "support", 0, S), S)
        .expect("enqueue");
    d.decline("c1", "a1", 2 * S).expect("decline");
    assert_eq!(d.holder("c1"), None);
    assert_eq!(d.position("c1"), Some(1));
    // A second conversation goes to a1, the first still waits for someone else.
    d.enqueue(conversation("c2", "support", 0, 3 * S), 3 * S)
        .expect("enqueue");
    assert_eq!(d.holder("c2"), Some(("a1", false)));
    d.upsert_agent(agent("a2", &[], 1), 4 * S).expect("agent");
    assert_eq!(d.holder("c1"), Some(("a2", false)));
    d.audit().expect("invariants");
}

#[test]
fn a_silent_agent_loses_the_conversation_and_it_keeps_its_place() {
    let q = QueueConfig {
        agent_silence_seconds: Some(120),
        ..queue("support", &[])
    };
    let mut d = Dispatcher::new(vec![q], RoutingConfig::default());
    d.upsert_agent(agent("a1", &[], 1), 0).expect("agent");
    d.enqueue(conversation("c1", "support", 0, 0), 0)
        .expect("enqueue");
    d.agent_replied("c1").expect("reply");
    // The agent answered; the customer writes at 100 s; silence from then on.
    d.customer_wrote("c1", 100 * S).expect("customer");
    d.advance(219 * S);
    assert_eq!(d.holder("c1"), Some(("a1", true)));
    d.advance(220 * S);
    let events = d.drain_events();
    assert!(events
        .iter()
        .any(|e| matches!(e, RouteEvent::Reclaimed { agent, .. } if agent == "a1")));
    assert_eq!(d.holder("c1"), None);
    d.enqueue(conversation("c2", "support", 0, 221 * S), 221 * S)
        .expect("enqueue");
    d.upsert_agent(agent("a2", &[], 1), 222 * S).expect("agent");
    // c1 joined first: it goes before c2.
    assert_eq!(d.holder("c1"), Some(("a2", true)));
    d.audit().expect("invariants");
}

#[test]
fn steps_relax_skills_then_overflow() {
    let billing = QueueConfig {
        steps: vec![
            StepConfig {
                after_seconds: 60,
                skills: Some(vec![SkillRequirement::from("billing")]),
                any_language: false,
                overflow: None,
            },
            StepConfig {
                after_seconds: 180,
                skills: None,
                any_language: false,
                overflow: Some("general".into()),
            },
        ],
        skills: vec![SkillRequirement::Level {
            name: "billing".into(),
            min_level: 4,
        }],
        ..queue("billing", &[])
    };
    let mut d = Dispatcher::new(
        vec![billing, queue("general", &["general"])],
        RoutingConfig::default(),
    );
    d.upsert_agent(agent("junior", &[("billing", 2)], 1), 0)
        .expect("agent");
    d.upsert_agent(agent("generalist", &[("general", 3)], 1), 0)
        .expect("agent");
    let mut senior = agent("senior", &[("billing", 5)], 1);
    senior.status = AgentStatus::Offline;
    d.upsert_agent(senior, 0).expect("agent");
    d.enqueue(conversation("c1", "billing", 0, 0), 0)
        .expect("enqueue");
    d.enqueue(conversation("c2", "billing", 0, 0), 0)
        .expect("enqueue");
    let why = d.explain("c1", S).expect("explain");
    let junior = why
        .agents
        .iter()
        .find(|v| v.agent == "junior")
        .expect("junior");
    assert!(
        !junior.eligible && junior.why.contains("billing>=4 (has level 2)"),
        "{junior:?}"
    );
    // After 60 s any billing level will do: the junior takes c1.
    d.advance(60 * S);
    assert_eq!(d.holder("c1"), Some(("junior", true)));
    // After 180 s c2 overflows to general.
    d.advance(180 * S);
    assert_eq!(d.holder("c2"), Some(("generalist", true)));
    let events = d.drain_events();
    assert!(events.iter().any(
        |e| matches!(e, RouteEvent::StepReached { conversation, queue, .. } if conversation == "c2" && queue == "general")
    ));
    d.audit().expect("invariants");
}

#[test]
fn the_dedicated_agent_gets_it_first_then_anyone_after_the_wait() {
    let q = QueueConfig {
        owner_wait_seconds: 60,
        ..queue("vip", &[])
    };
    let mut d = Dispatcher::new(vec![q], RoutingConfig::default());
    let mut owner = agent("owner", &[], 1);
    owner.status = AgentStatus::Away;
    d.upsert_agent(owner, 0).expect("agent");
    d.upsert_agent(agent("other", &[], 1), 0).expect("agent");
    let mut c = conversation("c1", "vip", 30, 0);
    c.owner = Some(AgentId::parse("owner").expect("id"));
    d.enqueue(c, 0).expect("enqueue");
    // Waits for the owner although `other` is free.
    assert_eq!(d.holder("c1"), None);
    assert!(d.claim("c1", "other", S).is_err());
    d.audit().expect("invariants");
    d.advance(60 * S);
    assert_eq!(d.holder("c1"), Some(("other", true)));
    // An owner who is there gets it at once.
    let mut c = conversation("c2", "vip", 30, 70 * S);
    c.owner = Some(AgentId::parse("owner").expect("id"));
    d.set_presence("owner", AgentStatus::Online, 70 * S)
        .expect("online");
    d.enqueue(c, 70 * S).expect("enqueue");
    assert_eq!(d.holder("c2"), Some(("owner", true)));
    d.audit().expect("invariants");
}

#[test]
fn only_agents_who_speak_the_language_are_eligible_until_a_step_relaxes_it() {
    let q = QueueConfig {
        steps: vec![StepConfig {
            after_seconds: 120,
            skills: None,
            any_language: true,
            overflow: None,
        }],
        ..queue("support", &[])
    };
    let mut d = Dispatcher::new(vec![q], RoutingConfig::default());
    let mut en = agent("en", &[], 1);
    en.languages = vec!["en".into()];
    d.upsert_agent(en, 0).expect("agent");
    let mut c = conversation("c1", "support", 0, 0);
    c.language = Some("DE".into());
    d.enqueue(c, 0).expect("enqueue");
    assert_eq!(d.holder("c1"), None);
    let why = d.explain("c1", 0).expect("explain");
    assert!(why.agents[0].why.contains("does not speak `de`"), "{why:?}");
    let mut de = agent("de", &[], 1);
    de.languages = vec!["de".into(), "en".into()];
    d.upsert_agent(de, 10 * S).expect("agent");
    assert_eq!(d.holder("c1"), Some(("de", true)));
    let mut c = conversation("c2", "support", 0, 20 * S);
    c.language = Some("fr".into());
    d.enqueue(c, 20 * S).expect("enqueue");
    d.advance(140 * S);
    assert_eq!(d.holder("c2"), Some(("en", true)));
    d.audit().expect("invariants");
}

#[test]
fn strategies_choose_longest_idle_least_busy_or_most_skilled() {
    let run = |strategy: Pick| {
        let q = QueueConfig {
            strategy,
            skills: vec![SkillRequirement::from("support")],
            ..queue("q", &[])
        };
        let mut d = Dispatcher::new(vec![q], RoutingConfig::default());
        // `busy` (level 5, capacity 4) got work at 1 s; `fresh` (level 2, capacity 1) has been
        // idle since 2 s.
        d.upsert_agent(agent("busy", &[("support", 5)], 4), 0)
            .expect("agent");
        d.enqueue(conversation("c0", "q", 0, S), S)
            .expect("enqueue");
        d.upsert_agent(agent("fresh", &[("support", 2)], 1), 2 * S)
            .expect("agent");
        d.drain_events();
        d.enqueue(conversation("c1", "q", 0, 3 * S), 3 * S)
            .expect("enqueue");
        d.holder("c1").map(|(a, _)| a.to_owned())
    };
    assert_eq!(run(Pick::LongestIdle).as_deref(), Some("busy"));
    assert_eq!(run(Pick::LeastBusy).as_deref(), Some("fresh"));
    assert_eq!(run(Pick::MostSkilled).as_deref(), Some("busy"));
}

#[test]
fn estimates_follow_position_staffing_and_observed_handle_times() {
    let mut d = Dispatcher::new(vec![queue("support", &[])], RoutingConfig::default());
    d.upsert_agent(agent("a1", &[], 2), 0).expect("agent");
    for i in 0..6 {
        d.enqueue(conversation(&format!("c{i}"), "support", 0, i), i)
            .expect("enqueue");
    }
    // Two are assigned; c2 is first in line: both slots busy, one must free up:
    // 360 s / 2 slots = 180 s (the default handle time until 5 are observed).
    let w = d.estimate("c2").expect("waiting");
    assert_eq!(w.expected_seconds, 180.0);
    assert_eq!(d.estimate("c0"), None);
    // Five conversations handled in 60 s each: the estimate follows them.
    let mut now = 0;
    for i in 0..5 {
        now += 60 * S;
        d.finish(&format!("c{i}"), true, now).expect("finish");
    }
    // Handled: c0 60 s, c1 about 120 s, c2, c3 and c4 120 s each (each started when a slot
    // freed): a mean of 108 s replaces the default 360 s.
    assert!(
        (d.handle_seconds("support") - 108.0).abs() < 0.01,
        "{}",
        d.handle_seconds("support")
    );
    let stats = d.queue_stats("support", now).expect("stats");
    assert_eq!(stats.waiting, 0);
    assert_eq!(stats.today.answered, 6);
    assert!(d.queue_stats("nope", now).is_err());
    d.audit().expect("invariants");
}

#[test]
fn refusals_change_nothing() {
    let mut d = Dispatcher::new(
        vec![queue("support", &["support"])],
        RoutingConfig::default(),
    );
    d.upsert_agent(agent("a1", &[("support", 1)], 1), 0)
        .expect("agent");
    d.enqueue(conversation("c1", "support", 0, 0), 0)
        .expect("enqueue");
    assert!(d.enqueue(conversation("c1", "support", 0, 0), 0).is_err());
    assert!(d.enqueue(conversation("c2", "nope", 0, 0), 0).is_err());
    // Capacity cannot drop below what the agent holds.
    assert!(d
        .upsert_agent(agent("a1", &[("support", 1)], 0), 0)
        .is_err());
    d.enqueue(conversation("c3", "support", 0, 0), 0)
        .expect("enqueue");
    let err = d.claim("c3", "a1", 0).expect_err("full");
    assert!(err.to_string().contains("capacity"), "{err}");
    assert!(d.claim("c1", "nobody", 0).is_err());
    assert!(d.finish("nope", true, 0).is_err());
    assert_eq!(d.len(), 2);
    d.audit().expect("invariants");
}

/// One random step against the dispatcher.
#[derive(Debug, Clone)]
enum Op {
    Arrive {
        queue: usize,
        priority: i64,
        lang: Option<usize>,
        owner: Option<usize>,
    },
    Agent {
        id: usize,
        skills: Vec<(usize, u8)>,
        lang: Option<usize>,
        capacity: u32,
    },
    Presence {
        id: usize,
        status: usize,
    },
    Accept {
        pick: usize,
    },
    Decline {
        pick: usize,
    },
    Claim {
        pick: usize,
        agent: usize,
    },
    Reply {
        pick: usize,
    },
    CustomerWrites {
        pick: usize,
    },
    Finish {
        pick: usize,
        handled: bool,
    },
    Transfer {
        pick: usize,
        queue: usize,
    },
    Wait {
        seconds: i64,
    },
    Restore {
        queue: usize,
        agent: usize,
        accepted: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..40i64, proptest::option::of(0..2usize), proptest::option::weighted(0.2, 0..6usize))
            .prop_map(|(queue, priority, lang, owner)| Op::Arrive { queue, priority, lang, owner }),
        2 => (0..6usize, proptest::collection::vec((0..3usize, 1..6u8), 0..3), proptest::option::of(0..2usize), 1..4u32)
            .prop_map(|(id, skills, lang, capacity)| Op::Agent { id, skills, lang, capacity }),
        2 => (0..6usize, 0..3usize).prop_map(|(id, status)| Op::Presence { id, status }),
        3 => any::<usize>().prop_map(|pick| Op::Accept { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Decline { pick }),
        1 => (any::<usize>(), 0..6usize).prop_map(|(pick, agent)| Op::Claim { pick, agent }),
        1 => any::<usize>().prop_map(|pick| Op::Reply { pick }),
        1 => any::<usize>().prop_map(|pick| Op::CustomerWrites { pick }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, handled)| Op::Finish { pick, handled }),
        1 => (any::<usize>(), 0..3usize).prop_map(|(pick, queue)| Op::Transfer { pick, queue }),
        3 => (1..200i64).prop_map(|seconds| Op::Wait { seconds }),
        1 => (0..3usize, 0..6usize, any::<bool>()).prop_map(|(queue, agent, accepted)| Op::Restore { queue, agent, accepted }),
    ]
}

fn random_queues() -> Vec<QueueConfig> {
    let skill = |n: &str, l: u8| SkillRequirement::Level {
        name: n.into(),
        min_level: l,
    };
    vec![
        QueueConfig {
            skills: vec![skill("s0", 3)],
            offer_timeout_seconds: Some(30),
            agent_silence_seconds: Some(90),
            steps: vec![
                StepConfig {
                    after_seconds: 60,
                    skills: Some(vec![skill("s0", 1)]),
                    any_language: true,
                    overflow: None,
                },
                StepConfig {
                    after_seconds: 240,
                    skills: None,
                    any_language: false,
                    overflow: Some("q2".into()),
                },
            ],
            ..QueueConfig::named("q0")
        },
        QueueConfig {
            skills: vec![skill("s1", 1)],
            strategy: Pick::LeastBusy,
            offer_timeout_seconds: None,
            owner_wait_seconds: 45,
            ..QueueConfig::named("q1")
        },
        QueueConfig {
            strategy: Pick::MostSkilled,
            skills: vec![skill("s2", 1)],
            match_language: false,
            aging_per_minute: 5.0,
            ..QueueConfig::named("q2")
        },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever happens, every invariant holds after every call: nothing is held twice, no
    /// agent is over capacity, nothing waits while an eligible agent has room; and a refused
    /// call changes nothing.
    #[test]
    fn invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..120)) {
        let langs = ["en", "de"];
        let mut d = Dispatcher::new(random_queues(), RoutingConfig::default());
        let mut now = 0i64;
        let mut ids: Vec<String> = Vec::new();
        let mut next = 0;
        let pick = |ids: &Vec<String>, p: usize| (!ids.is_empty()).then(|| ids[p % ids.len()].clone());
        for op in ops {
            // Time passes first, so that a refused call has nothing to change.
            d.advance(now);
            let before = format!("{d:?}");
            let result = match op {
                Op::Arrive { queue, priority, lang, owner } => {
                    next += 1;
                    let id = format!("c{next}");
                    ids.push(id.clone());
                    d.enqueue(NewConversation {
                        id: ConversationId::parse(id).expect("id"),
                        queue: format!("q{queue}"),
                        priority,
                        language: lang.map(|l| langs[l].to_owned()),
                        owner: owner.map(|o| AgentId::parse(format!("a{o}")).expect("id")),
                        queued_at: now,
                        why: "random".into(),
                    }, now)
                }
                Op::Agent { id, skills, lang, capacity } => d.upsert_agent(Agent {
                    id: AgentId::parse(format!("a{id}")).expect("id"),
                    name: format!("A{id}"),
                    skills: skills.iter().map(|(s, l)| Skill::new(format!("s{s}"), *l)).collect(),
                    languages: lang.map(|l| vec![langs[l].to_owned()]).unwrap_or_default(),
                    capacity,
                    status: AgentStatus::Online,
                }, now),
                Op::Presence { id, status } => d.set_presence(
                    &format!("a{id}"),
                    [AgentStatus::Online, AgentStatus::Away, AgentStatus::Offline][status],
                    now,
                ),
                Op::Accept { pick: p } => match pick(&ids, p).and_then(|c| d.holder(&c).map(|(a, _)| (c, a.to_owned()))) {
                    Some((c, a)) => d.accept(&c, &a, now),
                    None => Ok(()),
                },
                Op::Decline { pick: p } => match pick(&ids, p).and_then(|c| d.holder(&c).map(|(a, _)| (c, a.to_owned()))) {
                    Some((c, a)) => d.decline(&c, &a, now),
                    None => Ok(()),
                },
                Op::Claim { pick: p, agent } => match pick(&ids, p) {
                    Some(c) => d.claim(&c, &format!("a{agent}"), now),
                    None => Ok(()),
                },
                Op::Reply { pick: p } => pick(&ids, p).map_or(Ok(()), |c| d.agent_replied(&c)),
                Op::CustomerWrites { pick: p } => pick(&ids, p).map_or(Ok(()), |c| d.customer_wrote(&c, now)),
                Op::Finish { pick: p, handled } => match pick(&ids, p) {
                    Some(c) => {
                        ids.retain(|x| *x != c);
                        d.finish(&c, handled, now)
                    }
                    None => Ok(()),
                },
                Op::Transfer { pick: p, queue } => pick(&ids, p).map_or(Ok(()), |c| {
                    let to = (queue == 1).then(|| format!("a{p}", p = p % 6));
                    d.transfer(&c, &format!("q{queue}"), to.as_deref(), now)
                }),
                Op::Restore { queue, agent, accepted } => {
                    next += 1;
                    let id = format!("c{next}");
                    ids.push(id.clone());
                    let new = NewConversation {
                        id: ConversationId::parse(id).expect("id"),
                        queue: format!("q{queue}"),
                        priority: 0,
                        language: None,
                        owner: None,
                        queued_at: now - 30 * S,
                        why: "restored".into(),
                    };
                    d.restore_held(new, &format!("a{agent}"), accepted, now - 10 * S, now)
                }
                Op::Wait { seconds } => {
                    now += seconds * S;
                    d.advance(now);
                    Ok(())
                }
            };
            if result.is_err() {
                prop_assert_eq!(&before, &format!("{d:?}"), "a refused call changed the state");
            }
            if let Err(e) = d.audit() {
                prop_assert!(false, "{e}");
            }
            // No conversation is assigned or offered twice at once.
            let mut held: Vec<&str> = Vec::new();
            for c in &ids {
                if d.holder(c).is_some() {
                    prop_assert!(!held.contains(&c.as_str()));
                    held.push(c);
                }
            }
        }
    }
}

#[test]
fn a_decline_holds_for_the_cooldown_then_the_agent_is_asked_again() {
    let q = QueueConfig {
        offer_timeout_seconds: Some(30),
        decline_cooldown_seconds: 120,
        ..queue("support", &[])
    };
    let mut d = Dispatcher::new(vec![q], RoutingConfig::default());
    d.upsert_agent(agent("a1", &[], 1), 0).expect("agent");
    d.enqueue(conversation("c1", "support", 0, 0), 0)
        .expect("enqueue");
    d.decline("c1", "a1", 10 * S).expect("decline");
    assert_eq!(d.holder("c1"), None);
    let why = d.explain("c1", 11 * S).expect("explain");
    assert!(why.agents[0].why.contains("declined"), "{why:?}");
    // Nobody else: after the cooldown a1 is asked again, so nothing waits forever.
    d.advance(129 * S);
    assert_eq!(d.holder("c1"), None);
    d.advance(130 * S);
    assert_eq!(d.holder("c1"), Some(("a1", false)));
    d.audit().expect("invariants");
}
