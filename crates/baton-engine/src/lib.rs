//! The handoff pipeline, one turn at a time: Detect -> Decide -> Transfer (state machine) ->
//! Route -> Prepare (brief).
//!
//! Why this crate exists: `baton replay`, `baton detect` and the HTTP server must make exactly
//! the same decisions, so the pipeline lives in one place that knows nothing of files, HTTP or
//! databases. A [`Session`] holds one conversation's state; [`Engine::process`] applies a turn to
//! it and returns a [`TurnOutcome`] with everything that happened. The caller persists it.

use baton_brief::{entities::Extractor, BriefInput};
use baton_detect::{kb::KnowledgeBase, model::LinearModel, ConversationState, Detectors};
use baton_domain::{
    Brief, ConversationId, Customer, Decision, HandoffState, Mode, Role, Signal, TransitionError,
    Turn, TurnAction,
};
use baton_policy::{CustomerValue, Facts, Policy};
use baton_route::{select_queue, Route, RouteRequest};
use serde::Serialize;
use std::sync::Arc;

/// One state change, with who and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// State before.
    pub from: HandoffState,
    /// State after.
    pub to: HandoffState,
    /// Who caused it: `policy`, `customer`, `router`, or `agent:ID`.
    pub actor: String,
    /// Why, in words.
    pub reason: String,
}

/// A turn the current state does not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// An AI turn arrived while a human owns the conversation.
    #[error("the AI may not reply while agent `{agent}` owns the conversation: wait until it is handed back to the AI (`ai_may_reply` turns true)")]
    AiLockedOut {
        /// The agent who owns it.
        agent: String,
    },
    /// An illegal state change was requested.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// One conversation's state between turns.
#[derive(Debug, Clone)]
pub struct Session {
    /// The conversation's id.
    pub id: ConversationId,
    /// The customer.
    pub customer: Customer,
    /// The channel, when known.
    pub channel: Option<String>,
    /// Every turn so far.
    pub turns: Vec<Turn>,
    /// The signals of each turn, parallel to `turns`.
    pub turn_signals: Vec<Vec<Signal>>,
    /// The detectors' memory.
    pub detect: ConversationState,
    /// Where the handoff stands.
    pub state: HandoffState,
    /// The queue, once routed.
    pub queue: Option<String>,
    /// The priority in that queue.
    pub priority: i64,
    /// The agent who owns the conversation, when assigned.
    pub agent: Option<String>,
    /// The brief of the latest handoff.
    pub brief: Option<Brief>,
    /// The agent the latest handoff should wait for first: the one the bot named on the
    /// escalating turn, else the customer's account owner.
    pub requested_agent: Option<String>,
    /// `customer` converted for the policy's rules once, at [`Engine::start`].
    customer_value: CustomerValue,
}

/// Everything that happened on one turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnOutcome {
    /// 0-based index of the turn in the conversation.
    pub turn: usize,
    /// Who wrote it.
    pub role: Role,
    /// The policy's decision on this turn.
    pub decision: Decision,
    /// Every signal above zero.
    pub signals: Vec<Signal>,
    /// State changes this turn caused, in order.
    pub transitions: Vec<Transition>,
    /// The state after the turn.
    pub state: HandoffState,
    /// Where the conversation was routed, when this turn started a handoff.
    pub route: Option<Route>,
    /// The brief, when this turn started a handoff.
    pub brief: Option<Brief>,
}

/// The pipeline: policy, detectors and brief extractors, built once and shared.
pub struct Engine {
    policy: Policy,
    detectors: Detectors,
    extractor: Extractor,
    /// Whether the policy reads the language on every turn (else it is settled at handoff).
    reads_language: bool,
}

impl Engine {
    /// Builds the engine for a validated policy, with the built-in learned model.
    pub fn new(policy: Policy) -> Self {
        Self::with_model(policy, baton_detect::builtin_model())
    }

