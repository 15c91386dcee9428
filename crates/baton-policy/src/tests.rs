use super::*;
use baton_domain::{Customer, Signal};

fn facts<'a>(signals: &'a [Signal], customer: &'a Customer) -> Facts<'a> {
    Facts::first_turn(signals, customer)
}

#[test]
fn the_builtin_policy_is_valid() {
    let p = Policy::builtin().expect("built-in policy validates");
    assert_eq!(p.queues().iter().filter(|q| q.default).count(), 1);
}

#[test]
fn a_trigger_escalates_on_its_own() {
    let p = Policy::builtin().expect("valid");
    let c = Customer::default();
    let s = [Signal::new(
        ReasonCode::HumanRequested,
        0.9,
        "talk to a person",
    )];
    let d = p.decide(&facts(&s, &c));
    assert!(d.escalate);
    assert_eq!(d.mode, Mode::Escalate);
    assert_eq!(d.reasons, vec![ReasonCode::HumanRequested]);
    assert_eq!(d.score, 0.9);
}

#[test]
fn sentiment_alone_does_not_escalate_but_lowers_the_bar() {
    let p = Policy::builtin().expect("valid");
    let c = Customer::default();
    let sad = [Signal::new(
        ReasonCode::NegativeSentiment,
        0.8,
        "compound -0.8",
    )];
    let d = p.decide(&facts(&sad, &c));
    assert!(!d.escalate, "{d:?}");
    assert!(d.threshold < p.file.threshold);
    // Frustration on its own stays below the bar; with negative sentiment it crosses it.
    let frustrated = [Signal::new(ReasonCode::Frustration, 0.9, "for hours")];
    assert!(!p.decide(&facts(&frustrated, &c)).escalate);
    let both = [
        Signal::new(ReasonCode::Frustration, 0.9, "for hours"),
        Signal::new(ReasonCode::NegativeSentiment, 0.8, "compound -0.8"),
        Signal::new(ReasonCode::Anger, 0.6, "!!!"),
    ];
    let d = p.decide(&facts(&both, &c));
    assert!(d.escalate, "{d:?}");
    assert!(d.reasons.contains(&ReasonCode::Frustration));
}

