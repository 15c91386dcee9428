//! The CLI contracts of CONTRACTS.md, on the real binary and the shipped examples.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

fn baton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .output()
        .expect("run baton")
}

fn examples(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .display()
        .to_string()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn detect_writes_one_line_per_input_line_in_order() {
    let input = examples("bitext_utterances.jsonl");
    let out = baton(&["detect", &input]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<Value> = std::fs::read_to_string(&input)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let got = lines(&out);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g["id"], e["id"]);
        let keys: Vec<&str> = g
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            vec!["escalate", "id", "mode", "reasons", "score", "signals"]
        );
        let score = g["score"].as_f64().expect("score");
        assert!((0.0..=1.0).contains(&score));
        for s in g["signals"].as_array().expect("signals") {
            assert!(s["score"].as_f64().expect("score") > 0.0);
            assert!(s["code"].is_string() && s["evidence"].is_string());
        }
        if g["escalate"] == true {
            assert_eq!(g["mode"], "escalate");
        }
    }
    // Every labelled explicit request for a person in the shipped sample is caught.
    let missed: Vec<&Value> = got
        .iter()
        .zip(&expected)
        .filter(|(_, e)| {
            e["labels"]
                .as_array()
                .is_some_and(|l| l.contains(&Value::from("human_requested")))
        })
        .filter(|(g, _)| g["escalate"] != true)
        .map(|(_, e)| &e["text"])
        .collect();
    assert!(missed.is_empty(), "missed: {missed:?}");
    let requests = expected
        .iter()
        .filter(|e| {
            e["labels"]
                .as_array()
                .is_some_and(|l| l.contains(&Value::from("human_requested")))
        })
        .count();
    assert!(
        requests >= 8,
        "the sample holds {requests} labelled requests"
    );
}

#[test]
fn detect_stats_reports_throughput_on_stderr_and_leaves_stdout_alone() {
    let input = examples("bitext_utterances.jsonl");
    let plain = baton(&["detect", &input]);
    let with_stats = baton(&["detect", "--stats", &input]);
    assert!(with_stats.status.success());
    assert_eq!(plain.stdout, with_stats.stdout);
    let stderr = String::from_utf8_lossy(&with_stats.stderr);
    let count = lines(&plain).len();
    assert!(
        stderr.starts_with(&format!("{count} utterances in ")),
        "{stderr}"
    );
    assert!(stderr.contains("/s in all") && stderr.contains("detection and decision alone"));
}

