use super::*;

fn engine() -> Engine {
    Engine::new(Policy::builtin().expect("valid"))
}

fn turn(json: &str) -> Turn {
    serde_json::from_str(json).expect("valid turn")
}

#[test]
fn the_contract_conversation_escalates_to_billing_with_a_brief() {
    let e = engine();
    let customer: Customer =
        serde_json::from_str(r#"{"name":"Dana","tier":"standard"}"#).expect("valid");
    let mut s = e.start(ConversationId::parse("c-1").expect("id"), customer, None);
    let first = e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"my card was charged twice for order 8812"}"#),
    );
    assert!(first.decision.escalate);
    assert_eq!(first.state, HandoffState::Queued);
    assert_eq!(
        first.route.as_ref().map(|r| r.queue.as_str()),
        Some("billing")
    );
    let brief = first.brief.expect("brief at handoff");
    assert_eq!(brief.entities[0].value.as_deref(), Some("8812"));
    assert_eq!(first.transitions.len(), 2);
    // Later turns keep the handoff state and carry no new brief.
    let later = e.process(&mut s, turn(r#"{"role":"customer","text":"hello?"}"#));
    assert_eq!(later.state, HandoffState::Queued);
    assert!(later.brief.is_none());
    let agent = e.process(
        &mut s,
        turn(r#"{"role":"agent","text":"Hi Dana","agent_id":"a1"}"#),
    );
    assert_eq!(agent.state, HandoffState::Assigned);
    assert!(!agent.state.ai_may_reply());
    let ai = turn(r#"{"role":"ai","text":"Can I help?"}"#);
    assert!(matches!(
        e.check(&s, &ai),
        Err(EngineError::AiLockedOut { .. })
    ));
}

#[test]
fn a_routine_question_stays_with_the_ai() {
    let e = engine();
    let mut s = e.start(
        ConversationId::parse("c-2").expect("id"),
        Customer::default(),
        None,
    );
    let o = e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"what time do you open on saturdays?"}"#),
    );
    assert!(!o.decision.escalate);
    assert_eq!(o.decision.mode, Mode::AiOnly);
    assert_eq!(o.state, HandoffState::AiActive);
    assert!(o.state.ai_may_reply());
}

#[test]
fn cancel_returns_to_the_ai_and_a_new_request_escalates_again() {
    let e = engine();
    let mut s = e.start(
        ConversationId::parse("c-3").expect("id"),
        Customer::default(),
        None,
    );
    e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"","action":"request_human"}"#),
    );
    assert_eq!(s.state, HandoffState::Queued);
    let o = e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"never mind","action":"cancel_handoff"}"#),
    );
    assert_eq!(o.transitions[0].to, HandoffState::ReturnedToAi);
    let again = e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"actually, get me a human"}"#),
    );
    assert_eq!(again.state, HandoffState::Queued);
}

#[test]
fn restore_rebuilds_detector_memory() {
    let e = engine();
    let mut live = e.start(
        ConversationId::parse("c-4").expect("id"),
        Customer::default(),
        None,
    );
    let turns = [
        r#"{"role":"customer","text":"how do I change the delivery address on my order"}"#,
        r#"{"role":"ai","text":"You can track your order from the Orders page."}"#,
        r#"{"role":"customer","text":"that's not what I asked"}"#,
    ];
    for t in turns {
        e.process(&mut live, turn(t));
    }
    let blank = e.start(
        ConversationId::parse("c-4").expect("id"),
        Customer::default(),
        None,
    );
    let restored = e.restore(blank, turns.iter().map(|t| turn(t)).collect());
    assert_eq!(restored.detect, live.detect);
}

#[test]
fn the_escalation_message_names_queue_position_and_wait() {
    let e = engine();
    let customer: Customer = serde_json::from_str(r#"{"name":"Dana"}"#).expect("valid");
    let mut s = e.start(ConversationId::parse("c-5").expect("id"), customer, None);
    e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"I want a refund for order 1234"}"#),
    );
    let msg = e.escalation_message(&s, 3, 900);
    assert!(msg.contains("billing"), "{msg}");
    assert!(msg.contains(", Dana"), "{msg}");
    assert!(msg.contains("number 3"), "{msg}");
    assert!(msg.contains("15 minutes"), "{msg}");
    assert!(msg.contains("see this whole conversation"), "{msg}");
    assert_eq!(human_duration(5400), "1 hour 30 minutes");
}