#[test]
fn cel_rules_fire_and_failing_rules_are_reported() {
    let p = Policy::builtin().expect("valid");
    let c: Customer = serde_json::from_str(r#"{"contacts_same_issue_30d": 4}"#).expect("valid");
    let s = [Signal::new(ReasonCode::Frustration, 0.55, "annoyed")];
    let d = p.decide(&facts(&s, &c));
    assert!(d.escalate, "{d:?}");
    assert!(d
        .rules_fired
        .contains(&"third_contact_and_unhappy".to_owned()));
    assert!(d.reasons.contains(&ReasonCode::RepeatContact));

    let yaml = DEFAULT_POLICY_YAML.replace(
        "rules:\n",
        "rules:\n  - name: broken\n    when: customer.plan == \"pro\"\n    mode: ai_assisted\n",
    );
    let p = Policy::parse(&yaml, "p.yaml").expect("valid");
    let d = p.decide(&facts(&[], &Customer::default()));
    assert_eq!(d.skipped_rules.len(), 1, "{d:?}");
    assert_eq!(d.skipped_rules[0].rule, "broken");
}

#[test]
fn shadow_mode_logs_without_escalating() {
    let yaml = DEFAULT_POLICY_YAML.replace("shadow: false", "shadow: true");
    let p = Policy::parse(&yaml, "p.yaml").expect("valid");
    let c = Customer::default();
    let s = [Signal::new(ReasonCode::Refund, 0.9, "refund")];
    let d = p.decide(&facts(&s, &c));
    assert!(!d.escalate);
    assert!(d.shadow);
    assert_ne!(d.mode, Mode::Escalate);
}

#[test]
fn every_error_is_reported_with_line_column_and_hint() {
    let yaml = DEFAULT_POLICY_YAML
        .replace("  frustration: 0.25", "  frustation: 0.25")
        .replace("  anger: 0.3", "  anger: 1.5")
        .replace(
            "  - churn_risk\n  - custom_pricing",
            "  - churn\n  - custom_pricing",
        )
        .replace(
            "when: signals.vip_customer > 0 &&",
            "when: signals.vip_customer > 0 &&& ",
        )
        .replace("{position} in line", "{place} in line");
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("invalid");
    let text = errors.to_string();
    assert_eq!(errors.0.len(), 5, "{text}");
    let find = |needle: &str| {
        errors
            .0
            .iter()
            .find(|e| e.message.contains(needle))
            .unwrap_or_else(|| panic!("no error with `{needle}` in {text}"))
    };
    let typo = find("`frustation`");
    assert_eq!(typo.hint.as_deref(), Some("did you mean `frustration`?"));
    let line = yaml
        .lines()
        .position(|l| l.contains("frustation"))
        .expect("line")
        + 1;
    assert_eq!((typo.line, typo.column), (line, 3));
    assert!(find("1.5 is outside").path == "weights.anger");
    assert!(find("`churn`").path.starts_with("triggers["));
    assert!(find("invalid CEL").path == "rules[1].when");
    assert!(find("{place}").path == "messages.escalation");
    assert!(text.starts_with("p.yaml:"));
}

#[test]
fn routing_mistakes_are_reported_where_they_are() {
    let yaml = DEFAULT_POLICY_YAML
        .replace(
            "  - name: security\n",
            "  - name: security\n    when: 'queue_depth > 3'\n    hours: {timezone: Mars/Base, mon: [\"09:00-17:00\"]}\n",
        )
        .replace("{after_seconds: 600, overflow: general}", "{after_seconds: 600, overflow: nowhere}")
        .replace(
            "    skills: [retention]",
            "    skills: [{name: retention, min_level: 9}]\n    offer_timeout_seconds: 0",
        )
        .replace("  async_options: [email, callback, meeting]", "  async_options: [email, pigeon]");
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("invalid");
    let text = errors.to_string();
    let path_of = |needle: &str| {
        errors
            .0
            .iter()
            .find(|e| e.message.contains(needle))
            .map(|e| e.path.clone())
            .unwrap_or_else(|| panic!("no error with `{needle}` in {text}"))
    };
    assert_eq!(path_of("`queue_depth`"), "queues[1].when");
    assert_eq!(path_of("IANA"), "queues[1].hours");
    assert_eq!(path_of("`nowhere`"), "queues[2].steps[0].overflow");
    assert_eq!(path_of("min_level 9"), "queues[3].skills[0].min_level");
    assert_eq!(
        path_of("offer_timeout_seconds is 0"),
        "queues[3].offer_timeout_seconds"
    );
    assert_eq!(path_of("`pigeon`"), "routing.async_options[1]");
    assert_eq!(errors.0.len(), 6, "{text}");
}

#[test]
fn queue_rules_see_topic_intent_customer_and_language() {
    let yaml = DEFAULT_POLICY_YAML.replace(
        "  - name: security\n",
        "  - name: security\n    when: 'topic == \"refund\" && intent == \"refund\" && customer.tier == \"gold\" && language == \"de\"'\n",
    );
    let p = Policy::parse(&yaml, "p.yaml").expect("valid");
    let gold = Customer {
        tier: Some("gold".into()),
        ..Customer::default()
    };
    let mut f = facts(&[], &gold);
    f.language = Some("de");
    assert_eq!(
        p.queue_rule(&f, Some(ReasonCode::Refund), Some("refund")),
        Some("security")
    );
    assert_eq!(
        p.queue_rule(&f, Some(ReasonCode::Refund), Some("other")),
        None
    );
    f.language = None;
    assert_eq!(
        p.queue_rule(&f, Some(ReasonCode::Refund), Some("refund")),
        None
    );
}

#[test]
fn structural_errors_point_at_the_key() {
    let yaml = DEFAULT_POLICY_YAML.replace("shadow: false", "shadow: false\nshadows: true");
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("unknown key");
    assert!(
        errors.0[0].message.contains("unknown field `shadows`"),
        "{errors}"
    );
    let line = yaml
        .lines()
        .position(|l| l.starts_with("shadows"))
        .expect("line")
        + 1;
    assert_eq!(errors.0[0].line, line);

    let yaml = DEFAULT_POLICY_YAML.replace("threshold: 0.6", "threshold: high");
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("bad type");
    assert_eq!(errors.0[0].path, "threshold");

    let errors = Policy::parse("queues: [", "p.yaml").expect_err("bad yaml");
    assert!(errors.0[0].message.starts_with("invalid YAML"));
}

#[test]
fn the_published_schema_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/policy.schema.json"
    );
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schemas/policy.schema.json"))
            .expect("valid JSON");
    assert_eq!(
        committed,
        json_schema(),
        "regenerate with `baton check --schema policy > schemas/policy.schema.json`"
    );
}