#[test]
fn detect_accepts_the_contract_example_and_customer_attributes() {
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(file, r#"{{"id": "u-17", "text": "I want to speak to a real person", "labels": ["human_requested"]}}"#).expect("write");
    writeln!(
        file,
        r#"{{"id": 18, "text": "hello there", "customer": {{"tier": "vip"}}}}"#
    )
    .expect("write");
    let out = baton(&["detect", file.path().to_str().expect("path")]);
    let got = lines(&out);
    assert_eq!(got[0]["id"], "u-17");
    assert_eq!(got[0]["reasons"][0], "human_requested");
    let evidence = got[0]["signals"][0]["evidence"].as_str().expect("evidence");
    assert!(evidence.contains("speak to a real person"), "{evidence}");
    assert_eq!(got[1]["id"], 18);
    assert_eq!(got[1]["escalate"], false);
    assert_eq!(got[1]["signals"][0]["code"], "vip_customer");
}

#[test]
fn replay_writes_one_line_per_turn_with_a_brief_where_the_handoff_starts() {
    let input = examples("conversations.jsonl");
    let out = baton(&["replay", &input]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conversations: Vec<Value> = std::fs::read_to_string(&input)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let total_turns: usize = conversations
        .iter()
        .map(|c| c["turns"].as_array().expect("turns").len())
        .sum();
    let got = lines(&out);
    assert_eq!(got.len(), total_turns);
    let mut i = 0;
    let mut briefs = 0;
    for c in &conversations {
        let mut escalated = false;
        for (n, _) in c["turns"].as_array().expect("turns").iter().enumerate() {
            let line = &got[i];
            i += 1;
            assert_eq!(line["conversation_id"], c["id"]);
            assert_eq!(line["turn"], n);
            let has_brief = line.get("brief").is_some();
            assert_eq!(has_brief, line["escalate"] == true && !escalated, "{line}");
            assert!(
                line.get("queue").is_some(),
                "`queue` is always written: {line}"
            );
            if has_brief {
                escalated = true;
                briefs += 1;
                assert_eq!(line["state"], "queued");
                assert!(line["queue"].is_string());
                assert_eq!(line["brief"]["schema_version"], "1.0");
            } else if escalated {
                assert_ne!(
                    line["state"], "ai_active",
                    "after a handoff the state stays in the handoff states"
                );
            }
        }
    }
    assert!(
        briefs >= 5,
        "only {briefs} handoffs in the shipped conversations"
    );
    // It ends with a paragraph on stderr: how many, how many handed over, and why.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = format!(
        "{} conversations ({total_turns} turns) replayed; {briefs} handed to a person",
        conversations.len()
    );
    assert!(stderr.contains(&summary), "{stderr}");
    assert!(stderr.contains("by reason: "), "{stderr}");
}

#[test]
fn exit_codes_follow_the_contract() {
    let out = baton(&["replay"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    let out = baton(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "unknown command");

    let mut bad = tempfile::NamedTempFile::new().expect("temp");
    writeln!(bad, r#"{{"id": "ok", "text": "hello"}}"#).expect("write");
    writeln!(bad, r#"{{"id": "broken", "text": }}"#).expect("write");
    let out = baton(&["detect", bad.path().to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":2:"), "names the line: {stderr}");
    assert_eq!(
        lines(&out).len(),
        1,
        "the good line before the bad one is still written"
    );

    let out = baton(&["detect", "/no/such/file.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_reports_every_policy_error_with_position_and_hint() {
    let default = baton(&["check", "--print-default"]);
    assert!(default.status.success());
    let text = String::from_utf8(default.stdout).expect("utf-8");
    let mut good = tempfile::NamedTempFile::new().expect("temp");
    good.write_all(text.as_bytes()).expect("write");
    let out = baton(&["check", good.path().to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let broken = text
        .replace("  anger: 0.3", "  angr: 0.3")
        .replace("threshold: 0.6", "threshold: 6");
    let mut bad = tempfile::NamedTempFile::new().expect("temp");
    bad.write_all(broken.as_bytes()).expect("write");
    let out = baton(&["check", bad.path().to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean `anger`?"), "{stderr}");
    assert!(stderr.contains("6 is outside [0, 1]"), "{stderr}");
    assert!(stderr.contains("2 errors in policy"), "{stderr}");
    let line = broken
        .lines()
        .position(|l| l.contains("angr"))
        .expect("line")
        + 1;
    assert!(stderr.contains(&format!(":{line}:3:")), "{stderr}");
}

#[test]
fn replay_accepts_any_contract_shaped_input() {
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(file, r#"{{"id": 17, "turns": [{{"role": "customer", "text": "hi"}}, {{"role": "customer", "text": ""}}]}}"#).expect("write");
    writeln!(file, r#"{{"id": "tenant/conv 18", "turns": [{{"role": "agent", "text": "hello"}}, {{"role": "ai", "text": "ok", "extra": true}}]}}"#).expect("write");
    writeln!(file, r#"{{"id": "empty", "turns": []}}"#).expect("write");
    let out = baton(&["replay", file.path().to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0]["conversation_id"], 17);
    assert_eq!(got[1]["turn"], 1);
    assert_eq!(got[1]["escalate"], false);
    assert_eq!(got[2]["conversation_id"], "tenant/conv 18");
}

#[test]
fn replay_follows_a_handoff_the_transcript_records_and_keeps_a_repeated_id_apart() {
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(file, r#"{{"id": "h1", "turns": [{{"role": "customer", "text": "I want to talk to a real person now"}}, {{"role": "agent", "text": "Hi, Bo here", "agent_id": "bo"}}, {{"role": "customer", "text": "thanks"}}, {{"role": "ai", "text": "(an AI line the transcript kept)"}}]}}"#).expect("write");
    let out = baton(&["replay", file.path().to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states: Vec<Value> = lines(&out).iter().map(|l| l["state"].clone()).collect();
    assert_eq!(states, ["queued", "assigned", "assigned", "assigned"]);
    // The same id again is a conversation of its own, echoed as given.
    writeln!(
        file,
        r#"{{"id": "h1", "turns": [{{"role": "customer", "text": "hello"}}]}}"#
    )
    .expect("write");
    let out = baton(&["replay", file.path().to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(got.len(), 5);
    assert_eq!(got[4]["conversation_id"], "h1");
    assert_eq!(
        (got[4]["turn"].as_u64(), got[4]["state"].as_str()),
        (Some(0), Some("ai_active"))
    );
}

#[test]
fn a_knowledge_base_flags_questions_no_article_covers() {
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(
        file,
        r#"{{"id": 1, "text": "how long does express shipping take"}}"#
    )
    .expect("w");
    writeln!(
        file,
        r#"{{"id": 2, "text": "can you book me a table for two at an italian restaurant tonight"}}"#
    )
    .expect("w");
    let path = file.path().to_str().expect("path");
    let out = baton(&["detect", "--kb", &examples("kb"), path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    let low = |line: &Value| {
        line["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .any(|s| s["code"] == "low_confidence")
    };
    assert!(!low(&got[0]), "{}", got[0]);
    assert!(low(&got[1]), "{}", got[1]);
    // Without a knowledge base, nothing is judged against one.
    let without = lines(&baton(&["detect", path]));
    assert!(!low(&without[1]), "{}", without[1]);

    let missing = baton(&["detect", "--kb", "/nonexistent/kb", path]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("knowledge base"));
}

#[test]
fn eval_reports_per_code_figures_for_a_labelled_file() {
    let out = baton(&["eval", "--json", &examples("bitext_utterances.jsonl")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["rows"], 216);
    let human = &report["codes"]["human_requested"];
    assert_eq!(human["support"], 8);
    assert!(human["f1"].as_f64().expect("f1") > 0.5, "{human}");
    assert!(report["escalation"]["support"].as_u64().expect("support") > 0);

    let mut bad = tempfile::NamedTempFile::new().expect("temp");
    writeln!(bad, r#"{{"id": 1, "text": "hi", "labels": ["refnud"]}}"#).expect("w");
    let out = baton(&["eval", bad.path().to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":1:") && err.contains("refnud"), "{err}");
}

#[test]
fn eval_times_escalations_in_labelled_conversations() {
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(
        file,
        r#"{{"id": "c1", "rating": 1, "turns": [{{"role": "customer", "text": "where is my parcel", "satisfaction": 3}}, {{"role": "ai", "text": "It is on its way."}}, {{"role": "customer", "text": "that is not what I asked", "satisfaction": 2}}, {{"role": "ai", "text": "It is on its way."}}, {{"role": "customer", "text": "I said that is wrong, get me a human", "satisfaction": 1}}]}}"#
    )
    .expect("w");
    writeln!(
        file,
        r#"{{"id": "c2", "annotator_ratings": [5, 4], "turns": [{{"role": "customer", "text": "what time do you open", "annotator_ratings": [4, 4]}}, {{"role": "ai", "text": "At nine."}}, {{"role": "customer", "text": "great, thanks", "annotator_ratings": [5, 2]}}]}}"#
    )
    .expect("w");
    let out = baton(&["eval", "--json", file.path().to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["dialogues"], 2);
    assert_eq!(r["with_trigger"], 1);
    assert_eq!(r["at_dissatisfaction"], 1, "{r}");
    assert_eq!(r["good"], 1);
    assert_eq!(r["needless"], 0);
    // c2's annotators: two pairs, neither with two low turns of its own.
    assert_eq!(r["annotators"]["pairs"], 2, "{r}");
    assert_eq!(r["annotators"]["two_in_a_row"]["needless"], 0, "{r}");
    assert_eq!(r["annotators"]["first_dissatisfied"]["needless"], 1, "{r}");
}
