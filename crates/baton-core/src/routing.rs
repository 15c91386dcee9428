//! Routing state, in one place: the [`Dispatcher`] (the algorithm), what the store holds for
//! every conversation in routing ([`Held`]), the running SLA timers and what each waiting
//! customer was last told. All of it sits behind the service's routing lock; a command mutates
//! it and writes what it decided into its [`Change`] under that lock, so the store receives
//! changes in the order they were decided. When a change fails, the routing state is rebuilt
//! from the store ([`Routing::rebuild`]), which is the truth.

use baton_domain::{Agent, AgentId, AgentStatus, ConversationId, HandoffState, IdError, QueueName};
use baton_policy::Policy;
use baton_route::dispatch::RouteEvent;
use baton_route::{Dispatcher, Millis, NewConversation, QueueConfig};
use baton_store::{
    AgentChange, Change, ConversationChange, ConversationRecord, ConversationUpdate, EventKind,
    Guard, NewEvent, SlaChange, SlaKind, SlaTimer, Store, StoreError,
};
use std::collections::HashMap;

/// What the store holds (once pending changes land) for a conversation in routing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Held {
    pub state: HandoffState,
    pub queue: QueueName,
    pub priority: i64,
    pub agent: Option<AgentId>,
}

/// The node's routing state.
pub(crate) struct Routing {
    pub d: Dispatcher,
    pub held: HashMap<ConversationId, Held>,
    pub slas: HashMap<(ConversationId, SlaKind), SlaTimer>,
    pub announced: HashMap<ConversationId, (usize, u64)>,
    pub last_sweep: Millis,
    /// Every agent as routing knows it (presence included), to notice agents another process
    /// added or changed in the store.
    pub agents: HashMap<AgentId, Agent>,
}

/// A queue name the dispatcher or the policy gives as a string, as the domain's type. Both
/// hold only names the policy checked, so this fails only on a bug: the step is then skipped
/// with a warning, never a panic.
fn reported<T: TryFrom<String, Error = IdError>>(value: String) -> Option<T> {
    match T::try_from(value) {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(error = %e, "routing step with an invalid id skipped");
            None
        }
    }
}

/// A routing event without a state change.
fn routing_event(reason: String) -> NewEvent {
    NewEvent {
        kind: EventKind::Routing,
        from: None,
        to: None,
        actor: "router".into(),
        reason,
    }
}

impl Routing {
    /// Empty routing over the policy's queues.
    pub fn new(policy: &Policy) -> Self {
        Self {
            d: Dispatcher::new(policy.queues().to_vec(), policy.file.routing.clone()),
            held: HashMap::new(),
            slas: HashMap::new(),
            announced: HashMap::new(),
            last_sweep: 0,
            agents: HashMap::new(),
        }
    }