#[test]
fn rules_get_the_signals_they_read_and_every_signal_when_they_index_the_map() {
    use crate::signals_read;
    let read = signals_read(
        [
            "signals.anger > 0.5 && customer.tier == 'vip'",
            "signals.vip_customer > 0 || signals.anger > 0",
        ]
        .into_iter(),
    );
    assert_eq!(read, Some(vec![ReasonCode::Anger, ReasonCode::VipCustomer]));
    assert_eq!(signals_read(["signals['anger'] > 0.5"].into_iter()), None);
    assert_eq!(signals_read(["size(signals) > 2"].into_iter()), None);
    // A macro over the map sees every code too.
    assert_eq!(
        signals_read(["signals.exists(k, k == 'anger')"].into_iter()),
        None
    );
    assert_eq!(
        signals_read(["customer.my_signals > 2"].into_iter()),
        Some(vec![])
    );

    // Indexing the map still sees every code, absent ones as 0.
    let yaml = DEFAULT_POLICY_YAML.replace(
        "rules:\n",
        "rules:\n  - name: indexed\n    when: signals['urgency'] == 0.0 && signals['anger'] > 0.5\n    escalate: true\n    reason: anger\n",
    );
    let p = Policy::parse(&yaml, "p.yaml").expect("valid");
    let customer = Customer::default();
    let signals = [Signal::new(ReasonCode::Anger, 0.9, "x")];
    let d = p.decide(&facts(&signals, &customer));
    assert!(d.rules_fired.contains(&"indexed".to_owned()), "{:?}", d);

    let yaml = with_rule("signals.exists(k, k == \"anger\" && signals[k] > 0.5)");
    let p = Policy::parse(&yaml, "p.yaml").expect("valid");
    let d = p.decide(&facts(&signals, &customer));
    assert!(d.rules_fired.contains(&"added".to_owned()), "{:?}", d);
}

