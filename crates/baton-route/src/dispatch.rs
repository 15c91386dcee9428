//! The dispatcher: waiting conversations, agents and timers, and every assignment decision.
//!
//! One [`Dispatcher`] holds the routing state of a deployment in memory, deterministic given
//! its inputs and the times they carry: the server drives it with the wall clock (and rebuilds
//! it from the store on start), `baton simulate` with simulated time. It never reads a clock.
//!
//! # Model
//! - A **lane** is a queue at one step of its expiry ladder, for one customer language (or
//!   any). Each agent knows the lanes whose skills and language it meets, so both sides of a
//!   match are index lookups, not scans:
//!   - `waiting`: conversations in the lane, ordered by effective priority;
//!   - `available`: agents online with free capacity, ordered by the queue's strategy.
//! - **Priority with aging**: a conversation's effective priority is
//!   `priority + waited / aging_step`, so nobody starves. Within a lane every conversation ages
//!   at the same rate, so the order is fixed at arrival by `priority * aging_step - queued_at`
//!   (first in, first out among equal effective priority); across lanes an agent compares the
//!   heads at the current time.
//! - **Offers**: a conversation is offered to one agent, whose capacity it holds. Not accepted
//!   within the queue's `offer_timeout_seconds`, it goes to the next agent and the agent is set
//!   `away` (not responding); declined (or lost), it is not offered to that agent again for
//!   the queue's `decline_cooldown_seconds`.
//! - **Silence**: an assigned agent who leaves the customer unanswered past
//!   `agent_silence_seconds` loses the conversation, which goes back to its place in the queue.
//! - **Steps**: after `after_seconds` in a queue a conversation relaxes its skills or language,
//!   or overflows to another queue.
//! - **Dedicated agents**: a conversation for a named agent (account owner, or the bot's pick)
//!   waits for that agent alone for `owner_wait_seconds`, then for anyone eligible.
//!
//! # Guarantees (checked by [`Dispatcher::audit`] in the property tests)
//! A conversation is in exactly one place and held by at most one agent; no agent holds more
//! than its capacity; after every call no waiting conversation has an eligible agent with free
//! capacity that it has not declined within the cooldown.

use crate::hours::Millis;
use crate::{estimate_wait, QueueConfig, RoutingConfig, SkillRequirement, Strategy, WaitEstimate};
use baton_domain::{Agent, AgentId, AgentStatus, ConversationId};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

type AgentIdx = u32;
type TaskIdx = u32;
type LaneIdx = u32;

/// Handle times remembered per queue for the wait estimate (the last this many).
const HANDLE_WINDOW: usize = 200;
/// Observed handle times replace the configured default once this many are known.
const HANDLE_MIN_SAMPLES: usize = 5;

/// Why a routing call was refused. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No queue by this name.
    #[error("no queue `{0}`: the policy's queues are listed at GET /v1/queues")]
    UnknownQueue(String),
    /// The conversation is not in routing.
    #[error("conversation `{0}` is not waiting, offered or assigned")]
    UnknownConversation(String),
    /// No agent by this id.
    #[error("no agent `{0}`: add it with POST /v1/agents")]
    UnknownAgent(String),
    /// The conversation is already in routing.
    #[error("conversation `{0}` is already in routing")]
    AlreadyRouted(String),
    /// The step needs another state (e.g. accepting an offer made to someone else).
    #[error("{0}")]
    Refused(String),
}

/// What the dispatcher did, in order, for the caller to persist and announce.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RouteEvent {
    /// Offered to an agent, who must accept by `expires_at`.
    Offered {
        /// Conversation id.
        conversation: ConversationId,
        /// Agent id.
        agent: AgentId,
        /// Deadline to accept (ms since the epoch).
        expires_at: Millis,
    },
    /// The agent owns the conversation.
    Assigned {
        /// Conversation id.
        conversation: ConversationId,
        /// Agent id.
        agent: AgentId,
        /// Time the customer waited, from joining routing, in milliseconds.
        waited_ms: Millis,
    },
    /// The agent declined; the conversation goes to the next agent.
    Declined {
        /// Conversation id.
        conversation: ConversationId,
        /// Agent id.
        agent: AgentId,
    },
    /// The offer was not accepted in time; the conversation goes to the next agent.
    OfferExpired {
        /// Conversation id.
        conversation: ConversationId,
        /// Agent id.
        agent: AgentId,
    },
    /// The agent went away or offline with the offer open; the conversation goes to the next
    /// agent.
    OfferWithdrawn {
        /// Conversation id.
        conversation: ConversationId,
        /// Agent id.
        agent: AgentId,
    },
    /// The assigned agent stayed silent too long and lost the conversation.
    Reclaimed {
        /// Conversation id.
        conversation: ConversationId,
        /// Agent id.
        agent: AgentId,
    },
    /// The dispatcher set an agent `away`.
    AgentAway {
        /// Agent id.
        agent: AgentId,
        /// Why.
        why: String,
    },
    /// A step of the queue's expiry ladder was reached.
    StepReached {
        /// Conversation id.
        conversation: ConversationId,
        /// The queue it is now in.
        queue: String,
        /// The step (1-based; 0 is the queue's own requirements).
        step: usize,
    },
    /// The dedicated agent did not take it in time; anyone eligible may.
    OwnerFallback {
        /// Conversation id.
        conversation: ConversationId,
        /// The dedicated agent's id.
        agent: AgentId,
    },
}

/// A conversation entering routing.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    /// Conversation id.
    pub id: ConversationId,
    /// The queue (from [`select_queue`](crate::select_queue)).
    pub queue: String,
    /// Priority at arrival (from [`priority`](crate::priority)).
    pub priority: i64,
    /// The customer's language, ISO 639-1.
    pub language: Option<String>,
    /// A dedicated agent: the account owner or the agent the bot named.
    pub owner: Option<AgentId>,
    /// When it joined routing; earlier than now when restored after a restart.
    pub queued_at: Millis,
    /// Why this queue, for explain.
    pub why: String,
}

/// Where a conversation stands in routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    Waiting,
    Reserved(AgentIdx),
    Offered {
        agent: AgentIdx,
        until: Millis,
    },
    Assigned {
        agent: AgentIdx,
        since: Millis,
        awaiting_since: Option<Millis>,
    },
}

#[derive(Debug, Clone)]
struct Task {
    id: ConversationId,
    queue: usize,
    step: usize,
    language: Option<String>,
    lane: LaneIdx,
    priority: i64,
    queued_at: Millis,
    entered_queue_at: Millis,
    seq: u64,
    state: TaskState,
    /// Agents that declined or lost it, until when they are not asked again.
    declined: Vec<(AgentIdx, Millis)>,
    owner: Option<AgentIdx>,
    gen: u64,
    why: String,
}

/// A timer: due time, tie-break sequence, the conversation, the generation it was set for
/// (a later change makes it stale), and what it is for.
type Timer = (Millis, u64, TaskIdx, u64, TimerKind);

/// Order key in a lane: static rank (higher first), then arrival.
type WaitKey = (Reverse<i64>, u64, TaskIdx);
/// Order key among a lane's available agents: lower first.
type AgentKey = (i64, i64, AgentIdx);

#[derive(Debug, Clone)]
struct Lane {
    language: Option<String>,
    skills: Vec<SkillRequirement>,
    aging_ms: i64,
    strategy: Strategy,
    waiting: BTreeSet<WaitKey>,
    available: BTreeSet<AgentKey>,
    slots: u64,
    busy: u64,
}