    /// Routing rebuilt from the store: agents with their presence, every conversation routing
    /// held (waiting, offered, assigned) in the order they joined, and the running SLA timers.
    /// What rebuilding decides (an offer made again after a restart, say) is returned as a
    /// change to write.
    ///
    /// # Errors
    /// Store failures.
    pub async fn rebuild(
        policy: &Policy,
        store: &dyn Store,
        now: Millis,
    ) -> Result<(Self, Change), StoreError> {
        let mut r = Self::new(policy);
        for agent in store.agents().await? {
            if let Err(e) = r.upsert_agent(agent, now) {
                tracing::warn!(error = %e, "stored agent not restored");
            }
        }
        for rec in store.routing_records().await? {
            let (Some(new), Some(new_queue)) = (new_conversation(&rec, now), rec.queue.clone())
            else {
                continue;
            };
            let result = match (rec.state, rec.agent_id.as_ref().map(AgentId::as_str)) {
                (HandoffState::Assigned, Some(agent)) => {
                    r.d.restore_held(new, agent, true, rec.assigned_at.unwrap_or(now), now)
                }
                (HandoffState::Offered, Some(agent)) => {
                    r.d.restore_held(new, agent, false, rec.offered_at.unwrap_or(now), now)
                }
                _ => r.d.enqueue(new, now),
            };
            match result {
                Ok(()) => {
                    r.held.insert(
                        rec.id.clone(),
                        Held {
                            state: rec.state,
                            queue: new_queue,
                            priority: rec.priority,
                            agent: rec.agent_id.clone(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(conversation = %rec.id, error = %e, "conversation not restored to routing");
                }
            }
        }
        for timer in store.running_slas().await? {
            r.slas
                .insert((timer.conversation_id.clone(), timer.kind), timer);
        }
        let mut change = Change::at(now);
        r.record(&mut change, now);
        Ok((r, change))
    }

    /// Adds or replaces an agent.
    pub fn upsert_agent(
        &mut self,
        agent: Agent,
        now: Millis,
    ) -> Result<(), baton_route::RouteError> {
        self.d.upsert_agent(agent.clone(), now)?;
        self.agents.insert(agent.id.clone(), agent);
        Ok(())
    }

    /// Sets an agent's presence.
    pub fn set_presence(
        &mut self,
        id: &AgentId,
        status: AgentStatus,
        now: Millis,
    ) -> Result<(), baton_route::RouteError> {
        self.d.set_presence(id.as_str(), status, now)?;
        if let Some(a) = self.agents.get_mut(id) {
            a.status = status;
        }
        Ok(())
    }

    /// Takes in agents that differ in the store from what routing knows (added or changed by
    /// another process, such as `baton agents add` while the server runs).
    pub fn take_agents(&mut self, stored: Vec<Agent>, now: Millis) {
        for agent in stored {
            if self.agents.get(&agent.id) != Some(&agent) {
                tracing::info!(agent = %agent.id, "agent changed in the store: routing takes it in");
                if let Err(e) = self.upsert_agent(agent, now) {
                    tracing::warn!(error = %e, "stored agent not taken in");
                }
            }
        }
    }

    /// Enters a conversation that just escalated (its own part of `change` already moves it to
    /// `queued`).
    pub fn enter(
        &mut self,
        id: ConversationId,
        queue: QueueName,
        new: NewConversation,
        now: Millis,
    ) -> Result<(), baton_route::RouteError> {
        let priority = new.priority;
        self.d.enqueue(new, now)?;
        self.held.insert(
            id,
            Held {
                state: HandoffState::Queued,
                queue,
                priority,
                agent: None,
            },
        );
        Ok(())
    }

    /// The conversation leaves routing (resolved when `handled`; else cancelled, handed back or
    /// moved to the async path): its agent takes the next one, its SLA timers stop.
    pub fn leave(&mut self, change: &mut Change, id: &ConversationId, handled: bool, now: Millis) {
        if let Err(e) = self.d.finish(id.as_str(), handled, now) {
            tracing::warn!(conversation = %id, error = %e, "left routing that did not hold it");
        }
        self.held.remove(id);
        self.announced.remove(id);
        self.stop_sla(change, id, None);
        self.record(change, now);
    }

    /// Starts an SLA timer (`sla`: its kind and length in seconds) on `queue`'s business-hours
    /// clock, unless one is running.
    pub fn start_sla(
        &mut self,
        change: &mut Change,
        policy: &Policy,
        id: &ConversationId,
        queue: &QueueConfig,
        (kind, seconds): (SlaKind, u64),
        now: Millis,
    ) {
        let share = policy.file.routing.sla_warning_share;
        let warn_seconds = (seconds as f64 * share).round() as u64;
        let ms = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / 2000) * 1000;
        let (warn_at, due_at) = match policy.schedule(&queue.name) {
            Some(s) => (
                s.after_open_seconds(now, warn_seconds).unwrap_or(i64::MAX),
                s.after_open_seconds(now, seconds).unwrap_or(i64::MAX),
            ),
            None => (now + ms(warn_seconds), now + ms(seconds)),
        };
        let Some(queue_name) = reported::<QueueName>(queue.name.clone()) else {
            return;
        };
        let timer = SlaTimer {
            conversation_id: id.clone(),
            kind,
            queue: queue_name,
            started_at: now,
            warn_at,
            due_at,
            warned: false,
            breached: false,
            stopped_at: None,
        };
        self.slas
            .entry((id.clone(), kind))
            .or_insert_with(|| timer.clone());
        change.conversation(id).slas.push(SlaChange::Start(timer));
    }

    /// Stops the conversation's running SLA timers of `kind` (all when `None`).
    pub fn stop_sla(&mut self, change: &mut Change, id: &ConversationId, kind: Option<SlaKind>) {
        self.slas
            .retain(|(c, k), _| c != id || kind.is_some_and(|kind| kind != *k));
        change.conversation(id).slas.push(SlaChange::Stop(kind));
    }

    /// The part of `change` for conversation `id`, guarded by the state the store holds now.
    fn part<'c>(&self, change: &'c mut Change, id: &ConversationId) -> &'c mut ConversationChange {
        if !change.conversations.iter().any(|c| c.id == *id) {
            let guard = self
                .held
                .get(id)
                .map_or(Guard::Exists, |h| Guard::State(h.state));
            change
                .conversations
                .push(ConversationChange::new(id.clone(), guard));
        }
        change.conversation(id)
    }