#[test]
fn conditions_split_at_top_level_ands_only() {
    assert_eq!(
        conjuncts(r#"has(customer.x) && (a || b && c) && s == "&&" && [1 && 2]"#),
        vec![
            "has(customer.x)",
            "(a || b && c)",
            r#"s == "&&""#,
            "[1 && 2]"
        ]
    );
    assert_eq!(
        conjuncts("signals.anger > 0.5"),
        vec!["signals.anger > 0.5"]
    );
    assert_eq!(customer_guards("signals.anger > 0.5").len(), 0);
    // Only the leading customer-only parts guard a rule.
    assert_eq!(
        customer_guards("has(customer.tier) && customer.tier == 'vip' && signals.anger > 0 && has(customer.deal_value)").len(),
        2
    );
    assert_eq!(
        customer_guards("signals.anger > 0 && has(customer.tier)").len(),
        0
    );
}

/// A rule whose customer-only part is false is skipped for that customer's conversation, and
/// every decision is the same as evaluating the rule in full.
#[test]
fn rules_ruled_out_by_the_customer_decide_as_the_full_condition_does() {
    let p = Policy::builtin().expect("valid");
    let signals = [
        Signal::new(ReasonCode::NegativeSentiment, 0.5, "compound -0.5"),
        Signal::new(ReasonCode::Frustration, 0.7, "annoyed"),
    ];
    for customer in [
        r#"{}"#,
        r#"{"contacts_same_issue_30d": 4}"#,
        r#"{"contacts_same_issue_30d": 1, "deal_value": 20000.0}"#,
        r#"{"tier": "vip"}"#,
    ] {
        let c: Customer = serde_json::from_str(customer).expect("customer");
        let kept = p.customer_value(&c);
        let with_guard = p.decide(&Facts {
            customer_value: Some(&kept),
            ..facts(&signals, &c)
        });
        let without = p.decide(&facts(&signals, &c));
        assert_eq!(
            serde_json::to_value(&with_guard).expect("json"),
            serde_json::to_value(&without).expect("json"),
            "{customer}"
        );
    }
    let plain = p.customer_value(&Customer::default());
    assert!(
        plain.ruled_out.iter().filter(|&&r| r).count() >= 2,
        "the repeat-contact and deal-value rules cannot hold for a customer without those facts"
    );
}

#[test]
fn signal_guards_read_leading_comparisons_of_one_signal_only() {
    let guard = |code, min, inclusive| SignalGuard {
        code,
        min,
        inclusive,
    };
    assert_eq!(
        signal_guards("signals.vip_customer > 0 && (signals.low_confidence > 0 || x)"),
        vec![guard(ReasonCode::VipCustomer, 0.0, false)]
    );
    assert_eq!(
        signal_guards("signals.anger >= 0.5 && signals.urgency > 0.25 && has(customer.tier)"),
        vec![
            guard(ReasonCode::Anger, 0.5, true),
            guard(ReasonCode::Urgency, 0.25, false)
        ]
    );
    for not_a_guard in [
        "(signals.anger > 0.5) && x",
        "signals.anger > 0.5 || x",
        "signals.anger < 0.5 && x",
        "signals.angry > 0.5 && x",
        "signals.anger > 0.5 * y && x",
        "has(customer.tier) && signals.anger > 0.5",
    ] {
        assert_eq!(signal_guards(not_a_guard), vec![], "{not_a_guard}");
    }
}

/// A rule skipped because its leading signal comparison fails decides as the full condition
/// does: the built-in policy with that comparison in parentheses (which is no guard) agrees.
#[test]
fn rules_skipped_by_a_signal_guard_decide_as_the_full_condition_does() {
    let guarded = Policy::builtin().expect("valid");
    let written = "when: signals.vip_customer > 0 &&";
    assert!(DEFAULT_POLICY_YAML.contains(written));
    let plain = Policy::parse(
        &DEFAULT_POLICY_YAML.replace(written, "when: (signals.vip_customer > 0) &&"),
        "plain",
    )
    .expect("plain policy");
    let guards = |p: &Policy| p.rules.iter().map(|r| r.signal_guards.len()).sum::<usize>();
    assert_eq!((guards(&guarded), guards(&plain)), (1, 0));
    let c = Customer::default();
    let vip = |score| Signal::new(ReasonCode::VipCustomer, score, "tier vip");
    let low = Signal::new(ReasonCode::LowConfidence, 0.6, "kb_similarity 0.1");
    for signals in [
        vec![],
        vec![low.clone()],
        vec![vip(0.0), low.clone()],
        vec![vip(1.0)],
        vec![vip(1.0), low.clone()],
    ] {
        let a = guarded.decide(&facts(&signals, &c));
        let b = plain.decide(&facts(&signals, &c));
        assert_eq!(
            serde_json::to_value(&a).expect("json"),
            serde_json::to_value(&b).expect("json"),
            "{signals:?}"
        );
    }
    let served_badly = guarded.decide(&facts(&[vip(1.0), low], &c));
    assert_eq!(served_badly.rules_fired, vec!["vip_not_served".to_owned()]);
}

#[test]
fn a_backslash_escapes_a_quote_except_in_a_raw_string() {
    assert_eq!(
        conjuncts(r#"a == "x\" && y" && r"\" == b && c"#),
        vec![r#"a == "x\" && y""#, r#"r"\" == b"#, "c"]
    );
}

/// The line (1-based) of the first line of `yaml` that contains `needle`.
fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}`"))
        + 1
}

#[test]
fn every_structural_error_is_reported_not_only_the_first() {
    let yaml = DEFAULT_POLICY_YAML
        .replace("shadow: false", "shadow: false\nshadows: true")
        .replace("threshold: 0.6", "threshold: high")
        .replace("    strategy: least_busy", "    strategy: fastest")
        .replace("    mode: ai_assisted", "    mode: ai_asisted")
        .replace("  handback: ", "  hand_back: ");
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("invalid");
    let text = errors.to_string();
    let find = |needle: &str| {
        errors
            .0
            .iter()
            .find(|e| e.message.contains(needle))
            .unwrap_or_else(|| panic!("no error with `{needle}` in {text}"))
    };
    let unknown = find("unknown field `shadows`");
    assert_eq!(
        (unknown.line, unknown.column),
        (line_of(&yaml, "shadows"), 1)
    );
    assert!(unknown
        .hint
        .as_deref()
        .is_some_and(|h| h.starts_with("remove the key")));
    let threshold = find("invalid type: string \"high\"");
    assert_eq!(
        (threshold.path.as_str(), threshold.line),
        ("threshold", line_of(&yaml, "threshold: high"))
    );
    assert_eq!(find("`fastest`").path, "queues[4].strategy");
    assert_eq!(find("`ai_asisted`").path, "rules[2].mode");
    assert_eq!(find("unknown field `hand_back`").path, "messages.hand_back");
    // The misspelt key leaves `handback` missing: reported at its map.
    assert_eq!(find("missing field `handback`").path, "messages");
    assert_eq!(errors.0.len(), 6, "{text}");
    assert!(text.ends_with("6 errors in policy"), "{text}");
}

#[test]
fn two_structural_errors_are_both_reported() {
    let yaml = DEFAULT_POLICY_YAML
        .replace("min_contribution: 0.05", "min_contribution: [0.05]")
        .replace(
            "    sla_seconds: 120\n",
            "    sla_seconds: 120\n    sla: 60\n",
        );
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("invalid");
    let paths: Vec<(&str, usize)> = errors.0.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(
        paths,
        vec![
            ("min_contribution", line_of(&yaml, "min_contribution: [")),
            ("queues[1].sla", line_of(&yaml, "    sla: 60")),
        ],
        "{errors}"
    );
    assert!(errors.0.iter().all(|e| e.hint.is_some() && e.column > 0));
}

#[test]
fn mended_values_raise_no_follow_up_errors() {
    // A wrong type inside an optional block whose other keys the built-in policy cannot
    // supply (no queue there has hours): one error, not one per consequence.
    let yaml = DEFAULT_POLICY_YAML.replace(
        "  - name: security\n",
        "  - name: security\n    hours: {timezone: 3, mon: [\"09:00-17:00\"]}\n",
    );
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("invalid");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "queues[1].hours.timezone");

    // A queue without a name, and a skill that is neither a name nor an object.
    let yaml = DEFAULT_POLICY_YAML
        .replace("  - name: security\n", "  - priority: 3\n")
        .replace("    skills: [retention]", "    skills: [[retention]]");
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("invalid");
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, vec!["queues[1]", "queues[3].skills[0]"], "{errors}");
    assert!(errors.0[0].message.contains("missing field `name`"));

    // Not a map at all: one error.
    let errors = Policy::parse("- 1\n- 2\n", "p.yaml").expect_err("invalid");
    assert_eq!(errors.0.len(), 1, "{errors}");
}

#[test]
fn duplicate_keys_and_aliases_are_all_reported_with_the_rest() {
    let yaml = DEFAULT_POLICY_YAML
        .replace("shadow: false", "shadow: false\nshadow: true")
        .replace("  anger: 0.3", "  anger: 0.3\n  anger: 0.4")
        .replace("threshold: 0.6", "threshold: &t 0.6")
        .replace("min_threshold: 0.35", "min_threshold: *t")
        .replace("    strategy: least_busy", "    strategy: fastest");
    let errors = Policy::parse(&yaml, "p.yaml").expect_err("invalid");
    let text = errors.to_string();
    let messages: Vec<&str> = errors.0.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(errors.0.len(), 4, "{text}");
    assert_eq!(messages[0], "invalid YAML: duplicate key `shadow`");
    assert_eq!(errors.0[0].line, line_of(&yaml, "shadow: true"));
    assert_eq!(errors.0[1].path, "min_threshold");
    assert!(messages[1].contains("aliases"));
    assert_eq!(messages[2], "invalid YAML: duplicate key `anger`");
    assert_eq!(errors.0[2].line, line_of(&yaml, "anger: 0.4"));
    assert_eq!(errors.0[3].path, "queues[4].strategy");
}

/// The built-in policy with one more rule.
fn with_rule(when: &str) -> String {
    DEFAULT_POLICY_YAML.replace(
        "rules:\n",
        &format!("rules:\n  - name: added\n    when: '{when}'\n    mode: ai_assisted\n"),
    )
}

/// The errors of the built-in policy with one more rule, all at that rule's `when`.
fn rule_errors(when: &str) -> Vec<PolicyError> {
    let yaml = with_rule(when);
    let errors = Policy::parse(&yaml, "p.yaml")
        .map(|_| ())
        .expect_err(when)
        .0;
    let line = line_of(&yaml, "    when: '");
    for e in &errors {
        assert_eq!(
            (e.path.as_str(), e.line, e.column),
            ("rules[0].when", line, 5),
            "{e}"
        );
    }
    errors
}

#[test]
fn a_misspelt_signal_is_refused_with_the_nearest_code() {
    let errors = rule_errors("signals.vip_customr > 0");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.contains("`signals.vip_customr`"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean `signals.vip_customer`?")
    );
    // Indexing the map is checked the same way; a name like no code gets the list's hint.
    let errors = rule_errors("signals[\"angr\"] > 0.5 || signals.zzzzzzzzzz > 0");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean `signals.anger`?")
    );
    assert!(errors[1]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("one key per reason code")));
}

#[test]
fn a_number_field_compared_with_a_string_is_refused() {
    let errors = rule_errors("has(customer.deal_value) && customer.deal_value >= \"big\"");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message,
        "`customer.deal_value >= \"big\"` compares a number with a string, which never holds"
    );
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean a number, as in `customer.deal_value >= 10000.0`?")
    );
    let errors = rule_errors("customer.deal_value >= \"10000\"");
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean the number `customer.deal_value >= 10000`, without quotes?")
    );
}

