//! The real server on port 0 with a fresh SQLite file, driven over HTTP.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `baton serve` on a free port.
struct Server {
    /// The process.
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl Server {
    /// Starts `baton serve` on port 0 against the SQLite file at `db`, and waits for its
    /// "listening on" line.
    fn start(db: &Path) -> Server {
        Server::start_with(db, None)
    }

    /// As [`Server::start`], with a policy file.
    fn start_with(db: &Path, policy: Option<&Path>) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(format!("sqlite://{}", db.display()));
        if let Some(p) = policy {
            command.arg("--policy").arg(p);
        }
        let mut child = command
            .env("BATON_LOG", "warn")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn baton serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let started = Instant::now();
        let base = loop {
            let line = lines
                .next()
                .expect("server printed its address")
                .expect("read stderr");
            if let Some(addr) = line.strip_prefix("baton: listening on ") {
                break addr.trim().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    /// Kills the process with SIGKILL (no shutdown path runs) and waits for it.
    fn kill9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    let r = client.get(url).send().await.expect("request");
    r.json().await.expect("json body")
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

#[tokio::test]
async fn from_ai_turns_to_escalation_queue_claim_reply_and_resolve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("baton.db"));
    let c = reqwest::Client::new();
    let b = &server.base;

    let health = c.get(format!("{b}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let spec: Value = get(&c, format!("{b}/openapi.json")).await;
    assert_eq!(spec["openapi"], "3.1.0");

    let (s, created) = post(
        &c,
        format!("{b}/v1/conversations"),
        json!({"id": "c-1", "customer": {"name": "Dana", "tier": "standard"}}),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let (s, _) = post(
        &c,
        format!("{b}/v1/agents"),
        json!({"id": "ana", "name": "Ana", "skills": ["billing"], "capacity": 1}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &c,
        format!("{b}/v1/agents"),
        json!({"id": "bo", "name": "Bo", "skills": ["billing"], "capacity": 1}),
    )
    .await;
    assert_eq!(s, 200);

    let turns = format!("{b}/v1/conversations/c-1/turns");
    let (_, first) = post(
        &c,
        turns.clone(),
        json!({"role": "customer", "text": "hi, I have a question about my bill"}),
    )
    .await;
    assert_eq!(first["state"], "ai_active");
    assert_eq!(first["ai_may_reply"], true);
    let (_, ai) = post(&c, turns.clone(), json!({"role": "ai", "text": "Sure! Bills are sent on the 1st of each month.", "ai_confidence": 0.35, "kb_similarity": 0.3})).await;
    assert!(
        ai["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .any(|s| s["code"] == "low_confidence"),
        "{ai}"
    );
    let (_, esc) = post(&c, turns.clone(), json!({"role": "customer", "text": "that's not what I asked. I was charged twice for order 8812!!", "client_turn_id": "t-3"})).await;
    assert_eq!(esc["escalate"], true, "{esc}");
    assert_eq!(esc["mode"], "escalate");
    // Ana has been free longest: it is offered to her at once.
    assert_eq!(esc["state"], "offered");
    assert_eq!(esc["agent_id"], "ana");
    assert_eq!(esc["queue"], "billing");
    assert_eq!(esc["position"], 1);
    assert!(esc["estimated_wait_seconds"].as_u64().expect("wait") >= 60);
    let message = esc["customer_message"].as_str().expect("message");
    assert!(
        message.contains("number 1") && message.contains("whole conversation"),
        "{message}"
    );
    assert_eq!(esc["brief"]["entities"][0]["value"], "8812");
    assert!(esc["reasons"]
        .as_array()
        .expect("reasons")
        .contains(&json!("billing_dispute")));

    // A retry with the same client_turn_id returns the same answer and adds no turn.
    let (_, retry) = post(&c, turns.clone(), json!({"role": "customer", "text": "that's not what I asked. I was charged twice for order 8812!!", "client_turn_id": "t-3"})).await;
    assert_eq!(retry, esc);
    let (s, reused) = post(
        &c,
        turns.clone(),
        json!({"role": "customer", "text": "something else", "client_turn_id": "t-3"}),
    )
    .await;
    assert_eq!(
        (s, reused["error"]["code"].as_str()),
        (409, Some("client_turn_id_reused"))
    );

    let brief = get(&c, format!("{b}/v1/conversations/c-1/brief")).await;
    assert_eq!(brief, esc["brief"]);
    let markdown = c
        .get(format!("{b}/v1/conversations/c-1/brief?format=markdown"))
        .send()
        .await
        .expect("markdown");
    assert_eq!(
        markdown.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    let markdown = markdown.text().await.expect("text");
    assert!(markdown.starts_with("# Handoff: Dana (c-1)"), "{markdown}");
    assert!(markdown.contains("- order id: 8812"), "{markdown}");

    let queue: Value = get(&c, format!("{b}/v1/queues/billing")).await;
    assert_eq!(queue["waiting"][0]["conversation_id"], "c-1");
    assert_eq!(queue["waiting"][0]["intent"], "billing_dispute");

    let (s, claimed) = post(
        &c,
        format!("{b}/v1/conversations/c-1/claim"),
        json!({"agent_id": "ana"}),
    )
    .await;
    assert_eq!(s, 200, "{claimed}");
    assert_eq!(claimed["state"], "assigned");
    let (s, second) = post(
        &c,
        format!("{b}/v1/conversations/c-1/claim"),
        json!({"agent_id": "bo"}),
    )
    .await;
    assert_eq!(s, 409, "{second}");
    let (s, locked) = post(
        &c,
        turns.clone(),
        json!({"role": "ai", "text": "Can I help?"}),
    )
    .await;
    assert_eq!(
        (s, locked["error"]["code"].as_str()),
        (409, Some("ai_locked_out"))
    );

    let (s, reply) = post(&c, format!("{b}/v1/conversations/c-1/reply"), json!({"agent_id": "ana", "text": "Hi Dana, I can see the double charge on order 8812. Refunding it now."})).await;
    assert_eq!(s, 200, "{reply}");
    let (s, _) = post(
        &c,
        format!("{b}/v1/conversations/c-1/reply"),
        json!({"agent_id": "bo", "text": "hello"}),
    )
    .await;
    assert_eq!(s, 409);
    let (s, resolved) = post(
        &c,
        format!("{b}/v1/conversations/c-1/resolve"),
        json!({"agent_id": "ana", "disposition": "refund_issued"}),
    )
    .await;
    assert_eq!(s, 200, "{resolved}");

    let conv: Value = get(&c, format!("{b}/v1/conversations/c-1")).await;
    assert_eq!(conv["state"], "resolved");
    assert_eq!(conv["disposition"], "refund_issued");
    assert_eq!(conv["turns"].as_array().expect("turns").len(), 4);
    assert!(conv["turns"][2]["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .any(|s| s["code"] == "billing_dispute"));
    let path: Vec<&str> = conv["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["to_state"].as_str())
        .collect();
    assert_eq!(
        path,
        vec![
            "handoff_requested",
            "queued",
            "offered",
            "assigned",
            "resolved"
        ]
    );
}

#[tokio::test]
async fn bad_input_gets_a_4xx_that_says_what_to_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("baton.db"));
    let c = reqwest::Client::new();
    let b = &server.base;
    post(&c, format!("{b}/v1/conversations"), json!({"id": "c-2"})).await;
    let turns = format!("{b}/v1/conversations/c-2/turns");

    let r = c
        .post(&turns)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_json");

    let cases = [
        (
            format!("{b}/v1/conversations/nope/turns"),
            json!({"role": "customer", "text": "hi"}),
            404,
            "no conversation `nope`",
        ),
        (
            turns.clone(),
            json!({"role": "customer", "text": "   "}),
            422,
            "turn text is empty",
        ),
        (
            turns.clone(),
            json!({"role": "customer", "text": "x".repeat(20_000)}),
            422,
            "over the limit",
        ),
        (
            turns.clone(),
            json!({"role": "robot", "text": "hi"}),
            422,
            "unknown variant `robot`",
        ),
        (
            turns.clone(),
            json!({"role": "ai", "text": "hi", "ai_confidence": 7}),
            422,
            "outside [0, 1]",
        ),
        (
            format!("{b}/v1/conversations/c-2/resolve"),
            json!({"agent_id": "x", "disposition": "done"}),
            409,
            "does not own",
        ),
        (
            format!("{b}/v1/conversations"),
            json!({"id": "c-2"}),
            409,
            "already exists",
        ),
        (
            format!("{b}/v1/conversations"),
            json!({"id": "bad\u{7}id"}),
            400,
            "control characters",
        ),
    ];
    for (url, body, status, needle) in cases {
        let (s, err) = post(&c, url.clone(), body).await;
        assert_eq!(s, status, "{url}: {err}");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(
            message.contains(needle),
            "{url}: `{message}` lacks `{needle}`"
        );
    }
    // Nothing bad was stored, and the server still serves.
    let conv: Value = get(&c, format!("{b}/v1/conversations/c-2")).await;
    assert_eq!(conv["turns"].as_array().expect("turns").len(), 0);
}

#[tokio::test]
async fn every_acknowledged_turn_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let server = Server::start(&db);
    let c = reqwest::Client::new();
    let b = server.base.clone();
    post(&c, format!("{b}/v1/conversations"), json!({"id": "c-9"})).await;

    // Fire turns from a background task and kill the server mid-stream, once some have been
    // acknowledged; the stream is far longer than the time it gets.
    const CAP: usize = 1_000_000;
    let url = format!("{b}/v1/conversations/c-9/turns");
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = progress.clone();
    let sender = tokio::spawn(async move {
        let c = reqwest::Client::new();
        let mut acknowledged = Vec::new();
        for i in 0..CAP {
            let (role, text) = if i % 2 == 0 {
                ("customer", format!("customer message {i}"))
            } else {
                ("ai", format!("ai answer {i}"))
            };
            let body = json!({"role": role, "text": text, "client_turn_id": format!("t{i}")});
            match c.post(&url).json(&body).send().await {
                Ok(r) if r.status() == 200 => acknowledged.push(text),
                _ => break,
            }
            seen.store(acknowledged.len(), std::sync::atomic::Ordering::SeqCst);
        }
        acknowledged
    });
    let started = std::time::Instant::now();
    while progress.load(std::sync::atomic::Ordering::SeqCst) < 25 {
        assert!(
            started.elapsed().as_secs() < 60,
            "the server acknowledged too few turns"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.kill9();
    let acknowledged = sender.await.expect("sender");
    assert!(acknowledged.len() >= 25 && acknowledged.len() < CAP);

    let restarted = Server::start(&db);
    let conv: Value = get(&c, format!("{}/v1/conversations/c-9", restarted.base)).await;
    let stored: Vec<&str> = conv["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .filter_map(|t| t["text"].as_str())
        .collect();
    for text in &acknowledged {
        assert!(
            stored.contains(&text.as_str()),
            "acknowledged turn `{text}` was lost"
        );
    }
    // The restarted server keeps working on the same conversation, after the stored turns.
    let (s, next) = post(
        &c,
        format!("{}/v1/conversations/c-9/turns", restarted.base),
        json!({"role": "customer", "text": "I want a human"}),
    )
    .await;
    assert_eq!(s, 200, "{next}");
    assert_eq!(next["turn"].as_u64(), Some(stored.len() as u64));
    assert_eq!(next["state"], "queued");
}

#[tokio::test]
async fn concurrent_claims_assign_once_and_concurrent_turns_keep_their_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("baton.db"));
    let c = reqwest::Client::new();
    let b = &server.base;
    for agent in ["ana", "bo", "cy", "di"] {
        post(
            &c,
            format!("{b}/v1/agents"),
            json!({"id": agent, "name": agent, "skills": [], "capacity": 5}),
        )
        .await;
    }

    // Twenty conversations ask for a person; four agents race to claim each one.
    for round in 0..20 {
        let id = format!("race-{round}");
        post(&c, format!("{b}/v1/conversations"), json!({"id": id})).await;
        let (_, esc) = post(
            &c,
            format!("{b}/v1/conversations/{id}/turns"),
            json!({"role": "customer", "text": "", "action": "request_human"}),
        )
        .await;
        assert_eq!(esc["state"], "offered", "{esc}");
        let claims = ["ana", "bo", "cy", "di"].map(|agent| {
            let c = c.clone();
            let url = format!("{b}/v1/conversations/{id}/claim");
            tokio::spawn(async move { post(&c, url, json!({"agent_id": agent})).await.0 })
        });
        let mut statuses = Vec::new();
        for claim in claims {
            statuses.push(claim.await.expect("join"));
        }
        statuses.sort_unstable();
        assert_eq!(statuses, vec![200, 409, 409, 409], "round {round}");
    }
    // Capacity holds: five each at most, twenty in all.
    let agents = get(&c, format!("{b}/v1/agents")).await;
    let loads: Vec<u64> = agents["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["assigned"].as_u64().expect("load"))
        .collect();
    assert!(loads.iter().all(|l| *l <= 5), "{loads:?}");
    assert_eq!(loads.iter().sum::<u64>(), 20);

    // Thirty turns sent at once to one conversation: each stored once, numbered 0..30.
    post(&c, format!("{b}/v1/conversations"), json!({"id": "busy"})).await;
    let sends: Vec<_> = (0..30)
        .map(|i| {
            let c = c.clone();
            let url = format!("{b}/v1/conversations/busy/turns");
            tokio::spawn(async move { post(&c, url, json!({"role": "ai", "text": format!("note {i}"), "client_turn_id": format!("n{i}")})).await })
        })
        .collect();
    let mut numbers = Vec::new();
    for s in sends {
        let (status, body) = s.await.expect("join");
        assert_eq!(status, 200, "{body}");
        numbers.push(body["turn"].as_u64().expect("turn"));
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (0..30).collect::<Vec<u64>>());
    let conv = get(&c, format!("{b}/v1/conversations/busy")).await;
    assert_eq!(conv["turns"].as_array().expect("turns").len(), 30);
}

#[tokio::test]
async fn ownership_brief_and_lockout_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let server = Server::start(&db);
    let c = reqwest::Client::new();
    let b = server.base.clone();
    post(
        &c,
        format!("{b}/v1/agents"),
        json!({"id": "ana", "name": "Ana", "skills": ["security"], "capacity": 1}),
    )
    .await;
    post(
        &c,
        format!("{b}/v1/conversations"),
        json!({"id": "r-1", "customer": {"name": "Lee"}}),
    )
    .await;
    let (_, esc) = post(
        &c,
        format!("{b}/v1/conversations/r-1/turns"),
        json!({"role": "customer", "text": "someone hacked my account and changed my email"}),
    )
    .await;
    assert_eq!(esc["queue"], "security", "{esc}");
    let (s, _) = post(
        &c,
        format!("{b}/v1/conversations/r-1/claim"),
        json!({"agent_id": "ana"}),
    )
    .await;
    assert_eq!(s, 200);
    server.kill9();

    let restarted = Server::start(&db);
    let b = restarted.base.clone();
    let (s, locked) = post(
        &c,
        format!("{b}/v1/conversations/r-1/turns"),
        json!({"role": "ai", "text": "Can I help?"}),
    )
    .await;
    assert_eq!(
        (s, locked["error"]["code"].as_str()),
        (409, Some("ai_locked_out")),
        "{locked}"
    );
    let conv = get(&c, format!("{b}/v1/conversations/r-1")).await;
    assert_eq!(conv["agent_id"], "ana");
    assert_eq!(conv["brief"]["intent"], "account_security");
    // Capacity is still counted after the restart: Ana is full.
    post(&c, format!("{b}/v1/conversations"), json!({"id": "r-2"})).await;
    post(
        &c,
        format!("{b}/v1/conversations/r-2/turns"),
        json!({"role": "customer", "text": "my card was stolen"}),
    )
    .await;
    let (s, full) = post(
        &c,
        format!("{b}/v1/conversations/r-2/claim"),
        json!({"agent_id": "ana"}),
    )
    .await;
    assert_eq!(
        (s, full["error"]["code"].as_str()),
        (409, Some("not_eligible")),
        "{full}"
    );
    let (s, back) = post(
        &c,
        format!("{b}/v1/conversations/r-1/handback"),
        json!({"agent_id": "ana"}),
    )
    .await;
    assert_eq!(s, 200, "{back}");
    assert_eq!(back["ai_may_reply"], true);
    let (s, _) = post(
        &c,
        format!("{b}/v1/conversations/r-2/claim"),
        json!({"agent_id": "ana"}),
    )
    .await;
    assert_eq!(s, 200, "capacity freed by the hand back");
}

/// A policy for the routing tests: a human request escalates; `support` offers for 1 s;
/// customers of tier `night` go to `after-hours`, closed all of today (UTC); `fast` has a
/// one-second SLA.
/// A server on a fresh database with [`routing_policy`]; keep the directory alive as long as
/// the server.
fn routing_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = routing_policy(dir.path());
    let server = Server::start_with(&dir.path().join("baton.db"), Some(&policy));
    (dir, server)
}

fn routing_policy(dir: &Path) -> std::path::PathBuf {
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = today as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let all_day = "[\"00:00-24:00\"]";
    let text = format!(
        r#"version: 1
threshold: 0.6
min_threshold: 0.35
assist_threshold: 0.3
min_contribution: 0.05
trigger_min_score: 0.6
triggers: [human_requested]
weights: {{human_requested: 1.0}}
queues:
  - name: after-hours
    when: 'customer.tier == "night"'
    sla_seconds: 600
    hours:
      timezone: UTC
      mon: {all_day}
      tue: {all_day}
      wed: {all_day}
      thu: {all_day}
      fri: {all_day}
      sat: {all_day}
      sun: {all_day}
      holidays: ["{y:04}-{m:02}-{d:02}"]
  - name: fast
    when: 'customer.tier == "fast"'
    sla_seconds: 1
  - name: support
    default: true
    sla_seconds: 300
    offer_timeout_seconds: 1
routing:
  meeting_link: https://example.com/book
messages:
  escalation: "Connecting you: number {{position}}, about {{wait}}."
  handback: "Back with the assistant."
"#
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).expect("write policy");
    path
}

async fn escalate(c: &reqwest::Client, b: &str, id: &str, tier: &str) -> Value {
    let (s, _) = post(
        c,
        format!("{b}/v1/conversations"),
        json!({"id": id, "customer": {"name": id, "tier": tier}}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, esc) = post(
        c,
        format!("{b}/v1/conversations/{id}/turns"),
        json!({"role": "customer", "text": "I want to talk to a person"}),
    )
    .await;
    assert_eq!(s, 200, "{esc}");
    assert_eq!(esc["escalate"], true, "{esc}");
    esc
}

async fn agent(c: &reqwest::Client, b: &str, id: &str, status: &str) {
    let (s, body) = post(
        c,
        format!("{b}/v1/agents"),
        json!({"id": id, "name": id, "capacity": 1, "status": status}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

/// Polls `GET url` until `check` holds (up to 5 s), returning the last body.
async fn until(c: &reqwest::Client, url: String, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let body = get(c, url.clone()).await;
        if check(&body) || started.elapsed() > Duration::from_secs(5) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_vip_conversation_overtakes_a_standard_one() {
    let (_dir, server) = routing_server();
    let c = reqwest::Client::new();
    let b = &server.base;
    agent(&c, b, "ana", "away").await;
    let first = escalate(&c, b, "std", "standard").await;
    assert_eq!(
        (first["state"].as_str(), first["position"].as_u64()),
        (Some("queued"), Some(1))
    );
    let vip = escalate(&c, b, "vip", "vip").await;
    assert_eq!(vip["position"], 1, "{vip}");
    let queue = get(&c, format!("{b}/v1/queues/support")).await;
    let order: Vec<&str> = queue["waiting"]
        .as_array()
        .expect("waiting")
        .iter()
        .filter_map(|w| w["conversation_id"].as_str())
        .collect();
    assert_eq!(order, vec!["vip", "std"]);
    // Explain says why nobody has it yet.
    let why = get(&c, format!("{b}/v1/conversations/std/explain")).await;
    assert_eq!(why["queue"], "support");
    assert_eq!(why["position"], 2);
    assert!(
        why["agents"][0]["why"]
            .as_str()
            .expect("why")
            .contains("away"),
        "{why}"
    );
    // The same from the command line.
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["explain", "std", "--url", b])
        .output()
        .expect("baton explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("waiting in queue `support`") && text.contains("ana: is away"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["explain", "nobody", "--url", b])
        .output()
        .expect("baton explain");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no conversation"));
    // Ana comes online: the VIP is offered to her first.
    let (s, _) = post(
        &c,
        format!("{b}/v1/agents/ana/presence"),
        json!({"status": "online"}),
    )
    .await;
    assert_eq!(s, 200);
    let conv = get(&c, format!("{b}/v1/conversations/vip")).await;
    assert_eq!(
        (conv["state"].as_str(), conv["agent_id"].as_str()),
        (Some("offered"), Some("ana")),
        "{conv}"
    );
    let conv = get(&c, format!("{b}/v1/conversations/std")).await;
    assert_eq!(conv["state"], "queued");
    let queues = get(&c, format!("{b}/v1/queues")).await;
    let support = queues["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["name"] == "support")
        .expect("support")
        .clone();
    assert_eq!(support["waiting"], 2, "{support}");
    assert_eq!(support["agents_online"], 1, "{support}");
}

#[tokio::test]
async fn an_unaccepted_offer_moves_to_the_next_agent() {
    let (_dir, server) = routing_server();
    let c = reqwest::Client::new();
    let b = &server.base;
    agent(&c, b, "ana", "online").await;
    agent(&c, b, "bo", "online").await;
    let esc = escalate(&c, b, "c-1", "standard").await;
    assert_eq!(
        (esc["state"].as_str(), esc["agent_id"].as_str()),
        (Some("offered"), Some("ana")),
        "{esc}"
    );
    // Bo cannot take what is offered to Ana.
    let (s, _) = post(
        &c,
        format!("{b}/v1/conversations/c-1/claim"),
        json!({"agent_id": "bo"}),
    )
    .await;
    assert_eq!(s, 409);
    // Ana lets the offer lapse (1 s): it moves to Bo, and Ana is set away.
    let conv = until(&c, format!("{b}/v1/conversations/c-1"), |v| {
        v["agent_id"] == "bo"
    })
    .await;
    assert_eq!(
        (conv["state"].as_str(), conv["agent_id"].as_str()),
        (Some("offered"), Some("bo")),
        "{conv}"
    );
    let agents = get(&c, format!("{b}/v1/agents")).await;
    let ana = agents["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["id"] == "ana")
        .expect("ana")
        .clone();
    assert_eq!(ana["status"], "away");
    let (s, claimed) = post(
        &c,
        format!("{b}/v1/conversations/c-1/claim"),
        json!({"agent_id": "bo"}),
    )
    .await;
    assert_eq!(
        (s, claimed["state"].as_str()),
        (200, Some("assigned")),
        "{claimed}"
    );
    let reasons: Vec<String> = conv["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("did not accept in time")),
        "{reasons:?}"
    );
    // From `after=0`, the event stream replays the conversation's events with their ids
    // (without `after` it starts from now).
    let mut stream = c
        .get(format!("{b}/v1/events?conversation=c-1&after=0"))
        .send()
        .await
        .expect("events");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("an event within 5 s")
        .expect("read")
        .expect("a chunk");
    let text = String::from_utf8_lossy(&chunk);
    // The first event is the customer's turn; its id resumes a reconnect.
    assert!(
        text.contains("event: turn") && text.contains("id: 1"),
        "{text}"
    );
    // A reconnect that says it saw event 1 gets event 2 first.
    let mut resumed = c
        .get(format!("{b}/v1/events?conversation=c-1"))
        .header("Last-Event-ID", "1")
        .send()
        .await
        .expect("events");
    let chunk = tokio::time::timeout(Duration::from_secs(5), resumed.chunk())
        .await
        .expect("an event within 5 s")
        .expect("read")
        .expect("a chunk");
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.starts_with("id: 2\n") || text.contains("\nid: 2\n"),
        "{text}"
    );
    assert!(!text.contains("id: 1\n"), "{text}");
}

#[tokio::test]
async fn a_closed_queue_offers_the_async_path() {
    let (_dir, server) = routing_server();
    let c = reqwest::Client::new();
    let b = &server.base;
    let esc = escalate(&c, b, "late", "night").await;
    assert_eq!(esc["queue"], "after-hours", "{esc}");
    assert_eq!(esc["queue_open"], false, "{esc}");
    assert!(
        esc["opens_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{esc}"
    );
    assert_eq!(esc["alternatives"], json!(["email", "callback", "meeting"]));
    assert_eq!(esc["meeting_link"], "https://example.com/book");
    let message = esc["customer_message"].as_str().expect("message");
    assert!(
        message.contains("away right now") && message.contains("email, callback, meeting"),
        "{message}"
    );
    let (s, bad) = post(
        &c,
        format!("{b}/v1/conversations/late/followup"),
        json!({"via": "pigeon"}),
    )
    .await;
    assert_eq!(s, 400, "{bad}");
    let (s, done) = post(
        &c,
        format!("{b}/v1/conversations/late/followup"),
        json!({"via": "email", "contact": "late@example.com"}),
    )
    .await;
    assert_eq!(
        (s, done["state"].as_str()),
        (200, Some("async_followup")),
        "{done}"
    );
    let queue = get(&c, format!("{b}/v1/queues/after-hours")).await;
    assert_eq!(queue["waiting"], json!([]));
}

#[tokio::test]
async fn sla_breach_events_fire_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let policy = routing_policy(dir.path());
    let server = Server::start_with(&db, Some(&policy));
    let c = reqwest::Client::new();
    let esc = escalate(&c, &server.base, "slow", "fast").await;
    assert_eq!(esc["queue"], "fast", "{esc}");
    // Down before the one-second SLA runs out, and for longer than it.
    server.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted = Server::start_with(&db, Some(&policy));
    let b = &restarted.base;
    let conv = until(&c, format!("{b}/v1/conversations/slow"), |v| {
        v["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "sla_breach"))
    })
    .await;
    let kinds: Vec<&str> = conv["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.starts_with("sla_"))
        .collect();
    assert_eq!(kinds, vec!["sla_warning", "sla_breach"], "{conv}");
    assert_eq!(conv["sla"][0]["breached"], true);
    // Still waiting, still in routing after the restart.
    let why = get(&c, format!("{b}/v1/conversations/slow/explain")).await;
    assert_eq!(why["state"], "waiting", "{why}");
}

fn baton(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("baton");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    child.wait_with_output().expect("output")
}

/// A server on a fresh database with the account `ana` (an agent with skill `general`); the
/// directory lives as long as the first value.
fn server_with_ana() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    add_account(
        &format!("sqlite://{}", db.display()),
        "ana",
        "agent",
        "general",
    );
    let server = Server::start(&db);
    (dir, server)
}

/// A client signed in to the server at `b` as `id` (the tests' password).
async fn signed_in(b: &str, id: &str) -> reqwest::Client {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let (s, _) = post(
        &c,
        format!("{b}/v1/login"),
        json!({"agent_id": id, "password": "long enough password"}),
    )
    .await;
    assert_eq!(s, 200, "{id} signs in");
    c
}

/// A new API key with scope `bot` on the database at `url`.
fn bot_key(url: &str) -> String {
    let out = baton(
        &[
            "keys",
            "add",
            "--name",
            "bot",
            "--scope",
            "bot",
            "--database-url",
            url,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `baton agents add ID --role ROLE --skills SKILLS` on the database at `url`, with the
/// password "long enough password".
fn add_account(url: &str, id: &str, role: &str, skills: &str) {
    let out = baton(
        &[
            "agents",
            "add",
            id,
            "--name",
            id,
            "--role",
            role,
            "--skills",
            skills,
            "--password-stdin",
            "--database-url",
            url,
        ],
        Some("long enough password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn once_credentials_exist_every_call_says_who_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let url = format!("sqlite://{}", db.display());
    add_account(&url, "ana", "agent", "general");
    let short = baton(
        &[
            "agents",
            "add",
            "x",
            "--name",
            "x",
            "--password-stdin",
            "--database-url",
            &url,
        ],
        Some("short\n"),
    );
    assert_eq!(short.status.code(), Some(1));
    let key = bot_key(&url);
    assert!(key.starts_with("bk_"), "{key}");

    let server = Server::start(&db);
    let b = &server.base;
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(format!("{b}/v1/queues"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = anonymous
        .post(format!("{b}/v1/conversations"))
        .json(&json!({"id": "k-1"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // The bot key opens the bot's side, not the agents'.
    let bot = |req: reqwest::RequestBuilder| req.bearer_auth(&key);
    let r = bot(anonymous.post(format!("{b}/v1/conversations")))
        .json(&json!({"id": "k-1"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let r = bot(anonymous.get(format!("{b}/v1/queues")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let r = anonymous
        .get(format!("{b}/v1/queues"))
        .bearer_auth("bk_wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // An agent signs in with a cookie; a wrong password is refused.
    let agent = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let r = agent
        .post(format!("{b}/v1/login"))
        .json(&json!({"id": "ana", "password": "wrong"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = agent
        .post(format!("{b}/v1/login"))
        .json(&json!({"id": "ana", "password": "long enough password"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        agent
            .get(format!("{b}/v1/queues"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    assert_eq!(
        agent
            .get(format!("{b}/v1/supervisor"))
            .send()
            .await
            .expect("send")
            .status(),
        403
    );
    let r = agent
        .post(format!("{b}/v1/agents/someone-else/presence"))
        .json(&json!({"status": "online"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    agent
        .post(format!("{b}/v1/logout"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        agent
            .get(format!("{b}/v1/queues"))
            .send()
            .await
            .expect("send")
            .status(),
        401
    );

    // A widget token opens its own conversation and no other; it travels in the header or
    // the cookie, never in a URL.
    let (_, one) = post(&anonymous, format!("{b}/widget/api/start"), json!({})).await;
    let (_, two) = post(&anonymous, format!("{b}/widget/api/start"), json!({})).await;
    let token = one["token"].as_str().expect("token");
    let widget = |t: &str| {
        anonymous
            .get(format!("{b}/widget/api/state"))
            .header("x-widget-token", t.to_owned())
            .send()
    };
    let state: Value = widget(token)
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(state["conversation_id"], one["conversation_id"]);
    assert_ne!(state["conversation_id"], two["conversation_id"]);
    assert_eq!(widget("wt_forged").await.expect("send").status(), 401);
    let in_url = anonymous
        .get(format!("{b}/widget/api/state?token={token}"))
        .send()
        .await
        .expect("send");
    assert_eq!(in_url.status(), 401, "a token in the URL opens nothing");
    // A browser keeps it in the cookie the start sets.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let started = browser
        .post(format!("{b}/widget/api/start"))
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    let cookie = started.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/widget"),
        "{cookie}"
    );
    let mine = browser
        .get(format!("{b}/widget/api/state"))
        .send()
        .await
        .expect("send");
    assert_eq!(mine.status(), 200);
    let rate = anonymous
        .post(format!("{b}/widget/api/rate"))
        .header("x-widget-token", token.to_owned())
        .json(&json!({"score": 9}))
        .send()
        .await
        .expect("send");
    assert_eq!(rate.status(), 400);
}

#[tokio::test]
async fn a_transfer_to_a_colleague_waits_for_them() {
    let (_dir, server) = routing_server();
    let c = reqwest::Client::new();
    let b = &server.base;
    agent(&c, b, "ana", "online").await;
    let esc = escalate(&c, b, "t-1", "standard").await;
    assert_eq!(esc["agent_id"], "ana", "{esc}");
    let (s, _) = post(
        &c,
        format!("{b}/v1/conversations/t-1/claim"),
        json!({"agent_id": "ana"}),
    )
    .await;
    assert_eq!(s, 200);
    agent(&c, b, "cy", "online").await;
    agent(&c, b, "bo", "online").await;
    let (s, bad) = post(
        &c,
        format!("{b}/v1/conversations/t-1/transfer"),
        json!({"agent_id": "ana", "queue": "support", "to_agent": "nobody"}),
    )
    .await;
    assert_eq!(s, 404, "{bad}");
    let (s, moved) = post(
        &c,
        format!("{b}/v1/conversations/t-1/transfer"),
        json!({"agent_id": "ana", "queue": "support", "to_agent": "bo"}),
    )
    .await;
    assert_eq!(s, 200, "{moved}");
    // Cy has been free longer, but the transfer names Bo: it is offered to Bo.
    let conv = get(&c, format!("{b}/v1/conversations/t-1")).await;
    assert_eq!(
        (conv["state"].as_str(), conv["agent_id"].as_str()),
        (Some("offered"), Some("bo")),
        "{conv}"
    );
}

/// The event stream's text for `client` from the first event, read for up to a second.
async fn events_seen(client: &reqwest::Client, b: &str) -> String {
    let mut stream = client
        .get(format!("{b}/v1/events?after=0"))
        .send()
        .await
        .expect("events");
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    let until = Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until.into(), stream.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn no_one_speaks_for_another_or_reads_what_is_not_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let url = format!("sqlite://{}", db.display());
    for id in ["ana", "bob"] {
        add_account(&url, id, "agent", "general,billing,support,technical");
    }
    let key = bot_key(&url);
    let server = Server::start(&db);
    let b = server.base.as_str();
    let ana = signed_in(b, "ana").await;
    let bob = signed_in(b, "bob").await;
    let bot = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {key}").parse().expect("header"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let (s, _) = post(
        &ana,
        format!("{b}/v1/agents/ana/presence"),
        json!({"status": "online"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(&bot, format!("{b}/v1/conversations"), json!({"id": "c1"})).await;
    assert_eq!(s, 201);
    let turns = format!("{b}/v1/conversations/c1/turns");
    let (s, answer) = post(
        &bot,
        turns.clone(),
        json!({"role": "customer", "text": "I want to talk to a human now"}),
    )
    .await;
    assert_eq!(
        (s, answer["agent_id"].as_str()),
        (200, Some("ana")),
        "{answer}"
    );
    let (s, _) = post(
        &ana,
        format!("{b}/v1/conversations/c1/claim"),
        json!({"agent_id": "ana"}),
    )
    .await;
    assert_eq!(s, 200);

    // Nobody speaks as Ana but Ana: not a bot, not Bob; Bob writes no customer turns either.
    let as_ana = json!({"role": "agent", "agent_id": "ana", "text": "I am Ana, honestly"});
    let (s, _) = post(&bot, turns.clone(), as_ana.clone()).await;
    assert_eq!(s, 403, "a bot key speaking as an agent");
    let (s, e) = post(&bob, turns.clone(), as_ana.clone()).await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`ana`")),
        "{e}"
    );
    let (s, _) = post(
        &bob,
        turns.clone(),
        json!({"role": "customer", "text": "it was me all along"}),
    )
    .await;
    assert_eq!(s, 403, "an agent posting a customer turn");
    let (s, _) = post(&ana, turns.clone(), as_ana).await;
    assert_eq!(s, 200, "Ana as herself");

    // Ana's note is hers to write and to read; Bob neither writes nor reads on c1.
    let (s, _) = post(
        &ana,
        format!("{b}/v1/conversations/c1/notes"),
        json!({"agent_id": "ana", "text": "secret-note-123"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &bob,
        format!("{b}/v1/conversations/c1/notes"),
        json!({"agent_id": "bob", "text": "hi"}),
    )
    .await;
    assert_eq!(s, 403);
    let read = |c: &reqwest::Client| c.get(format!("{b}/v1/conversations/c1")).send();
    assert_eq!(read(&bob).await.expect("read").status(), 403);
    assert_eq!(read(&ana).await.expect("read").status(), 200);
    // The bot reads the conversation, not the internal note.
    let seen_by_bot = read(&bot).await.expect("read").text().await.expect("text");
    assert!(seen_by_bot.contains("\"c1\"") && !seen_by_bot.contains("secret-note-123"));
    // The event stream follows the same rule.
    let anas = events_seen(&ana, b).await;
    assert!(anas.contains("secret-note-123"), "{anas}");
    let bobs = events_seen(&bob, b).await;
    assert!(!bobs.contains("\"c1\""), "{bobs}");
    let bots = events_seen(&bot, b).await;
    assert!(
        bots.contains("\"c1\"") && !bots.contains("secret-note-123"),
        "{bots}"
    );

    // A page on another site cannot write with Ana's cookie, nor can a non-JSON body.
    let note = |origin: &str, kind: &str| {
        ana.post(format!("{b}/v1/conversations/c1/notes"))
            .header("origin", origin)
            .header("content-type", kind)
            .body(r#"{"agent_id": "ana", "text": "forged"}"#)
            .send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.expect("send").status();
    assert_eq!(
        status(note("http://evil.example", "application/json").await),
        403
    );
    assert_eq!(status(note(b, "text/plain").await), 403);
    assert_eq!(status(note(b, "application/json").await), 200);
    // Every answer carries the browser hardening headers.
    let page = ana.get(format!("{b}/console")).send().await.expect("page");
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    // Once resolved, Ana still reads what she handled; Bob still does not.
    let (s, _) = post(
        &ana,
        format!("{b}/v1/conversations/c1/resolve"),
        json!({"agent_id": "ana", "disposition": "information_given"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(read(&ana).await.expect("read").status(), 200);
    assert_eq!(read(&bob).await.expect("read").status(), 403);
}

#[test]
fn a_fresh_install_refuses_the_network_until_a_credential_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("baton.db").display());
    let serve = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_baton"));
        c.args(["serve", "--listen", "0.0.0.0:0", "--database-url", &url])
            .env("BATON_LOG", "warn")
            .env_remove("BATON_ADMIN_PASSWORD")
            .env_remove("BATON_OPEN_TO_NETWORK");
        c
    };
    let refused = serve().output().expect("run");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no account or key exists yet"), "{stderr}");
    // The first admin from the environment opens it.
    let mut child = serve()
        .env("BATON_ADMIN_PASSWORD", "long enough password")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut said = Vec::new();
    for line in lines {
        let line = line.expect("line");
        let listening = line.starts_with("baton: listening on");
        said.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.iter().any(|l| l.contains("admin `admin` created")),
        "{said:?}"
    );
    assert!(
        said.last()
            .is_some_and(|l| l.starts_with("baton: listening on")),
        "{said:?}"
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_wait_and_the_right_one_still_works() {
    let (_dir, server) = server_with_ana();
    let b = &server.base;
    let c = reqwest::Client::new();
    let login = |password: &str| {
        c.post(format!("{b}/v1/login"))
            .json(&json!({"agent_id": "ana", "password": password}))
            .send()
    };
    // Five are free; then each attempt is held for its wait (1 s, then 2 s) and checked.
    for _ in 0..7 {
        assert_eq!(login("wrong guess").await.expect("send").status(), 401);
    }
    // Now the wait (4 s) is longer than an attempt is held: even the right password is
    // refused, with the time left, and no hash is computed.
    let waiting = login("long enough password").await.expect("send");
    assert_eq!(waiting.status(), 429);
    let seconds: u64 = waiting.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=3).contains(&seconds), "{seconds}");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    assert_eq!(
        login("long enough password").await.expect("send").status(),
        200
    );
    // An unknown account answers as a wrong password does.
    let (s, e) = post(
        &c,
        format!("{b}/v1/login"),
        json!({"agent_id": "nobody", "password": "whatever it is"}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (401, Some("bad_credentials"))
    );
}

#[tokio::test]
async fn a_changed_password_a_revoked_key_and_a_removed_account_take_effect_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let url = format!("sqlite://{}", db.display());
    add_account(&url, "ana", "agent", "general");
    let key = bot_key(&url);
    let server = Server::start(&db);
    let b = &server.base;
    let ana = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let sign_in = |password: &'static str| {
        ana.post(format!("{b}/v1/login"))
            .json(&json!({"agent_id": "ana", "password": password}))
            .send()
    };
    let queues = || ana.get(format!("{b}/v1/queues")).send();
    assert_eq!(
        sign_in("long enough password")
            .await
            .expect("send")
            .status(),
        200
    );
    assert_eq!(queues().await.expect("send").status(), 200);

    let out = baton(
        &[
            "agents",
            "passwd",
            "ana",
            "--password-stdin",
            "--database-url",
            &url,
        ],
        Some("another long password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        queues().await.expect("send").status(),
        401,
        "the old session ended"
    );
    assert_eq!(
        sign_in("long enough password")
            .await
            .expect("send")
            .status(),
        401
    );
    assert_eq!(
        sign_in("another long password")
            .await
            .expect("send")
            .status(),
        200
    );

    // `baton explain` sends a key once the server has credentials.
    let explain = |key: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_baton"));
        c.args(["explain", "a conversation/with a slash", "--url", b])
            .env_remove("BATON_API_KEY");
        if let Some(k) = key {
            c.args(["--api-key", k]);
        }
        let out = c.output().expect("baton explain");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, said) = explain(None);
    assert!(code == Some(1) && said.contains("Bearer"), "{said}");
    let (code, said) = explain(Some(&key));
    assert!(
        code == Some(1) && said.contains("may not"),
        "a bot key: {said}"
    );
    let admin = baton(
        &[
            "keys",
            "add",
            "--name",
            "ops",
            "--scope",
            "admin",
            "--database-url",
            &url,
        ],
        None,
    );
    let admin = String::from_utf8_lossy(&admin.stdout).trim().to_owned();
    let (code, said) = explain(Some(&admin));
    assert!(
        code == Some(1) && said.contains("no conversation `a conversation/with a slash`"),
        "{said}"
    );

    // The key is listed by id (never the key), and revoked by it.
    let listed = baton(&["keys", "list", "--database-url", &url], None);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        !listed.contains(&key),
        "the key itself is never shown: {listed}"
    );
    let id = listed
        .lines()
        .find(|l| l.contains("\tbot\t"))
        .and_then(|l| l.split('\t').next())
        .expect("the bot key's id")
        .to_owned();
    let bot = |k: &str| {
        reqwest::Client::new()
            .get(format!("{b}/v1/conversations/none"))
            .bearer_auth(k.to_owned())
            .send()
    };
    assert_eq!(bot(&key).await.expect("send").status(), 404);
    let out = baton(&["keys", "revoke", &id, "--database-url", &url], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bot(&key).await.expect("send").status(), 401);
    let listed = baton(&["keys", "list", "--database-url", &url], None);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("revoked"));

    // Removing the account ends its session and its sign-in.
    let out = baton(&["agents", "remove", "ana", "--database-url", &url], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(queues().await.expect("send").status(), 401);
    assert_eq!(
        sign_in("another long password")
            .await
            .expect("send")
            .status(),
        401
    );
    let listed = baton(&["agents", "list", "--database-url", &url], None);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("ana"));
    let out = baton(&["agents", "remove", "ana", "--database-url", &url], None);
    assert_eq!(out.status.code(), Some(1), "an unknown account is an error");

    // A supervisor lists who did what: the changes above, the sign-ins, and her own read of
    // a conversation that is not hers.
    add_account(&url, "sue", "supervisor", "general");
    let sue = signed_in(b, "sue").await;
    let (s, _) = post(
        &reqwest::Client::new(),
        format!("{b}/v1/conversations"),
        json!({"id": "someone-elses"}),
    )
    .await;
    assert_eq!(s, 401);
    let created = reqwest::Client::new()
        .post(format!("{b}/v1/conversations"))
        .bearer_auth(&admin)
        .json(&json!({"id": "someone-elses"}))
        .send()
        .await
        .expect("send");
    assert_eq!(created.status(), 201);
    let read = sue
        .get(format!("{b}/v1/conversations/someone-elses"))
        .send()
        .await
        .expect("send");
    assert_eq!(read.status(), 200);
    let log = get(&sue, format!("{b}/v1/audit")).await;
    let seen: Vec<(String, String)> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["subject"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("read", "someone-elses"),
        ("sign_in", "sue"),
        ("account_removed", "ana"),
        ("key_revoked", id.as_str()),
        ("sign_in_failed", "ana"),
        ("account_changed", "ana"),
        ("key_created", id.as_str()),
    ] {
        assert!(
            seen.iter()
                .any(|(a, s)| (a.as_str(), s.as_str()) == expected),
            "{expected:?} not in {seen:?}"
        );
    }
    assert_eq!(
        seen.first().map(|(a, _)| a.as_str()),
        Some("read"),
        "newest first"
    );
}

#[tokio::test]
async fn an_address_cannot_start_widget_conversations_without_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("baton.db"));
    let b = &server.base;
    let c = reqwest::Client::new();
    let mut answered = std::collections::BTreeMap::new();
    let mut retry_after = None;
    for _ in 0..1_000 {
        let r = c
            .post(format!("{b}/widget/api/start"))
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").cloned();
        }
        *answered.entry(r.status().as_u16()).or_insert(0) += 1;
    }
    // A burst of ten, then about one every two seconds: a handful more at most.
    let started = answered.get(&200).copied().unwrap_or(0);
    assert!((10..=15).contains(&started), "{answered:?}");
    assert_eq!(
        answered.get(&429).copied().unwrap_or(0),
        1_000 - started,
        "{answered:?}"
    );
    assert!(retry_after.is_some(), "a 429 says when to come back");
}

#[tokio::test]
async fn callers_without_credentials_and_busy_sessions_are_slowed() {
    let (_dir, server) = server_with_ana();
    let b = &server.base;
    let count = |c: reqwest::Client, n: usize, key: Option<&'static str>| async move {
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..n {
            let mut r = c.get(format!("{b}/v1/queues"));
            if let Some(k) = key {
                r = r.bearer_auth(k);
            }
            let status = r.send().await.expect("send").status().as_u16();
            *seen.entry(status).or_insert(0) += 1;
        }
        seen
    };
    // Guessing keys: 401s until the address's allowance runs out, then 429s.
    let guesses = count(reqwest::Client::new(), 300, Some("bk_guess")).await;
    assert!(guesses.get(&401).is_some_and(|n| *n >= 50), "{guesses:?}");
    assert!(guesses.get(&429).is_some_and(|n| *n >= 100), "{guesses:?}");
    // A signed-in person: 20 a second, in bursts of 100.
    let busy = count(signed_in(b, "ana").await, 500, None).await;
    assert!(busy.get(&200).is_some_and(|n| *n >= 100), "{busy:?}");
    assert!(busy.get(&429).is_some_and(|n| *n >= 100), "{busy:?}");
}

#[tokio::test]
async fn an_admin_manages_accounts_and_keys_over_the_api() {
    let (dir, server) = server_with_ana();
    let url = format!("sqlite://{}", dir.path().join("baton.db").display());
    let b = server.base.as_str();
    let ana = signed_in(b, "ana").await;
    let (s, _) = post(
        &ana,
        format!("{b}/v1/keys"),
        json!({"name": "x", "scopes": ["bot"]}),
    )
    .await;
    assert_eq!(s, 403, "an agent manages no keys");
    // The first admin comes from the command line; from then on, the API.
    let (s, _) = post(
        &ana,
        format!("{b}/v1/accounts"),
        json!({"id": "x", "password": "long enough password"}),
    )
    .await;
    assert_eq!(s, 403);
    add_account(&url, "root", "admin", "general");
    let root = signed_in(b, "root").await;
    let (s, bo) = post(
        &root,
        format!("{b}/v1/accounts"),
        json!({"id": "bo", "password": "bo's long password", "role": "supervisor"}),
    )
    .await;
    assert_eq!((s, bo["role"].as_str()), (200, Some("supervisor")), "{bo}");
    let (s, e) = post(
        &root,
        format!("{b}/v1/accounts"),
        json!({"id": "cy", "password": "short"}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    let accounts = get(&root, format!("{b}/v1/accounts")).await;
    let ids: Vec<&str> = accounts["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["ana", "bo", "root"]);
    let (s, key) = post(
        &root,
        format!("{b}/v1/keys"),
        json!({"name": "the bot", "scopes": ["bot"]}),
    )
    .await;
    assert_eq!(s, 200, "{key}");
    let secret = key["key"].as_str().expect("key").to_owned();
    let id = key["id"].as_str().expect("id").to_owned();
    let listed = get(&root, format!("{b}/v1/keys")).await;
    assert!(
        !listed.to_string().contains(&secret),
        "the key is shown once: {listed}"
    );
    let with_key = || {
        reqwest::Client::new()
            .get(format!("{b}/v1/conversations/none"))
            .bearer_auth(secret.clone())
            .send()
    };
    assert_eq!(with_key().await.expect("send").status(), 404);
    let (s, _) = post(&root, format!("{b}/v1/keys/{id}/revoke"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(with_key().await.expect("send").status(), 401);
    let (s, _) = post(&root, format!("{b}/v1/keys/nokey/revoke"), json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = post(&root, format!("{b}/v1/accounts/ana/remove"), json!({})).await;
    assert_eq!(s, 200);
    let r = ana
        .get(format!("{b}/v1/queues"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "Ana's session ended with her account");
    let log = get(&root, format!("{b}/v1/audit")).await.to_string();
    assert!(
        log.contains(&format!("\"key:{id}\"")) && log.contains("key_used"),
        "the key's use is audited: {log}"
    );
    for action in [
        "key_created",
        "key_revoked",
        "account_removed",
        "account_changed",
    ] {
        assert!(log.contains(action), "{action}: {log}");
    }
}