    /// Moves a conversation in routing as the dispatcher decided; `queue` changes its queue.
    fn move_to(
        &mut self,
        change: &mut Change,
        id: &ConversationId,
        to: HandoffState,
        agent: Option<AgentId>,
        queue: Option<QueueName>,
        why: String,
    ) {
        let Some(from) = self.held.get(id).map(|h| h.state) else {
            tracing::warn!(conversation = %id, %to, "routing step for a conversation not in routing skipped");
            return;
        };
        let event = if from == to {
            routing_event(why)
        } else if from.next_states().contains(&to) {
            NewEvent {
                kind: EventKind::Transition,
                from: Some(from),
                to: Some(to),
                actor: "router".into(),
                reason: why,
            }
        } else {
            tracing::warn!(conversation = %id, %from, %to, "routing step skipped: not a legal transition");
            return;
        };
        let part = self.part(change, id);
        part.events.push(event);
        let Some(h) = self.held.get_mut(id) else {
            return;
        };
        h.state = to;
        h.agent = agent;
        if let Some(q) = queue {
            h.queue = q;
        }
        let h = h.clone();
        let part = change.conversation(id);
        let update = part.update.get_or_insert_with(|| ConversationUpdate {
            state: h.state,
            queue: Some(h.queue.clone()),
            priority: h.priority,
            agent_id: h.agent.clone(),
            brief: None,
            disposition: None,
            language: None,
            requested_agent: None,
        });
        update.state = h.state;
        update.queue = Some(h.queue);
        update.agent_id = h.agent;
    }

    /// Writes what the dispatcher decided since the last call into `change`: each offer,
    /// assignment, return to the queue and step as a transition or event of its conversation,
    /// and agents it set away.
    pub fn record(&mut self, change: &mut Change, now: Millis) {
        loop {
            let events = self.d.drain_events();
            if events.is_empty() {
                break;
            }
            for e in events {
                match e {
                    RouteEvent::Offered {
                        conversation,
                        agent,
                        expires_at,
                    } => {
                        let secs = (expires_at - now).max(0) / 1000;
                        let why = format!("offered to agent `{agent}`, to accept within {secs} s");
                        self.move_to(
                            change,
                            &conversation,
                            HandoffState::Offered,
                            Some(agent),
                            None,
                            why,
                        );
                    }
                    RouteEvent::Assigned {
                        conversation,
                        agent,
                        waited_ms,
                    } => {
                        let why = format!(
                            "assigned to agent `{agent}` after {:.0} s waiting",
                            waited_ms as f64 / 1000.0
                        );
                        self.announced.remove(&conversation);
                        self.move_to(
                            change,
                            &conversation,
                            HandoffState::Assigned,
                            Some(agent),
                            None,
                            why,
                        );
                    }
                    RouteEvent::Declined {
                        conversation,
                        agent,
                    } => {
                        let why = format!("agent `{agent}` declined; offered to the next agent");
                        self.move_to(change, &conversation, HandoffState::Queued, None, None, why);
                    }
                    RouteEvent::OfferExpired {
                        conversation,
                        agent,
                    } => {
                        let why = format!(
                            "agent `{agent}` did not accept in time; offered to the next agent"
                        );
                        self.move_to(change, &conversation, HandoffState::Queued, None, None, why);
                    }
                    RouteEvent::OfferWithdrawn {
                        conversation,
                        agent,
                    } => {
                        let why = format!(
                            "agent `{agent}` is no longer available; offered to the next agent"
                        );
                        self.move_to(change, &conversation, HandoffState::Queued, None, None, why);
                    }
                    RouteEvent::Reclaimed {
                        conversation,
                        agent,
                    } => {
                        let why = format!(
                            "agent `{agent}` left the customer unanswered too long; back in the queue"
                        );
                        self.move_to(change, &conversation, HandoffState::Queued, None, None, why);
                    }
                    RouteEvent::AgentAway { agent, why } => {
                        tracing::info!(%agent, %why, "agent set away");
                        if let Some(a) = self.agents.get_mut(&agent) {
                            a.status = AgentStatus::Away;
                        }
                        change.agents.push(AgentChange::Status {
                            id: agent,
                            status: AgentStatus::Away,
                        });
                    }
                    RouteEvent::StepReached {
                        conversation,
                        queue,
                        step,
                    } => {
                        let Some(queue) = reported::<QueueName>(queue) else {
                            continue;
                        };
                        let why = if step == 0 {
                            format!("overflowed to queue `{queue}`")
                        } else {
                            format!("step {step} of queue `{queue}`: requirements relaxed")
                        };
                        let state = self
                            .held
                            .get(&conversation)
                            .map_or(HandoffState::Queued, |h| h.state);
                        let agent = self.held.get(&conversation).and_then(|h| h.agent.clone());
                        self.move_to(change, &conversation, state, agent, Some(queue), why);
                    }
                    RouteEvent::OwnerFallback {
                        conversation,
                        agent,
                    } => {
                        let why = format!(
                            "dedicated agent `{agent}` did not take it in time: any eligible agent may"
                        );
                        self.part(change, &conversation)
                            .events
                            .push(routing_event(why));
                    }
                }
            }
        }
    }

