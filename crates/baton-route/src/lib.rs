//! Baton's routing, first version (DESIGN.md section 5): which queue a handoff goes to, with what
//! priority, where it stands in line, how long the customer should expect to wait, and which
//! agent may take it.
//!
//! Why a crate of its own: routing must be deterministic given its inputs so that it can be
//! simulated and explained, so it is pure functions over plain data. The store feeds it the
//! waiting conversations and the agents; it never touches I/O.

use baton_domain::{Agent, AgentStatus, ReasonCode};
use serde::{Deserialize, Serialize};

/// One queue, as the policy declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The queue's name (`A-Z a-z 0-9 - _ . :`).
    pub name: String,
    /// Reason codes (topics) that send a handoff here, e.g. `[billing_dispute, refund]`.
    #[serde(default)]
    pub topics: Vec<ReasonCode>,
    /// Customer tiers that send a handoff here regardless of topic, e.g. `[vip]`.
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Skills an agent needs to take conversations from this queue.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Target time to first human response, in seconds.
    #[serde(default = "default_sla")]
    pub sla_seconds: u64,
    /// Added to every conversation's priority in this queue.
    #[serde(default)]
    pub priority: i64,
    /// The queue for handoffs no other queue matches. Exactly one queue has it.
    #[serde(default)]
    pub default: bool,
}

fn default_sla() -> u64 {
    300
}

/// Priority and wait-estimate settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Priority added per customer tier, e.g. `{vip: 30, enterprise: 20}`.
    pub tier_priority: std::collections::BTreeMap<String, i64>,
    /// Priority added when `high_value` fired.
    pub high_value_priority: i64,
    /// Priority added when `urgency` fired.
    pub urgency_priority: i64,
    /// Priority added when `anger` or `churn_risk` fired.
    pub at_risk_priority: i64,
    /// Average handle time assumed until enough conversations have been observed, in seconds.
    /// Default 360 s, a typical chat AHT for support desks.
    pub default_handle_seconds: f64,
    /// Factor the estimate is multiplied by before it is quoted: underpromise. Default 1.5,
    /// from DESIGN.md section 5 ("quote 15 minutes when 10 is typical").
    pub wait_padding: f64,
    /// Quotes are rounded up to a multiple of this many seconds. Default 60.
    pub wait_rounding_seconds: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            tier_priority: [("vip".to_owned(), 30), ("enterprise".to_owned(), 20)]
                .into_iter()
                .collect(),
            high_value_priority: 10,
            urgency_priority: 10,
            at_risk_priority: 5,
            default_handle_seconds: 360.0,
            wait_padding: 1.5,
            wait_rounding_seconds: 60,
        }
    }
}

/// What routing needs to know about the conversation being handed off.
#[derive(Debug, Clone, Default)]
pub struct RouteRequest<'a> {
    /// Topic codes seen in the conversation, first seen first.
    pub topics: &'a [ReasonCode],
    /// Codes the decision counted, strongest first.
    pub reasons: &'a [ReasonCode],
    /// The customer's tier.
    pub tier: Option<&'a str>,
    /// A queue the bot asked for by name.
    pub requested_queue: Option<&'a str>,
}

/// Where a handoff goes and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The chosen queue's name.
    pub queue: String,
    /// Effective priority: higher is served first.
    pub priority: i64,
    /// Why this queue, in words.
    pub why: String,
}

/// Chooses the queue for a handoff: the queue the bot asked for if it exists; else the first
/// queue (in policy order) whose tiers include the customer's tier; else the first whose topics
/// include the strongest topic among the decision's reasons, then among the conversation's
/// topics; else the default queue.
///
/// Returns `None` only when `queues` is empty (a validated policy always has a default queue).
pub fn select_queue(
    queues: &[QueueConfig],
    config: &RoutingConfig,
    req: &RouteRequest<'_>,
) -> Option<Route> {
    let by_name = |name: &str| queues.iter().find(|q| q.name == name);
    let mut chosen = None;
    if let Some(q) = req.requested_queue.and_then(by_name) {
        chosen = Some((q, "the bot asked for this queue".to_owned()));
    }
    if chosen.is_none() {
        if let Some(tier) = req.tier {
            chosen = queues
                .iter()
                .find(|q| q.tiers.iter().any(|t| t.eq_ignore_ascii_case(tier)))
                .map(|q| (q, format!("customer tier `{tier}`")));
        }
    }
    if chosen.is_none() {
        chosen = req
            .reasons
            .iter()
            .chain(req.topics.iter())
            .find_map(|code| {
                queues
                    .iter()
                    .find(|q| q.topics.contains(code))
                    .map(|q| (q, format!("topic `{code}`")))
            });
    }
    let (queue, why) = chosen.or_else(|| {
        queues
            .iter()
            .find(|q| q.default)
            .map(|q| (q, "default queue".to_owned()))
    })?;
    Some(Route {
        queue: queue.name.clone(),
        priority: priority(queue, config, req),
        why,
    })
}

