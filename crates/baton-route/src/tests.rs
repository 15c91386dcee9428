use super::*;
use baton_domain::AgentId;
use proptest::prelude::*;

fn queues() -> Vec<QueueConfig> {
    let q = |name: &str, topics: Vec<ReasonCode>, tiers: Vec<&str>, default: bool| QueueConfig {
        name: name.into(),
        topics,
        tiers: tiers.into_iter().map(String::from).collect(),
        skills: vec![name.into()],
        sla_seconds: 120,
        priority: 0,
        default,
    };
    vec![
        q("vip", vec![], vec!["vip"], false),
        q(
            "billing",
            vec![ReasonCode::BillingDispute, ReasonCode::Refund],
            vec![],
            false,
        ),
        q("security", vec![ReasonCode::AccountSecurity], vec![], false),
        q("general", vec![], vec![], true),
    ]
}

#[test]
fn queue_selection_prefers_request_then_tier_then_topic_then_default() {
    let cfg = RoutingConfig::default();
    let qs = queues();
    let pick = |req: RouteRequest<'_>| select_queue(&qs, &cfg, &req).expect("queue").queue;
    assert_eq!(
        pick(RouteRequest {
            reasons: &[ReasonCode::Refund],
            ..Default::default()
        }),
        "billing"
    );
    assert_eq!(
        pick(RouteRequest {
            reasons: &[ReasonCode::Refund],
            tier: Some("VIP"),
            ..Default::default()
        }),
        "vip"
    );
    assert_eq!(
        pick(RouteRequest {
            reasons: &[ReasonCode::Refund],
            requested_queue: Some("security"),
            ..Default::default()
        }),
        "security"
    );
    assert_eq!(
        pick(RouteRequest {
            reasons: &[ReasonCode::HumanRequested],
            topics: &[ReasonCode::AccountSecurity],
            ..Default::default()
        }),
        "security"
    );
    assert_eq!(pick(RouteRequest::default()), "general");
}

#[test]
fn vip_priority_beats_standard() {
    let cfg = RoutingConfig::default();
    let qs = queues();
    let vip = select_queue(
        &qs,
        &cfg,
        &RouteRequest {
            tier: Some("enterprise"),
            ..Default::default()
        },
    )
    .expect("queue");
    let std = select_queue(&qs, &cfg, &RouteRequest::default()).expect("queue");
    assert!(vip.priority > std.priority);
}

#[test]
fn wait_is_padded_and_rounded_up() {
    // 4th in line, 2 slots both busy, 6-minute handle time: 4 * 360 / 2 = 720 s expected.
    let w = estimate_wait(4, 2, 2, 360.0, 1.5, 60);
    assert_eq!(w.expected_seconds, 720.0);
    assert_eq!(w.quoted_seconds, 1080);
    // 2nd in line with one of two slots free: one slot must free up, 360 / 2 = 180 s.
    let w = estimate_wait(2, 2, 1, 360.0, 1.5, 60);
    assert_eq!(w.expected_seconds, 180.0);
    assert_eq!(w.quoted_seconds, 300);
    // First in line with a free slot: no wait expected, yet the quote is one step.
    let w = estimate_wait(1, 3, 0, 360.0, 1.5, 60);
    assert_eq!(w.expected_seconds, 0.0);
    assert_eq!(w.quoted_seconds, 60);
    // Nobody on shift: one handle time per place in line.
    assert_eq!(
        estimate_wait(2, 0, 0, 360.0, 1.0, 60).expected_seconds,
        720.0
    );
}

#[test]
fn eligible_agents_need_skills_presence_and_free_capacity() {
    let agent = |id: &str, skills: &[&str], capacity, status| Agent {
        id: AgentId::parse(id).expect("id"),
        name: id.into(),
        skills: skills.iter().map(|s| s.to_string()).collect(),
        capacity,
        status,
    };
    let agents = vec![
        agent("a1", &["billing"], 2, AgentStatus::Online),
        agent("a2", &["billing"], 1, AgentStatus::Away),
        agent("a3", &["security"], 3, AgentStatus::Online),
        agent("a4", &["billing", "security"], 4, AgentStatus::Online),
    ];
    let billing = &queues()[1];
    let load = |a: &Agent| if a.id.as_str() == "a1" { 1 } else { 0 };
    let ids: Vec<&str> = eligible_agents(billing, &agents, load)
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(ids, vec!["a4", "a1"]);
    let full = |a: &Agent| a.capacity;
    assert!(eligible_agents(billing, &agents, full).is_empty());
    // Staffing counts online, skilled agents only: a1 (2 slots, 1 busy) and a4 (4 slots).
    assert_eq!(staffing(billing, &agents, load), (6, 1));
    assert_eq!(staffing(billing, &agents, full), (6, 6));
}

proptest! {
    /// Positions are a permutation of 1..=n that respects priority, then arrival.
    #[test]
    fn positions_follow_priority_then_fifo(items in proptest::collection::vec((0i64..4, 0i64..1000), 1..40)) {
        let waiting: Vec<Waiting> = items.iter().enumerate()
            .map(|(i, (p, t))| Waiting { conversation_id: format!("c{i}"), priority: *p, queued_at: *t })
            .collect();
        let mut positions: Vec<usize> = waiting.iter()
            .map(|w| position(&waiting, &w.conversation_id).expect("present"))
            .collect();
        for (a, pa) in waiting.iter().zip(&positions) {
            for (b, pb) in waiting.iter().zip(&positions) {
                if a.priority > b.priority || (a.priority == b.priority && a.queued_at < b.queued_at) {
                    prop_assert!(pa < pb);
                }
            }
        }
        positions.sort_unstable();
        prop_assert_eq!(positions, (1..=waiting.len()).collect::<Vec<_>>());
    }
}
