//! The server's side of routing: one [`Dispatcher`] for the node, its decisions persisted, its
//! timers (and the SLA timers in the store) driven by the wall clock, and waiting customers
//! kept informed.
//!
//! Lock order: a conversation's session lock, then the dispatcher's lock; the timer task takes
//! only the dispatcher's. Every dispatcher call and the store writes of what it decided happen
//! under the dispatcher's lock, so the store and the dispatcher never disagree for long: the
//! store is the truth, and the dispatcher is rebuilt from it on start ([`rebuild`]).

use crate::error::ApiError;
use crate::AppState;
use baton_domain::{AgentStatus, HandoffState};
use baton_route::dispatch::RouteEvent;
use baton_route::{Dispatcher, Millis, NewConversation, QueueConfig, WaitEstimate};
use baton_store::{now_ms, ConversationRecord, ConversationUpdate, NewEvent, SlaTimer};
use std::collections::HashMap;
use std::sync::Arc;

type AppResult<T> = Result<T, ApiError>;

/// What a waiting customer was last told: position and quoted wait.
pub(crate) type Announced = HashMap<String, (usize, u64)>;

/// Rebuilds the dispatcher from the store: agents with their presence, then every conversation
/// routing held, in the order they joined, each where it was (waiting, offered, assigned).
///
/// # Errors
/// Database failures.
pub(crate) async fn rebuild(app: &AppState) -> AppResult<()> {
    let now = now_ms();
    let mut d = app.dispatcher.lock().await;
    for agent in app.store.agents().await? {
        if let Err(e) = d.upsert_agent(agent, now) {
            tracing::warn!(error = %e, "stored agent not restored");
        }
    }
    for r in app.store.routing_records().await? {
        let Some(new) = new_conversation(&r, "restored after a restart") else {
            continue;
        };
        let result = match (r.state, r.agent_id.as_deref()) {
            (HandoffState::Assigned, Some(agent)) => {
                d.restore_held(new, agent, true, r.assigned_at.unwrap_or(now), now)
            }
            (HandoffState::Offered, Some(agent)) => {
                d.restore_held(new, agent, false, r.offered_at.unwrap_or(now), now)
            }
            _ => d.enqueue(new, now),
        };
        if let Err(e) = result {
            tracing::warn!(conversation = %r.id, error = %e, "conversation not restored to routing");
        }
    }
    persist(app, &mut d).await
}

fn new_conversation(r: &ConversationRecord, why: &str) -> Option<NewConversation> {
    Some(NewConversation {
        id: r.id.clone(),
        queue: r.queue.clone()?,
        priority: r.priority,
        language: r.language.clone(),
        owner: r.requested_agent.clone(),
        queued_at: r.queued_at.unwrap_or_else(now_ms),
        why: why.to_owned(),
    })
}

/// Writes what the dispatcher decided to the store: each offer, assignment, return to the
/// queue and step as a transition or event of its conversation, and agents it set away.
///
/// # Errors
/// Database failures.
pub(crate) async fn persist(app: &AppState, d: &mut Dispatcher) -> AppResult<()> {
    loop {
        let events = d.drain_events();
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
                    let secs = (expires_at - now_ms()).max(0) / 1000;
                    let why = format!("offered to agent `{agent}`, to accept within {secs} s");
                    move_to(
                        app,
                        &conversation,
                        HandoffState::Offered,
                        Some(agent),
                        None,
                        &why,
                    )
                    .await?;
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
                    move_to(
                        app,
                        &conversation,
                        HandoffState::Assigned,
                        Some(agent),
                        None,
                        &why,
                    )
                    .await?;
                    app.announced
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&conversation);
                }
                RouteEvent::Declined {
                    conversation,
                    agent,
                } => {
                    let why = format!("agent `{agent}` declined; offered to the next agent");
                    move_to(app, &conversation, HandoffState::Queued, None, None, &why).await?;
                }
                RouteEvent::OfferExpired {
                    conversation,
                    agent,
                } => {
                    let why = format!(
                        "agent `{agent}` did not accept in time; offered to the next agent"
                    );
                    move_to(app, &conversation, HandoffState::Queued, None, None, &why).await?;
                }
                RouteEvent::OfferWithdrawn {
                    conversation,
                    agent,
                } => {
                    let why = format!(
                        "agent `{agent}` is no longer available; offered to the next agent"
                    );
                    move_to(app, &conversation, HandoffState::Queued, None, None, &why).await?;
                }
                RouteEvent::Reclaimed {
                    conversation,
                    agent,
                } => {
                    let why = format!(
                        "agent `{agent}` left the customer unanswered too long; back in the queue"
                    );
                    move_to(app, &conversation, HandoffState::Queued, None, None, &why).await?;
                }
                RouteEvent::AgentAway { agent, why } => {
                    app.store
                        .set_agent_status(&agent, AgentStatus::Away)
                        .await?;
                    tracing::info!(%agent, %why, "agent set away");
                }
                RouteEvent::StepReached {
                    conversation,
                    queue,
                    step,
                } => {
                    let why = if step == 0 {
                        format!("overflowed to queue `{queue}`")
                    } else {
                        format!("step {step} of queue `{queue}`: requirements relaxed")
                    };
                    move_to(
                        app,
                        &conversation,
                        HandoffState::Queued,
                        None,
                        Some(queue),
                        &why,
                    )
                    .await?;
                }
                RouteEvent::OwnerFallback {
                    conversation,
                    agent,
                } => {
                    let event = routing_event(format!(
                        "dedicated agent `{agent}` did not take it in time: any eligible agent may"
                    ));
                    app.store.record(&conversation, &[event]).await?;
                }
            }
        }
    }
    app.poke();
    Ok(())
}