#[derive(Debug, Clone)]
struct AgentSlot {
    agent: Agent,
    load: u32,
    idle_since: Millis,
    lanes: Vec<LaneIdx>,
    personal: BTreeSet<WaitKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Offer,
    Step,
    Silence,
    Owner,
    /// A decline's cooldown ran out: look for an agent again.
    Retry,
}

/// Counters of one queue for the current day (UTC), for service level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayCounters {
    /// Day number since the epoch (UTC) these counters are for.
    pub day: i64,
    /// Conversations assigned today.
    pub answered: u64,
    /// Of those, assigned within the queue's SLA.
    pub answered_in_sla: u64,
    /// Conversations that left the queue unanswered today (abandoned, cancelled, async).
    pub left: u64,
}

/// A queue's live figures (API `GET /v1/queues`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// The queue.
    pub name: String,
    /// Conversations waiting (queued, reserved or offered).
    pub waiting: usize,
    /// Longest current wait, seconds.
    pub longest_wait_seconds: f64,
    /// Online agents with the queue's skills and free capacity.
    pub agents_available: usize,
    /// Online agents with the queue's skills.
    pub agents_online: usize,
    /// Share answered within the SLA today, of those answered or left; `None` before any.
    pub service_level_today: Option<f64>,
    /// Today's counters.
    pub today: DayCounters,
    /// Mean handle time used for estimates, seconds.
    pub handle_seconds: f64,
}

/// Why an agent can or cannot take a conversation (explain).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentVerdict {
    /// Agent id.
    #[schema(value_type = String)]
    pub agent: AgentId,
    /// Whether the agent would be offered the conversation now (when first in line).
    pub eligible: bool,
    /// 1-based order among eligible agents by the queue's strategy.
    pub rank: Option<usize>,
    /// The reasons, in words.
    pub why: String,
}

/// Where a conversation is and why (explain).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// Conversation id.
    #[schema(value_type = String)]
    pub conversation: ConversationId,
    /// Its queue.
    pub queue: String,
    /// Why that queue.
    pub queue_why: String,
    /// `waiting`, `reserved`, `offered` or `assigned`.
    pub state: &'static str,
    /// The agent holding or reserved for it.
    #[schema(value_type = Option<String>)]
    pub agent: Option<AgentId>,
    /// Step of the queue's expiry ladder.
    pub step: usize,
    /// Skills required now.
    pub skills: Vec<String>,
    /// Language required now.
    pub language: Option<String>,
    /// Effective priority now.
    pub effective_priority: f64,
    /// 1-based position in its lane, when waiting.
    pub position: Option<usize>,
    /// Every agent's verdict, eligible first in the order they would be chosen.
    pub agents: Vec<AgentVerdict>,
}

/// The routing state. See the module documentation.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    queues: Vec<QueueConfig>,
    config: RoutingConfig,
    queue_index: HashMap<String, usize>,
    lanes: Vec<Lane>,
    lane_index: HashMap<(usize, usize, Option<String>), LaneIdx>,
    agents: Vec<AgentSlot>,
    agent_index: HashMap<AgentId, AgentIdx>,
    tasks: Vec<Option<Task>>,
    free_tasks: Vec<TaskIdx>,
    task_index: HashMap<ConversationId, TaskIdx>,
    timers: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    /// The latest time any call carried: declines are judged against it.
    clock: Millis,
    handle_times: Vec<VecDeque<f64>>,
    counters: Vec<DayCounters>,
    events: Vec<RouteEvent>,
}

fn day_of(at: Millis) -> i64 {
    at.div_euclid(86_400_000)
}

impl Dispatcher {
    /// A dispatcher over the policy's queues (validated: names unique, overflow targets exist).
    pub fn new(queues: Vec<QueueConfig>, config: RoutingConfig) -> Self {
        let queue_index = queues
            .iter()
            .enumerate()
            .map(|(i, q)| (q.name.clone(), i))
            .collect();
        let n = queues.len();
        Dispatcher {
            queues,
            config,
            queue_index,
            lanes: Vec::new(),
            lane_index: HashMap::new(),
            agents: Vec::new(),
            agent_index: HashMap::new(),
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            task_index: HashMap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            clock: Millis::MIN,
            handle_times: vec![VecDeque::new(); n],
            counters: vec![DayCounters::default(); n],
            events: Vec::new(),
        }
    }

    /// Takes the events produced since the last call.
    pub fn drain_events(&mut self) -> Vec<RouteEvent> {
        std::mem::take(&mut self.events)
    }