#[test]
fn other_conditions_that_cannot_work_are_refused() {
    for (when, message, hint) in [
        (
            "conversation.turn > 3",
            "`conversation.turn`",
            "did you mean `conversation.turns`?",
        ),
        (
            "conversation.topics == \"refund\"",
            "compares a list of reason codes with a string",
            "did you mean `\"refund\" in conversation.topics`?",
        ),
        (
            "\"refnd\" in conversation.topics",
            "`refnd` is no reason code",
            "did you mean `\"refund\"`?",
        ),
        (
            "1 in conversation.topics",
            "looks for a number in a list of reason codes",
            "did you mean a reason code",
        ),
        (
            "customer.tier == 3",
            "compares a string with a number",
            "as in `customer.tier == \"vip\"`",
        ),
        (
            "signals.anger != \"high\"",
            "which always holds",
            "as in `signals.anger > 0.5`",
        ),
        (
            "customer.tier == null",
            "compares a string with null",
            "did you mean `has(customer.tier)`?",
        ),
        (
            "has(customer.tier.level)",
            "`customer.tier` is a string, which has no fields",
            "use the value itself",
        ),
        (
            "conversation.failures.size() > 0 && conversation.failures == true",
            "compares a number with a boolean",
            "as in `conversation.failures >= 2`",
        ),
    ] {
        let errors = rule_errors(when);
        assert_eq!(errors.len(), 1, "{when}: {errors:?}");
        assert!(errors[0].message.contains(message), "{when}: {}", errors[0]);
        assert!(
            errors[0].hint.as_deref().is_some_and(|h| h.contains(hint)),
            "{when}: {}",
            errors[0]
        );
    }
}

