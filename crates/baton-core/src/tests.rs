//! The service on a real SQLite store, on simulated time.

use super::*;
use async_trait::async_trait;
use baton_policy::Policy;
use baton_store::{Pending, Result as StoreResult};
use std::sync::atomic::AtomicBool;

/// A store that refuses writes while `failing` is set, as a full disk would.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
}

#[async_trait]
impl Store for Flaky {
    fn submit(&self, change: Change) -> Pending {
        if self.failing.load(Ordering::Acquire) && !change.is_empty() {
            return Box::pin(async { Err(StoreError::Unavailable("disk full".into())) });
        }
        self.inner.submit(change)
    }
    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<ConversationRecord>> {
        self.inner.conversation(id).await
    }
    async fn turns(&self, id: &ConversationId) -> StoreResult<Vec<TurnRecord>> {
        self.inner.turns(id).await
    }
    async fn turn_by_client_id(
        &self,
        id: &ConversationId,
        client: &str,
    ) -> StoreResult<Option<(Turn, serde_json::Value)>> {
        self.inner.turn_by_client_id(id, client).await
    }
    async fn events(&self, id: &ConversationId) -> StoreResult<Vec<EventRecord>> {
        self.inner.events(id).await
    }
    async fn events_after(
        &self,
        after: i64,
        conversation: Option<&ConversationId>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        self.inner.events_after(after, conversation, limit).await
    }
    async fn last_event_id(&self) -> StoreResult<i64> {
        self.inner.last_event_id().await
    }
    async fn agent_conversations(&self, agent: &AgentId) -> StoreResult<Vec<ConversationId>> {
        self.inner.agent_conversations(agent).await
    }
    async fn waiting_records(&self, queue: &QueueName) -> StoreResult<Vec<ConversationRecord>> {
        self.inner.waiting_records(queue).await
    }
    async fn routing_records(&self) -> StoreResult<Vec<ConversationRecord>> {
        self.inner.routing_records().await
    }
    async fn recent_escalations(&self, limit: u32) -> StoreResult<Vec<ConversationRecord>> {
        self.inner.recent_escalations(limit).await
    }
    async fn answered_since(&self, q: &QueueName, since: i64, sla: i64) -> StoreResult<(u64, u64)> {
        self.inner.answered_since(q, since, sla).await
    }
    async fn handle_time(&self, queue: &QueueName) -> StoreResult<(Option<f64>, i64)> {
        self.inner.handle_time(queue).await
    }
    async fn slas(&self, id: &ConversationId) -> StoreResult<Vec<SlaTimer>> {
        self.inner.slas(id).await
    }
    async fn running_slas(&self) -> StoreResult<Vec<SlaTimer>> {
        self.inner.running_slas().await
    }
    async fn open_sla_breaches(&self) -> StoreResult<Vec<SlaTimer>> {
        self.inner.open_sla_breaches().await
    }
    async fn agents(&self) -> StoreResult<Vec<Agent>> {
        self.inner.agents().await
    }
    async fn agent(&self, id: &AgentId) -> StoreResult<Option<Agent>> {
        self.inner.agent(id).await
    }
    async fn agent_loads(&self) -> StoreResult<HashMap<AgentId, u32>> {
        self.inner.agent_loads().await
    }
    async fn upsert_user(&self, id: &str, hash: &str, role: AccountRole) -> StoreResult<()> {
        self.inner.upsert_user(id, hash, role).await
    }
    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.inner.user(id).await
    }
    async fn has_credentials(&self) -> StoreResult<bool> {
        self.inner.has_credentials().await
    }
    async fn create_session(&self, token: &str, user: &str, expires: i64) -> StoreResult<()> {
        self.inner.create_session(token, user, expires).await
    }
    async fn session_user(&self, token: &str, now: i64) -> StoreResult<Option<User>> {
        self.inner.session_user(token, now).await
    }
    async fn delete_session(&self, token: &str) -> StoreResult<()> {
        self.inner.delete_session(token).await
    }
    async fn create_api_key(
        &self,
        id: &str,
        hash: &str,
        name: &str,
        scopes: &[String],
    ) -> StoreResult<()> {
        self.inner.create_api_key(id, hash, name, scopes).await
    }
    async fn api_key_scopes(&self, hash: &str) -> StoreResult<Option<Vec<String>>> {
        self.inner.api_key_scopes(hash).await
    }
    async fn create_widget_token(
        &self,
        token: &str,
        conversation: &ConversationId,
    ) -> StoreResult<()> {
        self.inner.create_widget_token(token, conversation).await
    }
    async fn widget_conversation(&self, token: &str) -> StoreResult<Option<ConversationId>> {
        self.inner.widget_conversation(token).await
    }
    async fn users(&self) -> StoreResult<Vec<User>> {
        self.inner.users().await
    }
    async fn delete_user(&self, id: &str) -> StoreResult<()> {
        self.inner.delete_user(id).await
    }
    async fn api_keys(&self) -> StoreResult<Vec<baton_store::ApiKey>> {
        self.inner.api_keys().await
    }
    async fn revoke_api_key(&self, id: &str, at: i64) -> StoreResult<()> {
        self.inner.revoke_api_key(id, at).await
    }
    async fn record_audit(&self, entry: baton_store::AuditEntry) -> StoreResult<()> {
        self.inner.record_audit(entry).await
    }
    async fn audit_log(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<baton_store::AuditRecord>> {
        self.inner.audit_log(before, limit).await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

struct Fixture {
    service: Arc<Service>,
    clock: Arc<ManualClock>,
    store: Arc<Flaky>,
    url: String,
    _dir: tempfile::TempDir,
}

const START: Millis = 1_800_000_000_000;

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Arc::new(Flaky {
        inner: baton_store::connect(&url).await.expect("store"),
        failing: AtomicBool::new(false),
    });
    let clock = Arc::new(ManualClock::new(START));
    let service = Service::open(engine(), store.clone(), clock.clone(), 16)
        .await
        .expect("service");
    Fixture {
        service,
        clock,
        store,
        url,
        _dir: dir,
    }
}

fn engine() -> Engine {
    Engine::new(Policy::builtin().expect("policy"))
}

fn id(s: &str) -> ConversationId {
    ConversationId::parse(s.to_owned()).expect("id")
}

fn agent(name: &str) -> Agent {
    serde_json::from_value(serde_json::json!({
        "id": name, "name": name, "skills": ["billing", "general", "support", "technical", "vip"], "capacity": 2
    }))
    .expect("agent")
}

fn ask_for_human() -> Turn {
    let mut t = Turn::new(Role::Customer, "").expect("turn");
    t.action = Some(baton_domain::TurnAction::RequestHuman);
    t
}

async fn escalated(f: &Fixture, name: &str) -> TurnAnswer {
    f.service
        .create_conversation(&Actor::Open, Some(id(name)), Customer::default(), None)
        .await
        .expect("create");
    f.service
        .post_turn(&Actor::Open, id(name), ask_for_human())
        .await
        .expect("turn")
}

#[tokio::test]
async fn an_escalation_is_one_change_with_its_sla_timer_and_survives_a_restart() {
    let f = fixture().await;
    let answer = escalated(&f, "c1").await;
    assert!(answer.escalate);
    assert_eq!(answer.state, HandoffState::Queued);
    assert_eq!(answer.position, Some(1));
    let slas = f.store.slas(&id("c1")).await.expect("slas");
    assert_eq!(slas.len(), 1, "{slas:?}");
    assert_eq!(slas[0].kind, SlaKind::FirstResponse);
    f.service.audit().await.expect("agree");
    f.service.shutdown().await;
    // A new node on the same file: the conversation is back in line with its timer.
    let store = baton_store::connect(&f.url).await.expect("reopen");
    let service = Service::open(engine(), store, f.clock.clone(), 16)
        .await
        .expect("service");
    assert_eq!(service.wait(&id("c1")).await.map(|(p, _)| p), Some(1));
    service.audit().await.expect("agree after restart");
    // The retry of the same turn gets the stored answer and adds nothing.
    let mut retry = ask_for_human();
    retry.client_turn_id = Some("t1".into());
    let first = service
        .post_turn(&Actor::Open, id("c1"), retry.clone())
        .await
        .expect("turn");
    let again = service
        .post_turn(&Actor::Open, id("c1"), retry)
        .await
        .expect("retry");
    assert_eq!(first, again);
    assert_eq!(
        service
            .turns(&Actor::Open, Action::Read, &id("c1"))
            .await
            .expect("turns")
            .len(),
        2
    );
}

#[tokio::test]
async fn offers_expire_and_sla_timers_fire_on_simulated_time() {
    let f = fixture().await;
    f.service
        .upsert_agent(&Actor::Open, agent("ana"))
        .await
        .expect("agent");
    let answer = escalated(&f, "c1").await;
    assert_eq!(answer.state, HandoffState::Offered);
    assert_eq!(answer.agent_id.as_deref(), Some("ana"));
    // Offered at once, in the same change that escalated it: it still joined the queue.
    let record = f
        .service
        .conversation(&Actor::Open, Action::Read, &id("c1"))
        .await
        .expect("c1");
    assert_eq!(record.queued_at, Some(START), "{record:?}");
    // Nothing is due yet.
    f.service.tick().await.expect("tick");
    assert_eq!(
        f.service
            .conversation(&Actor::Open, Action::Read, &id("c1"))
            .await
            .expect("c")
            .state,
        HandoffState::Offered
    );
    // Past the offer's deadline: back in the queue (ana is set away for not answering).
    f.clock.advance(10 * 60 * 1000);
    f.service.tick().await.expect("tick");
    let record = f
        .service
        .conversation(&Actor::Open, Action::Read, &id("c1"))
        .await
        .expect("c");
    assert_eq!(record.state, HandoffState::Queued, "{record:?}");
    // Far past the SLA: warning and breach, each once, also across further ticks.
    f.clock.advance(24 * 3600 * 1000);
    f.service.tick().await.expect("tick");
    f.service.tick().await.expect("tick");
    let kinds: Vec<EventKind> = f
        .store
        .events(&id("c1"))
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| matches!(k, EventKind::SlaWarning | EventKind::SlaBreach))
        .collect();
    assert_eq!(kinds, vec![EventKind::SlaWarning, EventKind::SlaBreach]);
    f.service.audit().await.expect("agree");
}

