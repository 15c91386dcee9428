use super::*;

fn queues() -> Vec<QueueConfig> {
    let q = |name: &str, topics: Vec<ReasonCode>, tiers: Vec<&str>, default: bool| QueueConfig {
        topics,
        tiers: tiers.into_iter().map(String::from).collect(),
        skills: vec![name.into()],
        sla_seconds: 120,
        default,
        ..QueueConfig::named(name)
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
fn a_queue_rule_comes_after_the_bots_request_and_before_tiers() {
    let cfg = RoutingConfig::default();
    let qs = queues();
    let pick = |req: RouteRequest<'_>| select_queue(&qs, &cfg, &req).expect("queue");
    let r = pick(RouteRequest {
        tier: Some("vip"),
        rule_queue: Some("security"),
        ..Default::default()
    });
    assert_eq!(r.queue, "security");
    assert!(r.why.contains("rule"), "{}", r.why);
    let r = pick(RouteRequest {
        requested_queue: Some("billing"),
        rule_queue: Some("security"),
        ..Default::default()
    });
    assert_eq!(r.queue, "billing");
}

#[test]
fn wait_is_the_larger_of_padding_and_the_erlang_quantile_rounded_up() {
    let cfg = RoutingConfig::default();
    // 4th in line, 2 slots both busy, 6-minute handle time: 4 * 360 / 2 = 720 s expected;
    // padded 1080 s; the 90th percentile of Erlang(4, 2/360) is about 1201 s, so 1260 quoted.
    let w = estimate_wait(4, 2, 2, 360.0, &cfg);
    assert_eq!(w.expected_seconds, 720.0);
    assert_eq!(w.quoted_seconds, 1260);
    // 2nd in line with one of two slots free: one slot must free up, 360 / 2 = 180 s; the
    // exponential's 90th percentile is ln(10) * 180 = 414 s, quoted 420.
    let w = estimate_wait(2, 2, 1, 360.0, &cfg);
    assert_eq!(w.expected_seconds, 180.0);
    assert_eq!(w.quoted_seconds, 420);
    // First in line with a free slot: no wait expected, yet the quote is one step.
    let w = estimate_wait(1, 3, 0, 360.0, &cfg);
    assert_eq!(w.expected_seconds, 0.0);
    assert_eq!(w.quoted_seconds, 60);
    // Nobody on shift: one handle time per place in line.
    assert_eq!(estimate_wait(2, 0, 0, 360.0, &cfg).expected_seconds, 720.0);
}
