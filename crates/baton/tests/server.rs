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
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(format!("sqlite://{}", db.display()))
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
        vec!["handoff_requested", "queued", "offered", "assigned", "resolved"]
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