#[test]
fn conditions_that_can_work_pass() {
    for when in [
        // Open customer attributes are not errors.
        "has(customer.plan) && customer.plan == \"pro\"",
        "customer.deal_value >= 10000 && customer.tenure_days < 7.5",
        "customer.tier in [\"vip\", \"gold\"] && -1 < signals.anger",
        "signals[\"anger\"] > 0.5 && signals.exists(k, signals[k] > 0.9)",
        "\"refund\" in conversation.topics && conversation.topics.exists(t, t == \"refund\")",
        "conversation.channel == \"email\" && conversation.failures >= 2u",
        "[1, 2].exists(signals, signals > 1) && [{\"zzz\": 1}].exists(conversation, conversation.zzz > 0)",
        "size(customer.name) > 3 && customer.email.endsWith(\"@example.com\")",
    ] {
        if let Err(e) = Policy::parse(&with_rule(when), "p.yaml") {
            panic!("{when}: {e}");
        }
    }
}

#[test]
fn queue_conditions_check_topic_and_their_other_variables() {
    let with_queue_rule = |when: &str| {
        DEFAULT_POLICY_YAML.replace(
            "  - name: security\n",
            &format!("  - name: security\n    when: '{when}'\n"),
        )
    };
    let good = "topic == \"refund\" || topic == \"\" && intent == \"refund\" && language == \"de\"";
    Policy::parse(&with_queue_rule(good), "p.yaml").expect("valid");
    let errors = Policy::parse(&with_queue_rule("topic == \"refnd\""), "p.yaml")
        .expect_err("unknown code")
        .0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "queues[1].when");
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean `\"refund\"`?")
    );
    let errors = Policy::parse(&with_queue_rule("language.code == \"de\""), "p.yaml")
        .expect_err("a string has no fields")
        .0;
    assert!(
        errors[0].message.contains("`language` is a string"),
        "{errors:?}"
    );
}