/// Effective priority at arrival: the queue's base, plus tier, plus value and urgency bonuses.
pub fn priority(queue: &QueueConfig, config: &RoutingConfig, req: &RouteRequest<'_>) -> i64 {
    let mut p = queue.priority;
    if let Some(tier) = req.tier {
        p += config
            .tier_priority
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(tier))
            .map_or(0, |(_, v)| *v);
    }
    let has = |code| req.reasons.contains(&code);
    if has(ReasonCode::HighValue) {
        p += config.high_value_priority;
    }
    if has(ReasonCode::Urgency) {
        p += config.urgency_priority;
    }
    if has(ReasonCode::Anger) || has(ReasonCode::ChurnRisk) {
        p += config.at_risk_priority;
    }
    p
}

/// A conversation waiting in a queue, as the store reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The conversation's id.
    pub conversation_id: String,
    /// Effective priority.
    pub priority: i64,
    /// When it joined the queue, as a sortable sequence (e.g. milliseconds since the epoch).
    pub queued_at: i64,
}

/// Orders a queue: higher priority first, then first in, first out.
pub fn queue_order(a: &Waiting, b: &Waiting) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.queued_at.cmp(&b.queued_at))
        .then_with(|| a.conversation_id.cmp(&b.conversation_id))
}

/// 1-based position of `conversation_id` in `waiting` (any order), or `None` if absent.
pub fn position(waiting: &[Waiting], conversation_id: &str) -> Option<usize> {
    let me = waiting
        .iter()
        .find(|w| w.conversation_id == conversation_id)?;
    Some(
        1 + waiting
            .iter()
            .filter(|w| queue_order(w, me) == std::cmp::Ordering::Less)
            .count(),
    )
}

/// An estimated wait.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WaitEstimate {
    /// The engine's unpadded estimate, in seconds.
    pub expected_seconds: f64,
    /// What the customer is told: padded and rounded up, in seconds.
    pub quoted_seconds: u64,
    /// Agent slots (free capacity of online, skilled agents) the estimate assumed.
    pub serving_slots: u32,
}

/// Estimated wait for the customer at `position` (1-based).
///
/// `slots` is the total capacity of online agents with the queue's skills, `busy_slots` how much
/// of it is in use. If a slot is free for this customer (`position <= slots - busy`), the wait is
/// zero. Otherwise the customer needs `position - free` slots to come free; with every slot busy
/// and exponential handle times (the M/M/c assumption of Erlang C), slots free up at
/// `slots / handle_seconds` per second, so `expected = (position - free) * handle_seconds / slots`.
/// A queue with nobody on shift counts as one busy slot, so the quote stays finite and
/// pessimistic. The quote is `expected * padding`, rounded up to `rounding` seconds, and never
/// below one rounding step.
pub fn estimate_wait(
    position: usize,
    slots: u32,
    busy_slots: u32,
    handle_seconds: f64,
    padding: f64,
    rounding: u64,
) -> WaitEstimate {
    let (effective, busy) = if slots == 0 {
        (1, 1)
    } else {
        (slots, busy_slots.min(slots))
    };
    let free = (effective - busy) as usize;
    let needed = position.saturating_sub(free) as f64;
    let expected = needed * handle_seconds / f64::from(effective);
    let rounding = rounding.max(1);
    let padded = (expected * padding).ceil() as u64;
    let quoted = padded.div_ceil(rounding).max(1) * rounding;
    WaitEstimate {
        expected_seconds: (expected * 10.0).round() / 10.0,
        quoted_seconds: quoted,
        serving_slots: slots,
    }
}

/// Staffing of `queue` as the wait estimate needs it: `(slots, busy)`, the total capacity of
/// online agents with the queue's skills and how much of it their current conversations use
/// (`load` gives each agent's count, capped at its capacity).
pub fn staffing(queue: &QueueConfig, agents: &[Agent], load: impl Fn(&Agent) -> u32) -> (u32, u32) {
    agents
        .iter()
        .filter(|a| a.status == AgentStatus::Online && a.has_skills(&queue.skills))
        .fold((0, 0), |(slots, busy), a| {
            (slots + a.capacity, busy + load(a).min(a.capacity))
        })
}

/// Agents who may take a conversation from `queue` now: online, with its skills, and below
/// capacity. `load` gives each agent's current number of assigned conversations. Sorted by the
/// least-busy strategy: lowest load share first, then id.
pub fn eligible_agents<'a>(
    queue: &QueueConfig,
    agents: &'a [Agent],
    load: impl Fn(&Agent) -> u32,
) -> Vec<&'a Agent> {
    let mut out: Vec<(&Agent, u32)> = agents
        .iter()
        .filter(|a| a.status == AgentStatus::Online && a.has_skills(&queue.skills))
        .map(|a| (a, load(a)))
        .filter(|(a, l)| *l < a.capacity)
        .collect();
    out.sort_by(|(a, la), (b, lb)| {
        (u64::from(*la) * u64::from(b.capacity))
            .cmp(&(u64::from(*lb) * u64::from(a.capacity)))
            .then_with(|| a.id.cmp(&b.id))
    });
    out.into_iter().map(|(a, _)| a).collect()
}

#[cfg(test)]
mod tests;