    /// When the next timer (offer, step, silence, dedicated-agent wait) is due, if any. Timers
    /// made stale by later changes may be reported; [`Dispatcher::advance`] skips them.
    pub fn next_timer(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse((at, ..))| *at)
    }

    /// Every waiting conversation (in a lane, or reserved for its dedicated agent) with its
    /// position and wait estimate, in one pass over each line: O(waiting), where asking
    /// [`Dispatcher::estimate`] of each would be quadratic.
    pub fn waiting_estimates(&self) -> Vec<(&ConversationId, usize, WaitEstimate)> {
        let mut out = Vec::new();
        for lane in &self.lanes {
            let mut handle = None;
            for (i, k) in lane.waiting.iter().enumerate() {
                let task = self.task(k.2);
                let h = *handle
                    .get_or_insert_with(|| self.handle_seconds(&self.queues[task.queue].name));
                let slots = u32::try_from(lane.slots).unwrap_or(u32::MAX);
                let busy = u32::try_from(lane.busy).unwrap_or(u32::MAX);
                out.push((
                    &task.id,
                    i + 1,
                    estimate_wait(i + 1, slots, busy, h, &self.config),
                ));
            }
        }
        for slot in &self.agents {
            for (i, k) in slot.personal.iter().enumerate() {
                if let Some(e) = self.estimate(self.task(k.2).id.as_str()) {
                    out.push((&self.task(k.2).id, i + 1, e));
                }
            }
        }
        out
    }

    /// Number of conversations in routing (waiting, reserved, offered or assigned).
    pub fn len(&self) -> usize {
        self.task_index.len()
    }

    /// Whether no conversation is in routing.
    pub fn is_empty(&self) -> bool {
        self.task_index.is_empty()
    }

    // ----- agents -------------------------------------------------------------------------

    /// Adds an agent, or updates one (skills, languages, capacity, presence, name).
    ///
    /// # Errors
    /// [`RouteError::Refused`] when the new capacity is below the conversations the agent holds
    /// now (lower it after some are resolved); capacity 0.
    pub fn upsert_agent(&mut self, agent: Agent, now: Millis) -> Result<(), RouteError> {
        self.tick(now);
        if agent.capacity == 0 {
            return Err(RouteError::Refused(
                "`capacity` is 0: give the number of conversations the agent can hold at once, at least 1".into(),
            ));
        }
        let idx = match self.agent_index.get(agent.id.as_str()) {
            Some(&i) => {
                let slot = &self.agents[i as usize];
                if agent.capacity < slot.load {
                    return Err(RouteError::Refused(format!(
                        "agent `{}` holds {} conversations: capacity cannot go below that until some are resolved",
                        agent.id, slot.load
                    )));
                }
                let was_online = slot.agent.status == AgentStatus::Online;
                self.detach(i);
                for lane in std::mem::take(&mut self.agents[i as usize].lanes) {
                    self.lanes[lane as usize].available.retain(|k| k.2 != i);
                }
                let slot = &mut self.agents[i as usize];
                if !was_online && agent.status == AgentStatus::Online {
                    slot.idle_since = now;
                }
                slot.agent = agent;
                i
            }
            None => {
                let i = self.agents.len() as AgentIdx;
                self.agent_index.insert(agent.id.clone(), i);
                self.agents.push(AgentSlot {
                    agent,
                    load: 0,
                    idle_since: now,
                    lanes: Vec::new(),
                    personal: BTreeSet::new(),
                });
                i
            }
        };
        let lanes: Vec<LaneIdx> = (0..self.lanes.len() as LaneIdx)
            .filter(|&l| self.lane_admits(l, &self.agents[idx as usize].agent))
            .collect();
        self.agents[idx as usize].lanes = lanes;
        self.attach(idx);
        self.after_presence(idx, now);
        Ok(())
    }

    /// Sets an agent's presence. Going online makes the agent idle from `now`; going away or
    /// offline returns the conversations offered to them to the queue, and offline also
    /// releases those reserved for them. Assigned conversations stay with the agent.
    ///
    /// # Errors
    /// [`RouteError::UnknownAgent`].
    pub fn set_presence(
        &mut self,
        agent: &str,
        status: AgentStatus,
        now: Millis,
    ) -> Result<(), RouteError> {
        self.tick(now);
        let idx = self.agent_idx(agent)?;
        self.change_presence(idx, status, now);
        Ok(())
    }

    fn change_presence(&mut self, idx: AgentIdx, status: AgentStatus, now: Millis) {
        let slot = &self.agents[idx as usize];
        if slot.agent.status == status {
            return;
        }
        let came_online = status == AgentStatus::Online;
        self.detach(idx);
        let slot = &mut self.agents[idx as usize];
        slot.agent.status = status;
        if came_online {
            slot.idle_since = now;
        }
        self.attach(idx);
        self.after_presence(idx, now);
    }

    /// After an agent's presence or settings changed: pull back what it can no longer hold,
    /// then give it work.
    fn after_presence(&mut self, idx: AgentIdx, now: Millis) {
        let status = self.agents[idx as usize].agent.status;
        if status != AgentStatus::Online {
            let offered: Vec<TaskIdx> = self
                .live_tasks()
                .filter(
                    |(_, t)| matches!(t.state, TaskState::Offered { agent, .. } if agent == idx),
                )
                .map(|(i, _)| i)
                .collect();
            for t in offered {
                self.release_agent_of(t, now);
                self.wait(t, now);
                self.events.push(RouteEvent::OfferWithdrawn {
                    conversation: self.task(t).id.clone(),
                    agent: self.agents[idx as usize].agent.id.clone(),
                });
                self.place(t, now);
            }
        }
        if status == AgentStatus::Offline {
            let reserved: Vec<TaskIdx> = self.agents[idx as usize]
                .personal
                .iter()
                .map(|k| k.2)
                .collect();
            for t in reserved {
                self.fall_back(t, now);
            }
        }
        self.fill(idx, now);
    }

    fn agent_idx(&self, id: &str) -> Result<AgentIdx, RouteError> {
        self.agent_index
            .get(id)
            .copied()
            .ok_or_else(|| RouteError::UnknownAgent(id.to_owned()))
    }

    fn available(slot: &AgentSlot) -> bool {
        slot.agent.status == AgentStatus::Online && slot.load < slot.agent.capacity
    }

    fn agent_key(&self, lane: LaneIdx, idx: AgentIdx) -> AgentKey {
        let slot = &self.agents[idx as usize];
        let l = &self.lanes[lane as usize];
        match l.strategy {
            Strategy::LongestIdle => (slot.idle_since, 0, idx),
            Strategy::LeastBusy => (
                i64::from(slot.load) * 1_000_000 / i64::from(slot.agent.capacity.max(1)),
                slot.idle_since,
                idx,
            ),
            Strategy::MostSkilled => {
                let level: i64 = l
                    .skills
                    .iter()
                    .map(|s| i64::from(slot.agent.level(s.name()).unwrap_or(0)))
                    .sum();
                (-level, slot.idle_since, idx)
            }
        }
    }

    /// Removes the agent from its lanes' indexes and staffing (before a change).
    fn detach(&mut self, idx: AgentIdx) {
        self.index_agent(idx, false, None);
    }

    /// Puts the agent back into its lanes' indexes and staffing (after a change).
    fn attach(&mut self, idx: AgentIdx) {
        self.index_agent(idx, true, None);
    }

    /// Adds the agent to (`add`) or removes it from the available-agent index and the
    /// staffing of its lanes, or of the one lane `only`.
    fn index_agent(&mut self, idx: AgentIdx, add: bool, only: Option<LaneIdx>) {
        let slot = &self.agents[idx as usize];
        let online = slot.agent.status == AgentStatus::Online;
        let available = Self::available(slot);
        let (cap, load) = (
            u64::from(slot.agent.capacity),
            u64::from(slot.load.min(slot.agent.capacity)),
        );
        let count = if only.is_some() { 1 } else { slot.lanes.len() };
        for li in 0..count {
            let lane = only.unwrap_or_else(|| self.agents[idx as usize].lanes[li]);
            if available {
                let key = self.agent_key(lane, idx);
                let set = &mut self.lanes[lane as usize].available;
                if add {
                    set.insert(key);
                } else {
                    set.remove(&key);
                }
            }
            if online {
                let l = &mut self.lanes[lane as usize];
                if add {
                    l.slots += cap;
                    l.busy += load;
                } else {
                    l.slots -= cap;
                    l.busy -= load;
                }
            }
        }
    }

    fn add_load(&mut self, idx: AgentIdx, delta: i32, now: Millis) {
        self.detach(idx);
        let slot = &mut self.agents[idx as usize];
        slot.load = slot.load.saturating_add_signed(delta);
        if delta > 0 {
            slot.idle_since = now;
        }
        self.attach(idx);
    }

    // ----- lanes --------------------------------------------------------------------------

    /// Requirements of `queue` at `step`: (skills, whether any language will do).
    fn requirements(&self, queue: usize, step: usize) -> (Vec<SkillRequirement>, bool) {
        let q = &self.queues[queue];
        let mut skills = q.skills.clone();
        let mut any_language = !q.match_language;
        for s in q.steps.iter().take(step) {
            if let Some(k) = &s.skills {
                skills.clone_from(k);
            }
            any_language |= s.any_language;
        }
        (skills, any_language)
    }

    fn lane_admits(&self, lane: LaneIdx, agent: &Agent) -> bool {
        let l = &self.lanes[lane as usize];
        l.skills.iter().all(|s| s.met_by(agent))
            && l.language.as_deref().is_none_or(|lang| agent.speaks(lang))
    }

    fn lane_for(&mut self, queue: usize, step: usize, language: Option<&str>) -> LaneIdx {
        let (skills, any_language) = self.requirements(queue, step);
        let language = if any_language {
            None
        } else {
            language.map(str::to_ascii_lowercase)
        };
        let key = (queue, step, language.clone());
        if let Some(&l) = self.lane_index.get(&key) {
            return l;
        }
        let q = &self.queues[queue];
        let aging_ms = if q.aging_per_minute > 0.0 {
            ((60_000.0 / q.aging_per_minute).round() as i64).clamp(1, 1_000_000_000)
        } else {
            1_000_000_000
        };
        let lane = self.lanes.len() as LaneIdx;
        self.lanes.push(Lane {
            language,
            skills,
            aging_ms,
            strategy: q.strategy,
            waiting: BTreeSet::new(),
            available: BTreeSet::new(),
            slots: 0,
            busy: 0,
        });
        self.lane_index.insert(key, lane);
        for idx in 0..self.agents.len() as AgentIdx {
            if self.lane_admits(lane, &self.agents[idx as usize].agent) {
                // Attach to this lane only: the agent's other lanes are unchanged.
                self.index_agent(idx, true, Some(lane));
                self.agents[idx as usize].lanes.push(lane);
            }
        }
        lane
    }

    // ----- conversations ------------------------------------------------------------------

    fn task(&self, t: TaskIdx) -> &Task {
        self.tasks[t as usize]
            .as_ref()
            .unwrap_or_else(|| unreachable!("task index {t} points at a free slot"))
    }

    fn task_mut(&mut self, t: TaskIdx) -> &mut Task {
        self.tasks[t as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("task index {t} points at a free slot"))
    }

    fn live_tasks(&self) -> impl Iterator<Item = (TaskIdx, &Task)> {
        self.tasks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i as TaskIdx, t)))
    }

    fn task_idx(&self, id: &str) -> Result<TaskIdx, RouteError> {
        self.task_index
            .get(id)
            .copied()
            .ok_or_else(|| RouteError::UnknownConversation(id.to_owned()))
    }

    /// When the next cooldown of the conversation's declines runs out, if one is running.
    fn next_retry(&self, t: TaskIdx) -> Option<Millis> {
        self.task(t)
            .declined
            .iter()
            .map(|&(_, until)| until)
            .filter(|&until| until > self.clock)
            .min()
    }

    /// Moves the dispatcher's clock on to `now` (never back).
    fn tick(&mut self, now: Millis) {
        self.clock = self.clock.max(now);
    }

    /// Whether agent `a` declined (or lost) the conversation within the cooldown.
    fn declined(&self, task: &Task, a: AgentIdx) -> bool {
        task.declined
            .iter()
            .any(|&(d, until)| d == a && until > self.clock)
    }

    fn wait_key(&self, t: TaskIdx) -> WaitKey {
        let task = self.task(t);
        let aging = self.lanes[task.lane as usize].aging_ms;
        let rank = task
            .priority
            .clamp(-1_000_000, 1_000_000)
            .saturating_mul(aging)
            .saturating_sub(task.queued_at);
        (Reverse(rank), task.seq, t)
    }

    /// Effective priority of a waiting conversation at `now`.
    fn effective(&self, t: TaskIdx, now: Millis) -> f64 {
        let task = self.task(t);
        let aging = self.lanes[task.lane as usize].aging_ms;
        task.priority as f64 + (now - task.queued_at) as f64 / aging as f64
    }

    fn schedule(&mut self, at: Millis, t: TaskIdx, kind: TimerKind) {
        self.seq += 1;
        let gen = self.task(t).gen;
        self.timers.push(Reverse((at, self.seq, t, gen, kind)));
    }

    /// Puts a conversation into routing and makes whatever assignment is possible now.
    ///
    /// # Errors
    /// [`RouteError::UnknownQueue`], or [`RouteError::AlreadyRouted`] for an id already in.
    pub fn enqueue(&mut self, new: NewConversation, now: Millis) -> Result<(), RouteError> {
        self.tick(now);
        let queued_at = new.queued_at;
        let (t, owner) = self.insert_task(new)?;
        let queue = self.task(t).queue;
        let owner_until = queued_at + self.wait_ms(self.queues[queue].owner_wait_seconds);
        self.reserve_or_wait(t, owner, owner_until, now);
        Ok(())
    }

    /// A detached conversation waits for its dedicated agent `owner` until `until` (when the
    /// agent is not offline), else in its lane; then whatever match is possible is made.
    fn reserve_or_wait(&mut self, t: TaskIdx, owner: Option<AgentIdx>, until: Millis, now: Millis) {
        match owner {
            Some(o)
                if self.agents[o as usize].agent.status != AgentStatus::Offline && now < until =>
            {
                self.task_mut(t).state = TaskState::Reserved(o);
                self.touch(t);
                let key = self.wait_key(t);
                self.agents[o as usize].personal.insert(key);
                self.schedule(until, t, TimerKind::Owner);
                self.fill(o, now);
            }
            _ => {
                self.catch_up_steps(t, now);
                self.wait(t, now);
                self.place(t, now);
            }
        }
    }

    /// Puts back a conversation that an agent held before a restart: offered to it (the offer
    /// runs again from `since`) or assigned to it since `since`. When the agent is unknown or
    /// has no room, the conversation is routed afresh instead. Emits no event for the
    /// restored holding (it was announced before the restart).
    ///
    /// # Errors
    /// As [`Dispatcher::enqueue`].
    pub fn restore_held(
        &mut self,
        new: NewConversation,
        agent: &str,
        accepted: bool,
        since: Millis,
        now: Millis,
    ) -> Result<(), RouteError> {
        self.tick(now);
        let room = self
            .agent_index
            .get(agent)
            .copied()
            .filter(|&a| self.agents[a as usize].load < self.agents[a as usize].agent.capacity);
        let Some(a) = room else {
            return self.enqueue(new, now);
        };
        let (t, _) = self.insert_task(new)?;
        let mark = self.events.len();
        if accepted {
            self.add_load(a, 1, since);
            self.assign(t, a, since);
            // Assigned before the restart: not a new answer for today's service level.
            let q = self.task(t).queue;
            let c = self.counter(q, since);
            c.answered = c.answered.saturating_sub(1);
            c.answered_in_sla = c.answered_in_sla.min(c.answered);
        } else {
            // `offer` takes the agent's capacity itself.
            self.offer(t, a, since);
        }
        self.events.truncate(mark);
        Ok(())
    }

    /// Creates the conversation's record (not yet waiting anywhere); returns it and the
    /// dedicated agent, if known.
    fn insert_task(
        &mut self,
        new: NewConversation,
    ) -> Result<(TaskIdx, Option<AgentIdx>), RouteError> {
        let queue = *self
            .queue_index
            .get(&new.queue)
            .ok_or_else(|| RouteError::UnknownQueue(new.queue.clone()))?;
        if self.task_index.contains_key(&new.id) {
            return Err(RouteError::AlreadyRouted(new.id.to_string()));
        }
        let owner = new
            .owner
            .as_ref()
            .and_then(|o| self.agent_index.get(o).copied());
        let lane = self.lane_for(queue, 0, new.language.as_deref());
        self.seq += 1;
        let task = Task {
            id: new.id.clone(),
            queue,
            step: 0,
            language: new.language.map(|l| l.to_ascii_lowercase()),
            lane,
            priority: new.priority,
            queued_at: new.queued_at,
            entered_queue_at: new.queued_at,
            seq: self.seq,
            state: TaskState::Waiting,
            declined: Vec::new(),
            owner,
            gen: 0,
            why: new.why,
        };
        let t = match self.free_tasks.pop() {
            Some(t) => {
                self.tasks[t as usize] = Some(task);
                t
            }
            None => {
                self.tasks.push(Some(task));
                (self.tasks.len() - 1) as TaskIdx
            }
        };
        self.task_index.insert(new.id, t);
        Ok((t, owner))
    }

    fn wait_ms(&self, seconds: u64) -> Millis {
        i64::try_from(seconds)
            .unwrap_or(i64::MAX / 2000)
            .saturating_mul(1000)
    }

    /// Applies every step already due (for a restored conversation or an overflow chain).
    fn catch_up_steps(&mut self, t: TaskIdx, now: Millis) {
        // Bounded: each pass moves one step on; an overflow cycle stops at the ladder's length
        // times the number of queues.
        let limit = self.queues.iter().map(|q| q.steps.len() + 1).sum::<usize>();
        for _ in 0..limit {
            let task = self.task(t);
            let q = &self.queues[task.queue];
            let Some(step) = q.steps.get(task.step) else {
                break;
            };
            if task.entered_queue_at + self.wait_ms(step.after_seconds) > now {
                break;
            }
            let at = task.entered_queue_at + self.wait_ms(step.after_seconds);
            self.take_step(t, at);
        }
    }

    /// Moves a (detached) conversation to its next step, or overflows it.
    fn take_step(&mut self, t: TaskIdx, at: Millis) {
        let task = self.task(t);
        let step = &self.queues[task.queue].steps[task.step];
        let overflow = step
            .overflow
            .as_ref()
            .and_then(|q| self.queue_index.get(q).copied());
        let language = task.language.clone();
        let (queue, step) = match overflow {
            Some(q) => (q, 0),
            None => (task.queue, task.step + 1),
        };
        let lane = self.lane_for(queue, step, language.as_deref());
        let task = self.task_mut(t);
        if queue != task.queue {
            task.entered_queue_at = at;
        }
        task.queue = queue;
        task.step = step;
        task.lane = lane;
        task.declined.clear();
        let event = RouteEvent::StepReached {
            conversation: task.id.clone(),
            queue: self.queues[queue].name.clone(),
            step,
        };
        self.events.push(event);
    }

    /// Makes a detached conversation wait in its lane, with its next step's timer.
    fn wait(&mut self, t: TaskIdx, _now: Millis) {
        self.task_mut(t).state = TaskState::Waiting;
        self.touch(t);
        let task = self.task(t);
        let (queue, step, entered, lane) =
            (task.queue, task.step, task.entered_queue_at, task.lane);
        let key = self.wait_key(t);
        self.lanes[lane as usize].waiting.insert(key);
        if let Some(s) = self.queues[queue].steps.get(step) {
            let at = entered + self.wait_ms(s.after_seconds);
            self.schedule(at, t, TimerKind::Step);
        }
        if let Some(at) = self.next_retry(t) {
            self.schedule(at, t, TimerKind::Retry);
        }
    }

    /// Removes a conversation from wherever it waits or is held, releasing the agent's
    /// capacity; returns the agent that held it.
    fn detach_task(&mut self, t: TaskIdx, now: Millis) -> Option<AgentIdx> {
        let state = self.task(t).state;
        match state {
            TaskState::Waiting => {
                let key = self.wait_key(t);
                let lane = self.task(t).lane;
                self.lanes[lane as usize].waiting.remove(&key);
                None
            }
            TaskState::Reserved(a) => {
                let key = self.wait_key(t);
                self.agents[a as usize].personal.remove(&key);
                None
            }
            TaskState::Offered { .. } | TaskState::Assigned { .. } => self.release_agent_of(t, now),
        }
    }

    fn release_agent_of(&mut self, t: TaskIdx, now: Millis) -> Option<AgentIdx> {
        let agent = match self.task(t).state {
            TaskState::Offered { agent, .. } | TaskState::Assigned { agent, .. } => agent,
            _ => return None,
        };
        self.add_load(agent, -1, now);
        self.task_mut(t).state = TaskState::Waiting;
        self.touch(t);
        Some(agent)
    }

    /// Finds an agent for a waiting conversation.
    fn place(&mut self, t: TaskIdx, now: Millis) {
        let task = self.task(t);
        if task.state != TaskState::Waiting {
            return;
        }
        let lane = &self.lanes[task.lane as usize];
        let agent = lane
            .available
            .iter()
            .map(|k| k.2)
            .find(|&a| !self.declined(task, a));
        if let Some(a) = agent {
            self.offer(t, a, now);
        }
    }

    /// Gives an available agent work until it has none left to take or no capacity.
    fn fill(&mut self, a: AgentIdx, now: Millis) {
        while Self::available(&self.agents[a as usize]) {
            let Some(t) = self.best_for(a, now) else {
                return;
            };
            self.offer(t, a, now);
        }
    }

    /// The conversation agent `a` should take next: reserved for it first, then the highest
    /// effective priority among its lanes' heads that it has not declined.
    fn best_for(&self, a: AgentIdx, now: Millis) -> Option<TaskIdx> {
        let slot = &self.agents[a as usize];
        if let Some(k) = slot.personal.first() {
            return Some(k.2);
        }
        let mut best: Option<(f64, Millis, u64, TaskIdx)> = None;
        for &lane in &slot.lanes {
            let head = self.lanes[lane as usize]
                .waiting
                .iter()
                .map(|k| k.2)
                .find(|&t| !self.declined(self.task(t), a));
            if let Some(t) = head {
                let task = self.task(t);
                let cand = (self.effective(t, now), task.queued_at, task.seq, t);
                let better = best.is_none_or(|b| {
                    cand.0 > b.0 || (cand.0 == b.0 && (cand.1, cand.2) < (b.1, b.2))
                });
                if better {
                    best = Some(cand);
                }
            }
        }
        best.map(|b| b.3)
    }

    fn offer(&mut self, t: TaskIdx, a: AgentIdx, now: Millis) {
        self.detach_task(t, now);
        self.add_load(a, 1, now);
        let queue = self.task(t).queue;
        let timeout = self.queues[queue].offer_timeout_seconds;
        let agent_id = self.agents[a as usize].agent.id.clone();
        match timeout {
            Some(s) => {
                let until = now + self.wait_ms(s);
                self.task_mut(t).state = TaskState::Offered { agent: a, until };
                self.touch(t);
                let conversation = self.task(t).id.clone();
                self.schedule(until, t, TimerKind::Offer);
                self.events.push(RouteEvent::Offered {
                    conversation,
                    agent: agent_id,
                    expires_at: until,
                });
            }
            None => self.assign(t, a, now),
        }
    }

    fn assign(&mut self, t: TaskIdx, a: AgentIdx, now: Millis) {
        self.task_mut(t).state = TaskState::Assigned {
            agent: a,
            since: now,
            awaiting_since: Some(now),
        };
        self.touch(t);
        let task = self.task(t);
        let (queue, queued_at, conversation) = (task.queue, task.queued_at, task.id.clone());
        if let Some(s) = self.queues[queue].agent_silence_seconds {
            let at = now + self.wait_ms(s);
            self.schedule(at, t, TimerKind::Silence);
        }
        let waited_ms = now - queued_at;
        let sla = self.wait_ms(self.queues[queue].sla_seconds);
        let c = self.counter(queue, now);
        c.answered += 1;
        if waited_ms <= sla {
            c.answered_in_sla += 1;
        }
        self.events.push(RouteEvent::Assigned {
            conversation,
            agent: self.agents[a as usize].agent.id.clone(),
            waited_ms,
        });
    }

    fn counter(&mut self, queue: usize, now: Millis) -> &mut DayCounters {
        let c = &mut self.counters[queue];
        let day = day_of(now);
        if c.day != day {
            *c = DayCounters {
                day,
                ..DayCounters::default()
            };
        }
        c
    }

    /// The agent accepts the conversation offered to it.
    ///
    /// # Errors
    /// Unknown ids, or [`RouteError::Refused`] when it is not offered to this agent.
    pub fn accept(
        &mut self,
        conversation: &str,
        agent: &str,
        now: Millis,
    ) -> Result<(), RouteError> {
        self.tick(now);
        let (t, a) = self.offered_to(conversation, agent)?;
        self.assign(t, a, now);
        Ok(())
    }

    /// The conversation and agent, when the one is offered to the other.
    fn offered_to(
        &self,
        conversation: &str,
        agent: &str,
    ) -> Result<(TaskIdx, AgentIdx), RouteError> {
        let (t, a) = (self.task_idx(conversation)?, self.agent_idx(agent)?);
        match self.task(t).state {
            TaskState::Offered { agent: held, .. } if held == a => Ok((t, a)),
            _ => Err(RouteError::Refused(format!(
                "conversation `{conversation}` is not offered to agent `{agent}`"
            ))),
        }
    }

    /// The agent declines the conversation offered to it; it goes to the next agent and is
    /// not offered to this one again.
    ///
    /// # Errors
    /// Unknown ids, or [`RouteError::Refused`] when it is not offered to this agent.
    pub fn decline(
        &mut self,
        conversation: &str,
        agent: &str,
        now: Millis,
    ) -> Result<(), RouteError> {
        self.tick(now);
        let (t, a) = self.offered_to(conversation, agent)?;
        self.give_back(t, a, now);
        self.events.push(RouteEvent::Declined {
            conversation: self.task(t).id.clone(),
            agent: self.agents[a as usize].agent.id.clone(),
        });
        self.place(t, now);
        self.fill(a, now);
        Ok(())
    }

    /// Returns a held conversation to its lane, marked as declined by the agent.
    fn give_back(&mut self, t: TaskIdx, a: AgentIdx, now: Millis) {
        self.release_agent_of(t, now);
        let cooldown = self.queues[self.task(t).queue].decline_cooldown_seconds;
        let until = now + self.wait_ms(cooldown);
        let task = self.task_mut(t);
        task.declined.retain(|&(d, _)| d != a);
        task.declined.push((a, until));
        self.wait(t, now);
    }

    /// An agent takes a conversation itself (from the console): one offered to it, one
    /// reserved for it, or one waiting in a lane it is eligible for, capacity permitting.
    ///
    /// # Errors
    /// Unknown ids, or [`RouteError::Refused`] saying why the agent may not take it.
    pub fn claim(
        &mut self,
        conversation: &str,
        agent: &str,
        now: Millis,
    ) -> Result<(), RouteError> {
        self.tick(now);
        let (t, a) = (self.task_idx(conversation)?, self.agent_idx(agent)?);
        let state = self.task(t).state;
        match state {
            TaskState::Offered { agent: held, .. } if held == a => {
                self.assign(t, a, now);
                return Ok(());
            }
            TaskState::Offered { .. } | TaskState::Assigned { .. } => {
                return Err(RouteError::Refused(format!(
                    "conversation `{conversation}` is already offered to or held by another agent"
                )));
            }
            TaskState::Reserved(owner) if owner != a => {
                return Err(RouteError::Refused(format!(
                    "conversation `{conversation}` is reserved for its dedicated agent `{}` for now",
                    self.agents[owner as usize].agent.id
                )));
            }
            TaskState::Reserved(_) => {}
            TaskState::Waiting => {
                let lane = self.task(t).lane;
                if !self.agents[a as usize].lanes.contains(&lane) {
                    return Err(RouteError::Refused(self.ineligibility(lane, a)));
                }
            }
        }
        let slot = &self.agents[a as usize];
        if slot.load >= slot.agent.capacity {
            return Err(RouteError::Refused(format!(
                "agent `{agent}` is at capacity ({} of {})",
                slot.load, slot.agent.capacity
            )));
        }
        self.detach_task(t, now);
        self.add_load(a, 1, now);
        self.assign(t, a, now);
        Ok(())
    }

    /// The assigned agent answered the customer: the silence timer stops.
    ///
    /// # Errors
    /// [`RouteError::UnknownConversation`].
    pub fn agent_replied(&mut self, conversation: &str) -> Result<(), RouteError> {
        let t = self.task_idx(conversation)?;
        if let TaskState::Assigned { awaiting_since, .. } = &mut self.task_mut(t).state {
            *awaiting_since = None;
            self.touch(t);
        }
        Ok(())
    }

    /// The customer wrote while an agent holds the conversation: the silence timer starts,
    /// unless it already runs.
    ///
    /// # Errors
    /// [`RouteError::UnknownConversation`].
    pub fn customer_wrote(&mut self, conversation: &str, now: Millis) -> Result<(), RouteError> {
        self.tick(now);
        let t = self.task_idx(conversation)?;
        let queue = self.task(t).queue;
        if let TaskState::Assigned {
            awaiting_since: awaiting @ None,
            ..
        } = &mut self.task_mut(t).state
        {
            *awaiting = Some(now);
            self.touch(t);
            if let Some(s) = self.queues[queue].agent_silence_seconds {
                let at = now + self.wait_ms(s);
                self.schedule(at, t, TimerKind::Silence);
            }
        }
        Ok(())
    }

    /// The conversation leaves routing: resolved by its agent (`handled`: its handle time
    /// counts toward wait estimates), or cancelled, abandoned, handed back or moved to the
    /// async path. The agent's capacity is freed and it takes the next conversation.
    ///
    /// # Errors
    /// [`RouteError::UnknownConversation`].
    pub fn finish(
        &mut self,
        conversation: &str,
        handled: bool,
        now: Millis,
    ) -> Result<(), RouteError> {
        self.tick(now);
        let t = self.task_idx(conversation)?;
        let task = self.task(t);
        let (queue, state) = (task.queue, task.state);
        let agent = self.detach_task(t, now);
        match state {
            TaskState::Assigned { since, .. } if handled => {
                let h = &mut self.handle_times[queue];
                if h.len() == HANDLE_WINDOW {
                    h.pop_front();
                }
                h.push_back((now - since) as f64 / 1000.0);
            }
            TaskState::Waiting | TaskState::Reserved(_) | TaskState::Offered { .. } => {
                self.counter(queue, now).left += 1;
            }
            TaskState::Assigned { .. } => {}
        }
        self.tasks[t as usize] = None;
        self.free_tasks.push(t);
        self.task_index.remove(conversation);
        if let Some(a) = agent {
            self.fill(a, now);
        }
        Ok(())
    }

    fn touch(&mut self, t: TaskIdx) {
        self.seq += 1;
        let gen = self.seq;
        self.task_mut(t).gen = gen;
    }

    /// Moves the conversation to another queue (an agent's transfer, or a re-route): it leaves
    /// its agent, starts that queue's ladder, and keeps its place in time. With `to_agent`, it
    /// waits for that agent first (as for a dedicated agent), then for anyone eligible.
    ///
    /// # Errors
    /// Unknown conversation or queue.
    pub fn transfer(
        &mut self,
        conversation: &str,
        queue: &str,
        to_agent: Option<&str>,
        now: Millis,
    ) -> Result<(), RouteError> {
        self.tick(now);
        let t = self.task_idx(conversation)?;
        let q = *self
            .queue_index
            .get(queue)
            .ok_or_else(|| RouteError::UnknownQueue(queue.to_owned()))?;
        let owner = to_agent.map(|a| self.agent_idx(a)).transpose()?;
        let agent = self.detach_task(t, now);
        let language = self.task(t).language.clone();
        let lane = self.lane_for(q, 0, language.as_deref());
        let task = self.task_mut(t);
        task.queue = q;
        task.step = 0;
        task.lane = lane;
        task.entered_queue_at = now;
        task.declined.clear();
        task.owner = owner;
        let until = now + self.wait_ms(self.queues[q].owner_wait_seconds);
        self.reserve_or_wait(t, owner, until, now);
        if let Some(a) = agent {
            self.fill(a, now);
        }
        Ok(())
    }

    /// A reserved conversation stops waiting for its dedicated agent.
    fn fall_back(&mut self, t: TaskIdx, now: Millis) {
        let TaskState::Reserved(owner) = self.task(t).state else {
            return;
        };
        self.detach_task(t, now);
        self.events.push(RouteEvent::OwnerFallback {
            conversation: self.task(t).id.clone(),
            agent: self.agents[owner as usize].agent.id.clone(),
        });
        self.catch_up_steps(t, now);
        self.wait(t, now);
        self.place(t, now);
    }

    /// Fires every timer due at or before `now`, in time order, each at its own due time.
    pub fn advance(&mut self, now: Millis) {
        while let Some(&Reverse((at, _, t, gen, kind))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.tick(at);
            let live = self.tasks[t as usize]
                .as_ref()
                .is_some_and(|task| task.gen == gen);
            if live {
                self.fire(t, kind, at);
            }
        }
        self.tick(now);
    }

    /// An agent let an offer lapse (`offer`) or left an assigned customer unanswered: the
    /// conversation goes back to its place in line and to the next agent, and the agent is set
    /// away (not responding).
    fn take_back(&mut self, t: TaskIdx, agent: AgentIdx, at: Millis, offer: bool) {
        self.give_back(t, agent, at);
        let conversation = self.task(t).id.clone();
        let agent_id = self.agents[agent as usize].agent.id.clone();
        let (event, why) = if offer {
            (
                RouteEvent::OfferExpired {
                    conversation,
                    agent: agent_id.clone(),
                },
                "did not accept an offered conversation in time",
            )
        } else {
            (
                RouteEvent::Reclaimed {
                    conversation,
                    agent: agent_id.clone(),
                },
                "left a customer unanswered past the queue's silence limit",
            )
        };
        self.events.push(event);
        self.events.push(RouteEvent::AgentAway {
            agent: agent_id,
            why: why.into(),
        });
        self.change_presence(agent, AgentStatus::Away, at);
        self.place(t, at);
    }

    fn fire(&mut self, t: TaskIdx, kind: TimerKind, at: Millis) {
        match (kind, self.task(t).state) {
            (TimerKind::Offer, TaskState::Offered { agent, .. }) => {
                self.take_back(t, agent, at, true);
            }
            (TimerKind::Silence, TaskState::Assigned { agent, .. }) => {
                self.take_back(t, agent, at, false);
            }
            (TimerKind::Step, TaskState::Waiting) => {
                self.detach_task(t, at);
                self.take_step(t, at);
                self.catch_up_steps(t, at);
                self.wait(t, at);
                self.place(t, at);
            }
            (TimerKind::Owner, TaskState::Reserved(_)) => self.fall_back(t, at),
            (TimerKind::Retry, TaskState::Waiting) => {
                self.place(t, at);
                // Other declines may run out later.
                if self.task(t).state == TaskState::Waiting {
                    if let Some(next) = self.next_retry(t) {
                        self.schedule(next, t, TimerKind::Retry);
                    }
                }
            }
            _ => {}
        }
    }

    // ----- questions ----------------------------------------------------------------------

    /// 1-based position of a waiting conversation among those waiting in its lane (the
    /// conversations competing for the same agents), or `None` when it is not waiting.
    pub fn position(&self, conversation: &str) -> Option<usize> {
        let t = self.task_idx(conversation).ok()?;
        let task = self.task(t);
        let key = self.wait_key(t);
        match task.state {
            TaskState::Waiting => {
                Some(1 + self.lanes[task.lane as usize].waiting.range(..key).count())
            }
            TaskState::Reserved(a) => {
                Some(1 + self.agents[a as usize].personal.range(..key).count())
            }
            _ => None,
        }
    }

    /// Mean handle time of `queue` in seconds: the last 200 observed, once
    /// 5 are known, else the configured default.
    pub fn handle_seconds(&self, queue: &str) -> f64 {
        self.queue_index
            .get(queue)
            .map(|&q| &self.handle_times[q])
            .filter(|h| h.len() >= HANDLE_MIN_SAMPLES)
            .map_or(self.config.default_handle_seconds, |h| {
                h.iter().sum::<f64>() / h.len() as f64
            })
    }

    /// Estimated wait of a conversation that is waiting (see [`estimate_wait`]): from its
    /// position, the staffing of its lane and the queue's handle time. `None` when it is not
    /// waiting.
    pub fn estimate(&self, conversation: &str) -> Option<WaitEstimate> {
        let position = self.position(conversation)?;
        let task = self.task(self.task_idx(conversation).ok()?);
        let lane = &self.lanes[task.lane as usize];
        let handle = self.handle_seconds(&self.queues[task.queue].name);
        let slots = u32::try_from(lane.slots).unwrap_or(u32::MAX);
        let busy = u32::try_from(lane.busy).unwrap_or(u32::MAX);
        Some(estimate_wait(position, slots, busy, handle, &self.config))
    }

    /// Live figures of a queue at `now`.
    ///
    /// # Errors
    /// [`RouteError::UnknownQueue`].
    pub fn queue_stats(&self, queue: &str, now: Millis) -> Result<QueueStats, RouteError> {
        let q = *self
            .queue_index
            .get(queue)
            .ok_or_else(|| RouteError::UnknownQueue(queue.to_owned()))?;
        let waiting: Vec<&Task> = self
            .live_tasks()
            .map(|(_, t)| t)
            .filter(|t| t.queue == q && !matches!(t.state, TaskState::Assigned { .. }))
            .collect();
        let longest = waiting
            .iter()
            .map(|t| (now - t.queued_at).max(0))
            .max()
            .unwrap_or(0);
        let (skills, _) = self.requirements(q, 0);
        let skilled = || {
            self.agents.iter().filter(|s| {
                s.agent.status == AgentStatus::Online && skills.iter().all(|r| r.met_by(&s.agent))
            })
        };
        let mut today = self.counters[q];
        if today.day != day_of(now) {
            today = DayCounters {
                day: day_of(now),
                ..DayCounters::default()
            };
        }
        let decided = today.answered + today.left;
        Ok(QueueStats {
            name: queue.to_owned(),
            waiting: waiting.len(),
            longest_wait_seconds: longest as f64 / 1000.0,
            agents_available: skilled().filter(|s| Self::available(s)).count(),
            agents_online: skilled().count(),
            service_level_today: (decided > 0)
                .then(|| today.answered_in_sla as f64 / decided as f64),
            today,
            handle_seconds: self.handle_seconds(queue),
        })
    }

    /// Why `agent` is not eligible for `lane`, in words.
    fn ineligibility(&self, lane: LaneIdx, a: AgentIdx) -> String {
        let l = &self.lanes[lane as usize];
        let agent = &self.agents[a as usize].agent;
        let missing: Vec<String> = l
            .skills
            .iter()
            .filter(|s| !s.met_by(agent))
            .map(|s| match agent.level(s.name()) {
                Some(level) => format!("{s} (has level {level})"),
                None => s.to_string(),
            })
            .collect();
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("lacks skill {}", missing.join(", ")));
        }
        if let Some(lang) = &l.language {
            if !agent.speaks(lang) {
                why.push(format!("does not speak `{lang}`"));
            }
        }
        format!("agent `{}` is not eligible: {}", agent.id, why.join("; "))
    }

    /// Why the conversation is where it is, and every agent's verdict.
    ///
    /// # Errors
    /// [`RouteError::UnknownConversation`].
    pub fn explain(&self, conversation: &str, now: Millis) -> Result<Explanation, RouteError> {
        let t = self.task_idx(conversation)?;
        let task = self.task(t);
        let lane = &self.lanes[task.lane as usize];
        let (state, holder) = match task.state {
            TaskState::Waiting => ("waiting", None),
            TaskState::Reserved(a) => ("reserved", Some(a)),
            TaskState::Offered { agent, .. } => ("offered", Some(agent)),
            TaskState::Assigned { agent, .. } => ("assigned", Some(agent)),
        };
        let mut ranked: Vec<AgentVerdict> = lane
            .available
            .iter()
            .filter(|k| !self.declined(task, k.2))
            .enumerate()
            .map(|(i, k)| {
                let slot = &self.agents[k.2 as usize];
                let by = match lane.strategy {
                    Strategy::LongestIdle => format!(
                        "longest idle: idle {:.0} s",
                        (now - slot.idle_since).max(0) as f64 / 1000.0
                    ),
                    Strategy::LeastBusy => format!(
                        "least busy: {} of {} in use",
                        slot.load, slot.agent.capacity
                    ),
                    Strategy::MostSkilled => format!("most skilled: proficiency sum {}", -k.0),
                };
                AgentVerdict {
                    agent: slot.agent.id.clone(),
                    eligible: true,
                    rank: Some(i + 1),
                    why: format!("online, skilled, free capacity; ranked by {by}"),
                }
            })
            .collect();
        for (i, slot) in self.agents.iter().enumerate() {
            let a = i as AgentIdx;
            if ranked.iter().any(|v| v.agent == slot.agent.id.as_str()) {
                continue;
            }
            let why = if !slot.lanes.contains(&task.lane) {
                self.ineligibility(task.lane, a)
            } else if self.declined(task, a) {
                "declined this conversation, or lost it, within the cooldown".to_owned()
            } else if slot.agent.status != AgentStatus::Online {
                format!("is {:?}", slot.agent.status).to_lowercase()
            } else {
                format!("at capacity ({} of {})", slot.load, slot.agent.capacity)
            };
            let why = if holder == Some(a) {
                format!("holds it ({state}); {why}")
            } else {
                why
            };
            ranked.push(AgentVerdict {
                agent: slot.agent.id.clone(),
                eligible: false,
                rank: None,
                why,
            });
        }
        Ok(Explanation {
            conversation: task.id.clone(),
            queue: self.queues[task.queue].name.clone(),
            queue_why: task.why.clone(),
            state,
            agent: holder.map(|a| self.agents[a as usize].agent.id.clone()),
            step: task.step,
            skills: lane.skills.iter().map(ToString::to_string).collect(),
            language: lane.language.clone(),
            effective_priority: self.effective(t, now),
            position: self.position(conversation),
            agents: ranked,
        })
    }

    /// Whether `agent` serves the queue (skills, level, language) where `conversation` is;
    /// false when either is unknown.
    pub fn eligible(&self, conversation: &str, agent: &str) -> bool {
        match (self.task_idx(conversation), self.agent_index.get(agent)) {
            (Ok(t), Some(&a)) => self.agents[a as usize].lanes.contains(&self.task(t).lane),
            _ => false,
        }
    }

    /// The agent holding a conversation (offered or assigned) and the state, if any.
    pub fn holder(&self, conversation: &str) -> Option<(&str, bool)> {
        let task = self.task(self.task_idx(conversation).ok()?);
        match task.state {
            TaskState::Offered { agent, .. } => {
                Some((self.agents[agent as usize].agent.id.as_str(), false))
            }
            TaskState::Assigned { agent, .. } => {
                Some((self.agents[agent as usize].agent.id.as_str(), true))
            }
            _ => None,
        }
    }

    /// Checks every invariant of the module documentation, and that the indexes agree with
    /// the state. O(agents × lanes + conversations × agents); for tests and audits.
    ///
    /// # Errors
    /// The first invariant found broken, in words.
    pub fn audit(&self) -> Result<(), String> {
        let mut load = vec![0u32; self.agents.len()];
        let mut in_lanes = 0;
        for (t, task) in self.live_tasks() {
            if self.task_index.get(&task.id) != Some(&t) {
                return Err(format!("`{}` is not indexed", task.id));
            }
            let key = self.wait_key(t);
            let in_lane = self.lanes[task.lane as usize].waiting.contains(&key);
            let reserved_in = self
                .agents
                .iter()
                .filter(|a| a.personal.contains(&key))
                .count();
            match task.state {
                TaskState::Waiting if !in_lane || reserved_in != 0 => {
                    return Err(format!("waiting `{}` is not in exactly its lane", task.id))
                }
                TaskState::Reserved(a)
                    if in_lane
                        || reserved_in != 1
                        || !self.agents[a as usize].personal.contains(&key) =>
                {
                    return Err(format!("reserved `{}` is misplaced", task.id))
                }
                TaskState::Offered { agent, .. } | TaskState::Assigned { agent, .. } => {
                    if in_lane || reserved_in != 0 {
                        return Err(format!("held `{}` is still waiting somewhere", task.id));
                    }
                    load[agent as usize] += 1;
                }
                _ => {}
            }
            if task.state == TaskState::Waiting {
                in_lanes += 1;
                let lane = &self.lanes[task.lane as usize];
                if let Some(k) = lane.available.iter().find(|k| !self.declined(task, k.2)) {
                    return Err(format!(
                        "`{}` waits while agent `{}` is eligible with free capacity",
                        task.id, self.agents[k.2 as usize].agent.id
                    ));
                }
            }
        }
        if in_lanes != self.lanes.iter().map(|l| l.waiting.len()).sum::<usize>() {
            return Err("a lane holds a conversation that is not waiting".into());
        }
        for (i, slot) in self.agents.iter().enumerate() {
            let a = i as AgentIdx;
            if slot.load != load[i] {
                return Err(format!(
                    "agent `{}` load {} but holds {}",
                    slot.agent.id, slot.load, load[i]
                ));
            }
            if slot.load > slot.agent.capacity {
                return Err(format!("agent `{}` is over capacity", slot.agent.id));
            }
            for l in 0..self.lanes.len() as LaneIdx {
                let admits = self.lane_admits(l, &slot.agent);
                if admits != slot.lanes.contains(&l) {
                    return Err(format!(
                        "agent `{}` lane membership is stale",
                        slot.agent.id
                    ));
                }
                let listed = self.lanes[l as usize].available.iter().any(|k| k.2 == a);
                if listed != (admits && Self::available(slot)) {
                    return Err(format!(
                        "agent `{}` availability index is stale",
                        slot.agent.id
                    ));
                }
                if listed
                    && !self.lanes[l as usize]
                        .available
                        .contains(&self.agent_key(l, a))
                {
                    return Err(format!(
                        "agent `{}` is listed under a stale key",
                        slot.agent.id
                    ));
                }
            }
            if Self::available(slot) && !slot.personal.is_empty() {
                return Err(format!(
                    "agent `{}` is free but has reserved work",
                    slot.agent.id
                ));
            }
        }
        for (l, lane) in self.lanes.iter().enumerate() {
            let (slots, busy) = self
                .agents
                .iter()
                .filter(|s| {
                    s.agent.status == AgentStatus::Online && s.lanes.contains(&(l as LaneIdx))
                })
                .fold((0u64, 0u64), |(c, b), s| {
                    (c + u64::from(s.agent.capacity), b + u64::from(s.load))
                });
            if (slots, busy) != (lane.slots, lane.busy) {
                return Err(format!("lane {l} staffing is stale"));
            }
        }
        Ok(())
    }
}