fn routing_event(reason: String) -> NewEvent {
    NewEvent {
        kind: "routing",
        from: None,
        to: None,
        actor: "router".into(),
        reason,
    }
}

/// Moves a conversation's stored state as the dispatcher decided. `queue` changes the queue
/// (overflow). A conversation that has meanwhile left routing in the store is left alone.
async fn move_to(
    app: &AppState,
    id: &str,
    to: HandoffState,
    agent: Option<String>,
    queue: Option<String>,
    why: &str,
) -> AppResult<()> {
    let Some(r) = app.store.conversation(id).await? else {
        return Ok(());
    };
    let (from, event) = if r.state == to {
        (r.state, routing_event(why.to_owned()))
    } else if r.state.next_states().contains(&to) {
        (
            r.state,
            NewEvent {
                kind: "transition",
                from: Some(r.state),
                to: Some(to),
                actor: "router".into(),
                reason: why.to_owned(),
            },
        )
    } else {
        tracing::warn!(conversation = %id, from = %r.state, %to, "routing step skipped: the conversation moved on");
        return Ok(());
    };
    let update = ConversationUpdate {
        state: to,
        queue: queue.or(r.queue),
        priority: r.priority,
        agent_id: agent,
        brief: None,
        disposition: None,
        language: None,
        requested_agent: None,
    };
    app.store.apply(id, from, None, &[event], &update).await?;
    Ok(())
}

/// What the customer is told at escalation: position, the wait, and whether they should be
/// offered the async path (queue closed, or the wait over the queue's limit).
pub(crate) struct Placement {
    pub position: usize,
    pub wait: WaitEstimate,
    /// `Some(opens_at)` when the queue is closed (ms; `None` inside means no open time ahead).
    pub closed: Option<Option<Millis>>,
    pub too_long: bool,
}

/// Enters a conversation that just escalated into routing and says where it stands.
///
/// # Errors
/// [`ApiError`] when the dispatcher refuses (an unknown queue).
pub(crate) fn place(
    app: &AppState,
    d: &mut Dispatcher,
    new: NewConversation,
    now: Millis,
) -> AppResult<Placement> {
    let id = new.id.clone();
    let queue_name = new.queue.clone();
    d.enqueue(new, now)?;
    let routing = &app.engine.policy().file.routing;
    let (position, wait) = match (d.position(&id), d.estimate(&id)) {
        (Some(p), Some(w)) => (p, w),
        // Offered or assigned at once: first in line, the smallest quote.
        _ => (1, baton_route::estimate_wait(1, 1, 0, 1.0, routing)),
    };
    app.announced
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id, (position, wait.quoted_seconds));
    let policy = app.engine.policy();
    let queue = policy.queue(&queue_name);
    let closed = policy
        .schedule(&queue_name)
        .filter(|s| !s.is_open(now))
        .map(|s| s.next_open(now));
    let too_long = queue
        .and_then(|q| q.max_wait_seconds)
        .is_some_and(|max| wait.quoted_seconds > max);
    Ok(Placement {
        position,
        wait,
        closed,
        too_long,
    })
}

/// Starts the first-response SLA timer of a conversation that joined `queue` at `now`.
///
/// # Errors
/// Database failures.
pub(crate) async fn start_sla(
    app: &AppState,
    id: &str,
    queue: &QueueConfig,
    kind: &str,
    seconds: u64,
    now: Millis,
) -> AppResult<()> {
    let share = app.engine.policy().file.routing.sla_warning_share;
    let warn_seconds = (seconds as f64 * share).round() as u64;
    let (warn_at, due_at) = match app.engine.policy().schedule(&queue.name) {
        Some(s) => (
            s.after_open_seconds(now, warn_seconds).unwrap_or(i64::MAX),
            s.after_open_seconds(now, seconds).unwrap_or(i64::MAX),
        ),
        None => (
            now + i64::try_from(warn_seconds).unwrap_or(i64::MAX / 2000) * 1000,
            now + i64::try_from(seconds).unwrap_or(i64::MAX / 2000) * 1000,
        ),
    };
    app.store
        .start_sla(&SlaTimer {
            conversation_id: id.to_owned(),
            kind: kind.to_owned(),
            queue: queue.name.clone(),
            started_at: now,
            warn_at,
            due_at,
            warned: false,
            breached: false,
            stopped_at: None,
        })
        .await?;
    Ok(())
}