    /// Fires the SLA warnings and breaches due at `now`, each once, into `change`.
    pub fn fire_slas(&mut self, change: &mut Change, now: Millis) {
        let mut due: Vec<(ConversationId, SlaKind)> = self
            .slas
            .iter()
            .filter(|(_, t)| (!t.warned && t.warn_at <= now) || (!t.breached && t.due_at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        due.sort();
        for key in due {
            let Some(timer) = self.slas.get_mut(&key) else {
                continue;
            };
            let what = match timer.kind {
                SlaKind::FirstResponse => "first human response",
                SlaKind::NextResponse => "next human response",
            };
            let breach = timer.due_at <= now;
            let mut fires = Vec::new();
            if !timer.warned {
                let reason = if breach {
                    format!("{what} SLA of queue `{}` at risk", timer.queue)
                } else {
                    format!(
                        "{what} SLA of queue `{}` at risk: {:.0} s left",
                        timer.queue,
                        (timer.due_at - now).max(0) as f64 / 1000.0
                    )
                };
                fires.push((false, EventKind::SlaWarning, reason));
            }
            if breach {
                let reason = format!(
                    "{what} SLA of queue `{}` breached: due {:.0} s after it started",
                    timer.queue,
                    (timer.due_at - timer.started_at) as f64 / 1000.0
                );
                fires.push((true, EventKind::SlaBreach, reason));
            }
            timer.warned = true;
            timer.breached |= breach;
            let kind = timer.kind;
            if breach {
                self.slas.remove(&key);
            }
            let part = change.conversation(&key.0);
            for (breach, event_kind, reason) in fires {
                part.slas.push(SlaChange::Fire {
                    kind,
                    breach,
                    event: NewEvent {
                        kind: event_kind,
                        from: None,
                        to: None,
                        actor: "sla".into(),
                        reason,
                    },
                });
            }
        }
    }

    /// When the next SLA warning or breach falls due.
    pub fn next_sla(&self) -> Option<Millis> {
        self.slas
            .values()
            .map(|t| if t.warned { t.due_at } else { t.warn_at })
            .min()
    }

    /// Tells waiting customers when their position or wait changed materially: any move within
    /// the first five places, or a change of at least `change_share` of position or quote.
    pub fn announce_waits(&mut self, change: &mut Change, change_share: f64) {
        let waiting = self.d.waiting_estimates();
        let ids: std::collections::HashSet<&ConversationId> = waiting.iter().map(|w| w.0).collect();
        self.announced.retain(|id, _| ids.contains(id));
        let mut updates = Vec::new();
        for (id, position, wait) in waiting {
            let quote = wait.quoted_seconds;
            let material = match self.announced.get(id) {
                None => true,
                Some(&(p, q)) => {
                    let rel = |a: f64, b: f64| (a - b).abs() / b.max(1.0);
                    (p != position
                        && (position <= 5 || rel(position as f64, p as f64) >= change_share))
                        || rel(quote as f64, q as f64) >= change_share
                }
            };
            if material {
                updates.push((id.clone(), position, wait));
            }
        }
        for (id, position, wait) in updates {
            self.announced
                .insert(id.clone(), (position, wait.quoted_seconds));
            let reason = serde_json::json!({
                "position": position,
                "estimated_wait_seconds": wait.quoted_seconds,
                "expected_wait_seconds": wait.expected_seconds,
            })
            .to_string();
            change.conversation(&id).events.push(NewEvent {
                kind: EventKind::WaitUpdate,
                from: None,
                to: None,
                actor: "router".into(),
                reason,
            });
        }
    }
}

fn new_conversation(r: &ConversationRecord, now: Millis) -> Option<NewConversation> {
    Some(NewConversation {
        id: r.id.clone(),
        queue: r.queue.as_ref()?.as_str().to_owned(),
        priority: r.priority,
        language: r.language.clone(),
        owner: r.requested_agent.clone(),
        queued_at: r.queued_at.unwrap_or(now),
        why: "restored after a restart".to_owned(),
    })
}