/// The check's list of customer fields is the `Customer` type's (a field added there and not
/// here fails to compile this test or fails it).
#[test]
fn the_checked_customer_fields_are_the_customer_type_s() {
    let every = Customer {
        id: Some("c".into()),
        name: Some("n".into()),
        tier: Some("t".into()),
        tenure_days: Some(1),
        contacts_same_issue_30d: Some(1),
        deal_value: Some(1.5),
        language: Some("en".into()),
        email: Some("e".into()),
        account_owner: Some("a".into()),
        attributes: serde_json::Map::new(),
    };
    let json = serde_json::to_value(&every).expect("json");
    let fields = json.as_object().expect("a map");
    let names: Vec<&str> = names::CUSTOMER_FIELDS.iter().map(|f| f.name).collect();
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    keys.sort_unstable();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    // And each field's type is the one a condition sees.
    for f in names::CUSTOMER_FIELDS {
        let value = format!("customer.{}", f.name);
        let p = Policy::parse(&with_rule(&format!("{value} == {value}")), "p.yaml").expect("valid");
        let d = p.decide(&facts(&[], &every));
        assert!(
            d.rules_fired.contains(&"added".to_owned()),
            "{value}: {d:?}"
        );
    }
}

/// The check's `conversation` and `signals` keys are those a decision builds.
#[test]
fn the_checked_conversation_and_signal_keys_are_those_decisions_build() {
    let p = Policy::builtin().expect("valid");
    let c = Customer::default();
    let ctx = p.cel_context(&facts(&[], &c), true);
    let keys = |variable: &str| {
        let program = cel::Program::compile(variable).expect("compiles");
        let cel::Value::Map(map) = program.execute(&ctx).expect("runs") else {
            panic!("{variable} is no map");
        };
        let mut keys: Vec<String> = map
            .map
            .keys()
            .map(|k| match k {
                cel::objects::Key::String(s) => s.to_string(),
                other => panic!("key {other:?}"),
            })
            .collect();
        keys.sort_unstable();
        keys
    };
    let mut conversation: Vec<String> = names::CONVERSATION_FIELDS
        .iter()
        .map(|f| f.name.to_owned())
        .collect();
    conversation.sort_unstable();
    assert_eq!(keys("conversation"), conversation);
    let mut codes: Vec<String> = ReasonCode::ALL.iter().map(|c| c.to_string()).collect();
    codes.sort_unstable();
    assert_eq!(keys("signals"), codes);
}

/// Every policy file in the repository passes the check.
#[test]
fn the_shipped_policies_pass_the_check() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut checked = 0;
    let mut dirs = vec![std::path::PathBuf::from(root).join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml") => std::fs::read_to_string(&path).expect("readable"),
                _ => continue,
            };
            // Policy files, not scenarios.
            if !text.contains("trigger_min_score") {
                continue;
            }
            Policy::parse(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    Policy::builtin().expect("the built-in policy passes");
    eprintln!("{checked} policy files under examples/ checked, and the built-in one");
}