/// Fires the SLA warnings and breaches that are due, each exactly once (also those that fell
/// due while the server was down).
async fn fire_slas(app: &AppState, now: Millis) -> AppResult<()> {
    for timer in app.store.due_slas(now).await? {
        let what = if timer.kind == "first_response" {
            "first human response"
        } else {
            "next human response"
        };
        let breach = timer.due_at <= now;
        let event = NewEvent {
            kind: if breach { "sla_breach" } else { "sla_warning" },
            from: None,
            to: None,
            actor: "sla".into(),
            reason: if breach {
                format!(
                    "{what} SLA of queue `{}` breached: due {:.0} s after it started",
                    timer.queue,
                    (timer.due_at - timer.started_at) as f64 / 1000.0
                )
            } else {
                format!(
                    "{what} SLA of queue `{}` at risk: {:.0} s left",
                    timer.queue,
                    (timer.due_at - now).max(0) as f64 / 1000.0
                )
            },
        };
        if breach && !timer.warned {
            // A breach found late (after a restart) still reports the warning it passed.
            let warning = NewEvent {
                kind: "sla_warning",
                reason: format!("{what} SLA of queue `{}` at risk", timer.queue),
                ..event.clone()
            };
            app.store.fire_sla(&timer, false, &warning).await?;
        }
        app.store.fire_sla(&timer, breach, &event).await?;
    }
    Ok(())
}

/// Tells waiting customers when their position or wait changed materially: any move within
/// the first five places, or a change of at least `update_change` of position or quote.
async fn announce_waits(app: &AppState, d: &Dispatcher) -> AppResult<()> {
    let change = app.engine.policy().file.routing.update_change;
    let mut updates = Vec::new();
    {
        let mut announced = app
            .announced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let waiting = d.waiting_estimates();
        let ids: std::collections::HashSet<&str> = waiting.iter().map(|w| w.0).collect();
        announced.retain(|id, _| ids.contains(id.as_str()));
        for (id, position, wait) in waiting {
            let quote = wait.quoted_seconds;
            let material = match announced.get(id) {
                None => true,
                Some(&(p, q)) => {
                    let rel = |a: f64, b: f64| (a - b).abs() / b.max(1.0);
                    (p != position && (position <= 5 || rel(position as f64, p as f64) >= change))
                        || rel(quote as f64, q as f64) >= change
                }
            };
            if material {
                announced.insert(id.to_owned(), (position, quote));
                updates.push((id.to_owned(), position, wait));
            }
        }
    }
    for (id, position, wait) in updates {
        let reason = serde_json::json!({
            "position": position,
            "estimated_wait_seconds": wait.quoted_seconds,
            "expected_wait_seconds": wait.expected_seconds,
        })
        .to_string();
        let event = NewEvent {
            kind: "wait_update",
            from: None,
            to: None,
            actor: "router".into(),
            reason,
        };
        app.store.record(&id, &[event]).await?;
    }
    Ok(())
}

/// The timer task: fires the dispatcher's timers (offers, silence, steps, dedicated-agent
/// waits) and the SLA timers as they fall due, and sends wait updates every two seconds. Runs
/// until the process ends.
pub(crate) async fn run_timers(app: Arc<AppState>) {
    let mut last_sweep = 0;
    loop {
        let now = now_ms();
        if let Err(e) = tick(&app, now, &mut last_sweep).await {
            tracing::error!(error = ?e, "routing timers failed; retrying");
        }
        let next_dispatch = app.dispatcher.lock().await.next_timer();
        let next_sla = app.store.next_sla().await.ok().flatten();
        let next = [next_dispatch, next_sla, Some(now + 250)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + 250);
        let pause = u64::try_from((next - now_ms()).clamp(5, 250)).unwrap_or(250);
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
}

async fn tick(app: &AppState, now: Millis, last_sweep: &mut Millis) -> AppResult<()> {
    {
        let mut d = app.dispatcher.lock().await;
        d.advance(now);
        persist(app, &mut d).await?;
        if now - *last_sweep >= 2000 {
            *last_sweep = now;
            announce_waits(app, &d).await?;
        }
    }
    fire_slas(app, now).await?;
    app.poke();
    Ok(())
}