#[tokio::test]
async fn a_failed_write_is_not_acknowledged_and_memory_follows_the_store() {
    let f = fixture().await;
    f.service
        .upsert_agent(&Actor::Open, agent("ana"))
        .await
        .expect("agent");
    f.service
        .create_conversation(&Actor::Open, Some(id("c1")), Customer::default(), None)
        .await
        .expect("create");
    f.store.failing.store(true, Ordering::Release);
    let refused = f
        .service
        .post_turn(&Actor::Open, id("c1"), ask_for_human())
        .await;
    assert!(
        matches!(refused, Err(CoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(f.store.turns(&id("c1")).await.expect("turns").is_empty());
    f.service
        .audit()
        .await
        .expect("routing rebuilt from the store");
    // Space returns: the same turn goes through, and routing agrees with the store.
    f.store.failing.store(false, Ordering::Release);
    let answer = f
        .service
        .post_turn(&Actor::Open, id("c1"), ask_for_human())
        .await
        .expect("turn");
    assert_eq!(answer.turn, 0);
    assert_eq!(answer.state, HandoffState::Offered);
    f.service.audit().await.expect("agree");
}

#[tokio::test]
async fn a_caller_that_goes_away_mid_command_leaves_nothing_half_done() {
    let f = fixture().await;
    f.service
        .upsert_agent(&Actor::Open, agent("ana"))
        .await
        .expect("agent");
    for n in 0..20 {
        let name = format!("c{n}");
        f.service
            .create_conversation(&Actor::Open, Some(id(&name)), Customer::default(), None)
            .await
            .expect("create");
        // Dropped at a different moment each time (from before its first poll to after its
        // write was submitted), as axum drops a handler whose client hung up.
        let service = f.service.clone();
        let command = tokio::spawn(async move {
            service
                .post_turn(&Actor::Open, id(&name), ask_for_human())
                .await
        });
        tokio::time::sleep(std::time::Duration::from_micros(150 * n)).await;
        command.abort();
    }
    // Every command ran to its end anyway: the store and routing agree, and each
    // conversation takes its next turn normally.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    f.service.audit().await.expect("agree");
    for n in 0..20 {
        let name = format!("c{n}");
        let turn = Turn::new(Role::Customer, "are you there?").expect("turn");
        let answer = f
            .service
            .post_turn(&Actor::Open, id(&name), turn)
            .await
            .expect("next turn");
        assert_eq!(
            answer.turn + 1,
            f.store.turns(&id(&name)).await.expect("turns").len()
        );
    }
    f.service.audit().await.expect("agree");
}

#[tokio::test]
async fn the_owner_speaks_at_once_after_a_claim_and_an_unknown_target_queue_is_refused() {
    let f = fixture().await;
    f.service
        .upsert_agent(&Actor::Open, agent("ana"))
        .await
        .expect("agent");
    escalated(&f, "c1").await;
    f.service
        .claim(&Actor::Open, id("c1"), "ana".into())
        .await
        .expect("claim");
    let mut turn = Turn::new(Role::Agent, "Hi, Ana here").expect("turn");
    turn.agent_id = Some("ana".into());
    let answer = f
        .service
        .post_turn(&Actor::Open, id("c1"), turn)
        .await
        .expect("owner's turn");
    assert_eq!(answer.state, HandoffState::Assigned);
    let mut wrong = Turn::new(Role::Customer, "hello").expect("turn");
    wrong.target_queue = Some("nope".into());
    let refused = f.service.post_turn(&Actor::Open, id("c1"), wrong).await;
    match refused {
        Err(CoreError::Invalid { code, message }) => {
            assert_eq!(code, "unknown_queue");
            assert!(message.contains("general"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn event_followers_get_every_event_in_order_without_polling() {
    let f = fixture().await;
    let mut all = f.service.bus().subscribe(None, bus::Scope::All);
    let mut one = f.service.bus().subscribe(Some(&id("c2")), bus::Scope::All);
    escalated(&f, "c1").await;
    escalated(&f, "c2").await;
    let mut ids = Vec::new();
    while let Ok(e) = all.try_recv() {
        ids.push(e.id);
    }
    assert!(ids.len() >= 4, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let mut mine = Vec::new();
    while let Ok(e) = one.try_recv() {
        mine.push(e.conversation_id.clone());
    }
    assert!(
        !mine.is_empty() && mine.iter().all(|c| c == "c2"),
        "{mine:?}"
    );
}

#[test]
fn the_session_cache_drops_idle_slots_least_recently_used_first() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = baton_store::connect(&url).await.expect("store");
        let service = Service::open(engine(), store, Arc::new(SystemClock), 4)
            .await
            .expect("service");
        let held = service.slot("held");
        for i in 0..10 {
            drop(service.slot(&format!("c{i}")));
        }
        let cached = service.sessions.lock().expect("lock").slots.len();
        assert!(cached <= 4, "{cached}");
        // The slot someone holds is never dropped: asking again returns the same one.
        assert!(Arc::ptr_eq(&held, &service.slot("held")));
        assert!(service
            .sessions
            .lock()
            .expect("lock")
            .slots
            .contains_key("c9"));
    });
}

#[tokio::test]
async fn an_agent_added_by_another_process_is_routable_at_the_next_sweep() {
    let f = fixture().await;
    escalated(&f, "c1").await;
    // `baton agents add` writes to the same file while the server runs.
    let other = baton_store::connect(&f.url)
        .await
        .expect("second connection");
    let mut change = Change::at(START);
    change
        .agents
        .push(baton_store::AgentChange::Upsert(agent("ana")));
    other.apply(change).await.expect("added elsewhere");
    f.service.tick().await.expect("tick");
    f.clock.advance(SWEEP_MS);
    f.service.tick().await.expect("tick");
    let record = f
        .service
        .conversation(&Actor::Open, Action::Read, &id("c1"))
        .await
        .expect("c1");
    assert_eq!(
        (record.state, record.agent_id.as_ref().map(AgentId::as_str)),
        (HandoffState::Offered, Some("ana")),
        "{record:?}"
    );
    f.service.audit().await.expect("agree");
}

#[tokio::test]
async fn a_console_following_the_handoff_is_not_woken_by_routine_ai_traffic() {
    let f = fixture().await;
    let mut handoff = f.service.bus().subscribe(None, bus::Scope::Handoff);
    f.service
        .create_conversation(&Actor::Open, Some(id("quiet")), Customer::default(), None)
        .await
        .expect("create");
    for text in ["where is my parcel?", "and the opening hours?"] {
        let turn = Turn::new(Role::Customer, text).expect("turn");
        f.service
            .post_turn(&Actor::Open, id("quiet"), turn)
            .await
            .expect("turn");
    }
    assert!(
        handoff.try_recv().is_err(),
        "routine turns woke a handoff follower"
    );
    escalated(&f, "c1").await;
    let mut kinds = Vec::new();
    while let Ok(e) = handoff.try_recv() {
        assert_eq!(e.conversation_id, "c1");
        kinds.push(e.kind);
    }
    assert!(
        kinds.contains(&EventKind::Turn) && kinds.contains(&EventKind::Transition),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_transcript_keeps_what_a_live_client_is_refused() {
    let f = fixture().await;
    escalated(&f, "c1").await;
    let mut joined = Turn::new(Role::Agent, "Hi, Bo here").expect("turn");
    joined.agent_id = Some("bo".into());
    // Live, an agent who does not hold the conversation is refused ...
    assert!(matches!(
        f.service
            .post_turn(&Actor::Open, id("c1"), joined.clone())
            .await,
        Err(CoreError::Conflict { .. })
    ));
    // ... a transcript records that Bo took it, outside routing.
    let answer = f
        .service
        .record_turn(id("c1"), joined)
        .await
        .expect("transcript's agent turn");
    assert_eq!(answer.state, HandoffState::Assigned);
    assert_eq!(f.service.wait(&id("c1")).await, None, "left the line");
    let customer = Turn::new(Role::Customer, "thanks Bo").expect("turn");
    let answer = f
        .service
        .record_turn(id("c1"), customer)
        .await
        .expect("customer turn to a conversation held outside routing");
    assert_eq!(answer.state, HandoffState::Assigned);
    let empty = Turn::new(Role::Customer, "  ").expect("turn");
    assert!(matches!(
        f.service
            .post_turn(&Actor::Open, id("c1"), empty.clone())
            .await,
        Err(CoreError::Invalid { .. })
    ));
    f.service
        .record_turn(id("c1"), empty)
        .await
        .expect("an empty transcript turn");
    let record = f
        .service
        .conversation(&Actor::Open, Action::Read, &id("c1"))
        .await
        .expect("c1");
    assert_eq!(record.state, HandoffState::Assigned);
    assert_eq!(record.agent_id.as_ref().map(AgentId::as_str), Some("bo"));
    assert_eq!(
        f.service
            .turns(&Actor::Open, Action::Read, &id("c1"))
            .await
            .expect("turns")
            .len(),
        4
    );
    // Routing goes on for the others.
    f.service
        .upsert_agent(&Actor::Open, agent("ana"))
        .await
        .expect("agent");
    let next = escalated(&f, "c2").await;
    assert_eq!(next.agent_id.as_deref(), Some("ana"));
}