#[test]
fn the_language_is_settled_at_handoff_and_read_per_turn_only_when_a_rule_needs_it() {
    let e = engine();
    let mut s = e.start(
        ConversationId::parse("c-6").expect("id"),
        Customer::default(),
        None,
    );
    let hola = turn(
        r#"{"role":"customer","text":"Hola, quiero cancelar mi pedido porque llegó roto y nadie me responde"}"#,
    );
    let mut quiet = s.clone();
    e.process(
        &mut quiet,
        turn(r#"{"role":"customer","text":"hola, buenas tardes a todos"}"#),
    );
    assert_eq!(
        quiet.detect.language, None,
        "the default policy does not read the language per turn"
    );
    let mut button = hola.clone();
    button.action = Some(baton_domain::TurnAction::RequestHuman);
    let o = e.process(&mut s, button);
    assert_eq!(
        o.brief.expect("brief").customer.language.as_deref(),
        Some("es")
    );

    let yaml = baton_policy::DEFAULT_POLICY_YAML.replace(
        "rules:\n",
        "rules:\n  - name: spanish\n    when: conversation.language == \"es\"\n    mode: ai_assisted\n",
    );
    let e = Engine::new(Policy::parse(&yaml, "p.yaml").expect("valid"));
    let mut s = e.start(
        ConversationId::parse("c-7").expect("id"),
        Customer::default(),
        None,
    );
    let o = e.process(&mut s, hola);
    assert_eq!(s.detect.language.as_deref(), Some("es"));
    assert!(
        o.decision.rules_fired.contains(&"spanish".to_owned()),
        "{:?}",
        o.decision
    );
}

#[test]
fn a_cancel_with_nothing_waiting_changes_nothing() {
    let e = engine();
    let mut s = e.start(
        ConversationId::parse("c-8").expect("id"),
        Customer::default(),
        None,
    );
    let o = e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"ok","action":"cancel_handoff"}"#),
    );
    assert!(o.transitions.is_empty());
    assert_eq!(o.state, HandoffState::AiActive);
}

#[test]
fn a_restored_session_reads_the_language_like_a_live_one() {
    let yaml = baton_policy::DEFAULT_POLICY_YAML.replace(
        "rules:\n",
        "rules:\n  - name: spanish\n    when: conversation.language == \"es\"\n    mode: ai_assisted\n",
    );
    let e = Engine::new(Policy::parse(&yaml, "p.yaml").expect("valid"));
    let id = ConversationId::parse("c-9").expect("id");
    let hola = turn(
        r#"{"role":"customer","text":"Hola, quiero cancelar mi pedido porque llegó roto y nadie me responde"}"#,
    );
    let mut live = e.start(id.clone(), Customer::default(), None);
    e.process(&mut live, hola.clone());
    let restored = e.restore(e.start(id, Customer::default(), None), vec![hola]);
    assert_eq!(live.detect.language.as_deref(), Some("es"));
    assert_eq!(restored.detect, live.detect);
}

#[test]
fn the_bot_names_the_queue_and_agent_and_an_account_owner_is_waited_for() {
    let e = engine();
    let mut s = e.start(
        ConversationId::parse("c-9").expect("id"),
        Customer::default(),
        None,
    );
    let out = e.process(
        &mut s,
        turn(
            r#"{"role":"ai","text":"Let me get you a specialist.","ai_requested":true,"target_queue":"security","target_agent":"sam"}"#,
        ),
    );
    assert!(out.decision.escalate, "{:?}", out.decision);
    let route = out.route.expect("routed");
    assert_eq!(route.queue, "security");
    assert_eq!(route.why, "the bot asked for this queue");
    assert_eq!(s.requested_agent.as_deref(), Some("sam"));

    // Without a named agent, the customer's account owner is waited for.
    let customer: Customer =
        serde_json::from_str(r#"{"name":"Lee","tier":"vip","account_owner":"olga"}"#)
            .expect("valid");
    let mut s = e.start(ConversationId::parse("c-10").expect("id"), customer, None);
    let out = e.process(
        &mut s,
        turn(r#"{"role":"customer","text":"I want to talk to a person"}"#),
    );
    assert_eq!(out.route.expect("routed").queue, "vip");
    assert_eq!(s.requested_agent.as_deref(), Some("olga"));
}