    /// Builds the engine with the given learned model, or with the lexicons alone (`None`).
    pub fn with_model(policy: Policy, model: Option<Arc<LinearModel>>) -> Self {
        let detectors = Detectors::with_model(policy.file.detectors.clone(), model);
        Self {
            reads_language: policy.reads_language(),
            policy,
            detectors,
            extractor: Extractor::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sets the knowledge base whose similarity feeds `low_confidence` on customer turns that
    /// carry no `kb_similarity` (see [`baton_detect::kb`]).
    pub fn with_knowledge_base(mut self, kb: Option<Arc<KnowledgeBase>>) -> Self {
        self.detectors.set_knowledge_base(kb);
        self
    }

    /// The detectors (for measurement: knowledge-base similarity, VADER).
    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    /// A new conversation in state `ai_active`.
    pub fn start(
        &self,
        id: ConversationId,
        customer: Customer,
        channel: Option<String>,
    ) -> Session {
        Session {
            id,
            customer_value: self.policy.customer_value(&customer),
            customer,
            channel,
            turns: Vec::new(),
            turn_signals: Vec::new(),
            detect: ConversationState::default(),
            state: HandoffState::AiActive,
            queue: None,
            priority: 0,
            agent: None,
            brief: None,
            requested_agent: None,
        }
    }

    /// Rebuilds a session from stored turns and state, replaying the turns through the same
    /// detection step as [`Engine::process`] (no decisions are taken again).
    pub fn restore(&self, mut session: Session, turns: Vec<Turn>) -> Session {
        for turn in turns {
            let signals = self.observe(&mut session, &turn);
            session.turns.push(turn);
            session.turn_signals.push(signals);
        }
        session
    }

    /// Detection for one turn: the detectors, plus the language when a policy rule reads it on
    /// every turn. The one place both live turns and restored ones go through.
    fn observe(&self, session: &mut Session, turn: &Turn) -> Vec<Signal> {
        let in_handoff = session.state.in_handoff();
        let signals =
            self.detectors
                .observe(&mut session.detect, turn, &session.customer, in_handoff);
        if self.reads_language && turn.role == Role::Customer {
            self.detectors
                .observe_language(&mut session.detect, &session.customer, &turn.text);
        }
        signals
    }

    /// Detection and decision for one turn, without acting on it: the detectors update the
    /// session's detection memory, the policy decides, and nothing else changes (the turn is not
    /// appended, no handoff starts). This is what `baton detect` and `baton eval` measure;
    /// [`Engine::process`] builds on it.
    pub fn assess(&self, session: &mut Session, turn: &Turn) -> (Vec<Signal>, Decision) {
        let signals = self.observe(session, turn);
        let customer_turns = session
            .turns
            .iter()
            .filter(|t| t.role == Role::Customer)
            .count()
            + usize::from(turn.role == Role::Customer);
        let decision = self.policy.decide(&Facts {
            signals: &signals,
            customer: &session.customer,
            turns: session.turns.len() + 1,
            customer_turns,
            failures: session.detect.failures,
            topics: &session.detect.topics,
            language: session.detect.language.as_deref(),
            channel: session.channel.as_deref(),
            customer_value: Some(&session.customer_value),
        });
        (signals, decision)
    }

    /// Checks that `turn` may be applied now (the API refuses it otherwise).
    ///
    /// # Errors
    /// [`EngineError::AiLockedOut`] for an AI turn while an agent owns the conversation.
    pub fn check(&self, session: &Session, turn: &Turn) -> Result<(), EngineError> {
        if turn.role == Role::Ai && !session.state.ai_may_reply() {
            return Err(EngineError::AiLockedOut {
                agent: session
                    .agent
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned()),
            });
        }
        Ok(())
    }

    /// Applies one turn. Total: every turn gets an outcome (callers that must refuse AI turns
    /// during a human's ownership call [`Engine::check`] first).
    pub fn process(&self, session: &mut Session, turn: Turn) -> TurnOutcome {
        let index = session.turns.len();
        let mut transitions = Vec::new();

        // Cancelling only means something while the customer waits for a person.
        if turn.role == Role::Customer
            && turn.action == Some(TurnAction::CancelHandoff)
            && session.state.is_waiting()
        {
            self.step(
                session,
                HandoffState::ReturnedToAi,
                "customer",
                "the customer cancelled the handoff",
                &mut transitions,
            );
        }
        if turn.role == Role::Agent && session.state.is_waiting() {
            let actor = turn
                .agent_id
                .clone()
                .map_or_else(|| "agent".to_owned(), |a| format!("agent:{a}"));
            self.step(
                session,
                HandoffState::Assigned,
                &actor,
                "an agent joined the conversation",
                &mut transitions,
            );
            session.agent = turn.agent_id.clone();
        }

        let (signals, mut decision) = self.assess(session, &turn);
        if turn.role == Role::Agent {
            // A human is writing: the AI's escalation logic does not apply to their words.
            decision.escalate = false;
            decision.mode = Mode::AiOnly;
        }
        session.turns.push(turn);
        session.turn_signals.push(signals.clone());

        let mut route = None;
        let mut brief = None;
        let can_start = session
            .state
            .next_states()
            .contains(&HandoffState::HandoffRequested);
        if decision.escalate && can_start {
            let why = decision
                .reasons
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            self.step(
                session,
                HandoffState::HandoffRequested,
                "policy",
                &format!("escalated: {why}"),
                &mut transitions,
            );
            let customer_text = session
                .turns
                .iter()
                .filter(|t| t.role == Role::Customer)
                .map(|t| t.text.as_str());
            self.detectors
                .settle_language(&mut session.detect, &session.customer, customer_text);
            let b = self.brief(session, &decision);
            let r = self.route(session, &decision, Some(&b.intent));
            self.step(
                session,
                HandoffState::Queued,
                "router",
                &format!("queue `{}`: {}", r.queue, r.why),
                &mut transitions,
            );
            session.queue = Some(r.queue.clone());
            session.priority = r.priority;
            session.requested_agent = session.turns[index]
                .target_agent
                .clone()
                .or_else(|| session.customer.account_owner.clone());
            session.brief = Some(b.clone());
            brief = Some(b);
            route = Some(r);
        }
        TurnOutcome {
            turn: index,
            role: session.turns[index].role,
            decision,
            signals,
            transitions,
            state: session.state,
            route,
            brief,
        }
    }

    /// Routes the conversation by the policy's queues: the queue the escalating turn names
    /// (`target_queue`), else the first queue whose `when` condition holds, else by tier and
    /// topic, else the default. A validated policy always has a default queue, so the fallback
    /// below only guards against a policy built some other way.
    fn route(&self, session: &Session, decision: &Decision, intent: Option<&str>) -> Route {
        let signals = session.turn_signals.last().map_or(&[][..], Vec::as_slice);
        let facts = Facts {
            signals,
            customer: &session.customer,
            turns: session.turns.len(),
            customer_turns: session
                .turns
                .iter()
                .filter(|t| t.role == Role::Customer)
                .count(),
            failures: session.detect.failures,
            topics: &session.detect.topics,
            language: session.detect.language.as_deref(),
            channel: session.channel.as_deref(),
            customer_value: Some(&session.customer_value),
        };
        let topic = decision
            .reasons
            .iter()
            .chain(session.detect.topics.iter())
            .copied()
            .find(|c| baton_detect::TOPIC_CODES.contains(c));
        let req = RouteRequest {
            topics: &session.detect.topics,
            reasons: &decision.reasons,
            tier: session.customer.tier.as_deref(),
            requested_queue: session.turns.last().and_then(|t| t.target_queue.as_deref()),
            rule_queue: self.policy.queue_rule(&facts, topic, intent),
        };
        select_queue(self.policy.queues(), &self.policy.file.routing, &req).unwrap_or_else(|| {
            Route {
                queue: "general".to_owned(),
                priority: 0,
                why: "no queue configured".to_owned(),
            }
        })
    }

    /// Builds the brief from the session as it stands, for a handoff on `decision` (the one
    /// [`Engine::process`] builds when a turn starts a handoff; also for a brief on demand).
    pub fn brief(&self, session: &Session, decision: &Decision) -> Brief {
        baton_brief::build(
            &BriefInput {
                conversation_id: session.id.as_str(),
                turns: &session.turns,
                turn_signals: &session.turn_signals,
                decision,
                customer: &session.customer,
                compounds: &session.detect.compounds,
                rejected_ai_turns: &session.detect.rejected_ai_turns,
                topics: &session.detect.topics,
                language: session.detect.language.as_deref(),
            },
            &self.extractor,
        )
    }

    /// Moves the session to `to`, recording the transition. Steps the engine takes itself are
    /// legal by construction; an illegal one is a bug and leaves the state unchanged.
    fn step(
        &self,
        session: &mut Session,
        to: HandoffState,
        actor: &str,
        reason: &str,
        log: &mut Vec<Transition>,
    ) {
        match transition(session, to, actor, reason) {
            Ok(t) => log.push(t),
            Err(e) => debug_assert!(false, "the engine took an illegal step: {e}"),
        }
    }

    /// The customer-facing message at escalation (policy template `messages.escalation`).
    pub fn escalation_message(
        &self,
        session: &Session,
        position: usize,
        quoted_wait_seconds: u64,
    ) -> String {
        self.message(
            session,
            &self.policy.file.messages.escalation,
            position,
            quoted_wait_seconds,
            &[],
        )
    }

    /// Renders a customer-facing `template` for this conversation: `{name}` (", Dana" or
    /// empty), `{queue}`, `{position}` and `{wait}` (in words), plus the `extra` placeholders.
    pub fn message(
        &self,
        session: &Session,
        template: &str,
        position: usize,
        quoted_wait_seconds: u64,
        extra: &[(&str, String)],
    ) -> String {
        let name = session
            .customer
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map_or_else(String::new, |n| format!(", {}", n.trim()));
        let mut values = vec![
            ("name", name),
            ("queue", session.queue.clone().unwrap_or_default()),
            ("position", position.to_string()),
            ("wait", human_duration(quoted_wait_seconds)),
        ];
        values.extend(extra.iter().cloned());
        render(template, &values)
    }
}

/// Moves `session` to `to` if the state machine allows it.
///
/// # Errors
/// [`TransitionError`] for an illegal step; the session is unchanged.
pub fn transition(
    session: &mut Session,
    to: HandoffState,
    actor: &str,
    reason: &str,
) -> Result<Transition, TransitionError> {
    let from = session.state;
    session.state = from.transition(to)?;
    if !matches!(to, HandoffState::Assigned | HandoffState::Offered) {
        session.agent = None;
    }
    Ok(Transition {
        from,
        to,
        actor: actor.to_owned(),
        reason: reason.to_owned(),
    })
}

/// Fills `{name}` placeholders.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    values.iter().fold(template.to_owned(), |acc, (k, v)| {
        acc.replace(&format!("{{{k}}}"), v)
    })
}

/// "about 1 minute", "15 minutes", "1 hour 30 minutes".
pub fn human_duration(seconds: u64) -> String {
    let minutes = seconds.div_ceil(60).max(1);
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if minutes < 60 {
        plural(minutes, "minute")
    } else {
        let (h, m) = (minutes / 60, minutes % 60);
        if m == 0 {
            plural(h, "hour")
        } else {
            format!("{} {}", plural(h, "hour"), plural(m, "minute"))
        }
    }
}

#[cfg(test)]
mod tests;
