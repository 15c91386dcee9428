use super::*;
use baton_domain::{Contribution, Mode};

fn example() -> Brief {
    let conversation: baton_domain::Conversation = serde_json::from_str(
        r#"{"id": "c-1",
 "customer": {"id": "cust-9", "name": "Dana", "tier": "vip", "tenure_days": 3,
              "contacts_same_issue_30d": 2, "deal_value": 12000, "language": "en"},
 "turns": [
   {"role": "customer", "text": "my card was charged twice for order 8812"},
   {"role": "ai", "text": "I'm sorry! Refunds take 5-7 days. Is there anything else?", "ai_confidence": 0.62,
    "kb_similarity": 0.41, "kb_articles": ["refund-timelines"]},
   {"role": "customer", "text": "that is not what I asked. I want a person now!!"}
 ]}"#,
    )
    .expect("valid");
    let signals = vec![
        vec![Signal::new(
            ReasonCode::BillingDispute,
            0.9,
            "charged twice",
        )],
        vec![],
        vec![
            Signal::new(ReasonCode::HumanRequested, 0.9, "want a person"),
            Signal::new(ReasonCode::RepeatedFailure, 0.5, "that is not"),
        ],
    ];
    let decision = Decision {
        mode: Mode::Escalate,
        escalate: true,
        score: 0.9,
        threshold: 0.5,
        reasons: vec![
            ReasonCode::HumanRequested,
            ReasonCode::BillingDispute,
            ReasonCode::RepeatedFailure,
        ],
        contributions: Vec::<Contribution>::new(),
        rules_fired: vec![],
        skipped_rules: vec![],
        shadow: false,
    };
    build(
        &BriefInput {
            conversation_id: "c-1",
            turns: &conversation.turns,
            turn_signals: &signals,
            decision: &decision,
            customer: &conversation.customer,
            compounds: &[0.0, -0.4],
            rejected_ai_turns: &[1],
            topics: &[ReasonCode::BillingDispute],
            language: None,
        },
        &entities::Extractor::new(),
    )
}

#[test]
fn the_brief_carries_the_context() {
    let b = example();
    assert_eq!(b.intent, "billing_dispute");
    assert_eq!(b.handoff_turn, 2);
    assert_eq!(b.entities[0].value.as_deref(), Some("8812"));
    assert!(b.attempted_solutions[0].rejected);
    assert_eq!(
        b.attempted_solutions[0].kb_articles,
        vec!["refund-timelines"]
    );
    // The answer, without the apology in front of it.
    assert_eq!(b.attempted_solutions[0].summary, "Refunds take 5-7 days.");
    assert!(b.warm_introduction.starts_with("Hi Dana"));
    assert!(
        b.warm_introduction
            .contains("I can see that your card was charged twice for order 8812."),
        "{}",
        b.warm_introduction
    );
    assert_eq!(b.sentiment.trend, "worsening");
    // "Is there anything else?" closes; it is no step of the problem.
    assert_eq!(b.step_in_progress, None);
    assert_eq!(b.desired_outcome.as_deref(), Some("I want a person now"));
    assert_eq!(b.reasons[0].evidence, "want a person");
    assert!(b.summary.len() >= 3 && b.summary.len() <= MAX_SUMMARY_LINES);
}

#[test]
fn the_warm_introduction_names_the_problem_not_the_feeling() {
    let conversation: baton_domain::Conversation = serde_json::from_str(
        r#"{"id": "c-2", "turns": [{"role": "customer", "text": "that is not what I asked. I was charged twice for order 8812!!"}]}"#,
    )
    .expect("valid");
    let signals = vec![vec![Signal::new(
        ReasonCode::BillingDispute,
        0.9,
        "charged twice",
    )]];
    let decision = Decision {
        mode: Mode::Escalate,
        escalate: true,
        score: 0.9,
        threshold: 0.6,
        reasons: vec![ReasonCode::BillingDispute],
        contributions: Vec::new(),
        rules_fired: vec![],
        skipped_rules: vec![],
        shadow: false,
    };
    let b = build(
        &BriefInput {
            conversation_id: "c-2",
            turns: &conversation.turns,
            turn_signals: &signals,
            decision: &decision,
            customer: &conversation.customer,
            compounds: &[-0.3],
            rejected_ai_turns: &[],
            topics: &[ReasonCode::BillingDispute],
            language: None,
        },
        &entities::Extractor::new(),
    );
    assert!(
        b.warm_introduction
            .contains("I can see that you were charged twice for order 8812."),
        "{}",
        b.warm_introduction
    );
    assert!(!b.warm_introduction.contains("not what I asked"));
}

#[test]
fn the_introduction_keeps_the_statement_and_leaves_the_question() {
    assert_eq!(
        second_person("My parcel still hasn't arrived, how long does shipping take?").as_deref(),
        Some("your parcel still hasn't arrived")
    );
    assert_eq!(
        second_person("I need to return an item, can you help me with that?").as_deref(),
        Some("you need to return an item")
    );
    assert_eq!(second_person("How do I reset my password?"), None);
}

#[test]
fn asking_for_details_is_no_attempt_and_sending_to_them_is() {
    assert_eq!(
        act("additional to this you would give me the order ID and email"),
        Act::Question
    );
    assert_eq!(act("Could you provide your account number?"), Act::Question);
    assert_eq!(
        act("I've sent a new return label to your email address."),
        Act::Content
    );
    assert_eq!(
        act("We have updated the shipping address on your order."),
        Act::Content
    );
}

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!(render_markdown(&example()));
}

#[test]
fn json_round_trips() {
    let b = example();
    let back: Brief = serde_json::from_str(&render_json(&b)).expect("parses");
    assert_eq!(back, b);
}

#[test]
fn the_published_schema_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/brief.schema.json"
    );
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schemas/brief.schema.json"))
            .expect("valid JSON");
    assert_eq!(
        committed,
        json_schema(),
        "regenerate with `baton check --schema brief > schemas/brief.schema.json`"
    );
}
