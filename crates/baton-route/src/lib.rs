//! Baton's routing, first version (DESIGN.md section 5): which queue a handoff goes to, with what
//! priority, where it stands in line, how long the customer should expect to wait, and which
//! agent may take it.
//!
//! Why a crate of its own: routing must be deterministic given its inputs so that it can be
//! simulated and explained, so it is pure functions over plain data. The store feeds it the
//! waiting conversations and the agents; it never touches I/O.

pub mod dispatch;
pub mod erlang;
pub mod hours;

use baton_domain::{Agent, ReasonCode};
use serde::{Deserialize, Serialize};

pub use dispatch::{Dispatcher, NewConversation, RouteError, RouteEvent};
pub use erlang::{erlang_quantile, ErlangC};
pub use hours::{BusinessHours, Millis, Schedule};

/// A skill a queue requires, with the lowest proficiency (1 to 5) it accepts.
///
/// On the wire either a plain name, `billing` (any proficiency), or an object,
/// `{name: billing, min_level: 3}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SkillRequirement {
    /// Any proficiency.
    Name(String),
    /// At least `min_level`.
    Level {
        /// The skill.
        name: String,
        /// Lowest proficiency accepted, 1 to 5.
        min_level: u8,
    },
}

impl SkillRequirement {
    /// The skill's name.
    pub fn name(&self) -> &str {
        match self {
            SkillRequirement::Name(n) | SkillRequirement::Level { name: n, .. } => n,
        }
    }

    /// The lowest proficiency accepted.
    pub fn min_level(&self) -> u8 {
        match self {
            SkillRequirement::Name(_) => baton_domain::MIN_LEVEL,
            SkillRequirement::Level { min_level, .. } => *min_level,
        }
    }

    /// Whether `agent` has the skill at the level needed.
    pub fn met_by(&self, agent: &Agent) -> bool {
        agent
            .level(self.name())
            .is_some_and(|l| l >= self.min_level())
    }
}

impl std::fmt::Display for SkillRequirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkillRequirement::Name(n) => f.write_str(n),
            SkillRequirement::Level { name, min_level } => write!(f, "{name}>={min_level}"),
        }
    }
}

impl From<&str> for SkillRequirement {
    fn from(name: &str) -> Self {
        SkillRequirement::Name(name.to_owned())
    }
}

/// How the agent is chosen among those eligible.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent who has waited longest since last being given a conversation.
    #[default]
    LongestIdle,
    /// The agent with the lowest share of their capacity in use, then longest idle.
    LeastBusy,
    /// The agent with the highest proficiency in the queue's skills, then longest idle.
    MostSkilled,
}

/// A step of a queue's expiry ladder: after `after_seconds` in the queue, either relax what an
/// agent must have, or overflow to another queue (TaskRouter's workflow targets, as a list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Seconds since the conversation joined the queue.
    pub after_seconds: u64,
    /// The skills required from this step on (replacing the queue's); absent keeps them.
    #[serde(default)]
    pub skills: Option<Vec<SkillRequirement>>,
    /// From this step on, agents who do not speak the customer's language are eligible too.
    #[serde(default)]
    pub any_language: bool,
    /// Move to this queue instead (its own steps then apply).
    #[serde(default)]
    pub overflow: Option<String>,
}

/// One queue, as the policy declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The queue's name (`A-Z a-z 0-9 - _ . :`).
    pub name: String,
    /// CEL condition over `customer`, `signals`, `conversation`, `topic`, `intent` and
    /// `language` that sends a handoff here; checked in policy order before tiers and topics.
    #[serde(default)]
    pub when: Option<String>,
    /// Reason codes (topics) that send a handoff here, e.g. `[billing_dispute, refund]`.
    #[serde(default)]
    pub topics: Vec<ReasonCode>,
    /// Customer tiers that send a handoff here regardless of topic, e.g. `[vip]`.
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Skills an agent needs to take conversations from this queue.
    #[serde(default)]
    pub skills: Vec<SkillRequirement>,
    /// Only agents who speak the customer's language (when it is known) are eligible.
    #[serde(default = "yes")]
    pub match_language: bool,
    /// How the agent is chosen.
    #[serde(default)]
    pub strategy: Strategy,
    /// Target time to first human response, in seconds.
    #[serde(default = "default_sla")]
    pub sla_seconds: u64,
    /// Target time for each next human response after a customer message, in seconds.
    #[serde(default)]
    pub next_response_sla_seconds: Option<u64>,
    /// Added to every conversation's priority in this queue.
    #[serde(default)]
    pub priority: i64,
    /// Priority points a conversation gains per minute of waiting, so nobody starves.
    /// Default 1: a VIP bonus of 30 is overtaken after half an hour.
    #[serde(default = "default_aging")]
    pub aging_per_minute: f64,
    /// Seconds an agent has to accept an offered conversation before it goes to the next
    /// agent (and the agent is set `away`); absent assigns at once, without an offer.
    #[serde(default = "default_offer_timeout")]
    pub offer_timeout_seconds: Option<u64>,
    /// Seconds during which a conversation an agent declined (or let lapse, or lost) is not
    /// offered to that agent again. Default 300.
    #[serde(default = "default_decline_cooldown")]
    pub decline_cooldown_seconds: u64,
    /// Seconds an assigned agent may leave the customer without an answer (since assignment
    /// or the customer's last message) before the conversation goes back to the queue.
    #[serde(default)]
    pub agent_silence_seconds: Option<u64>,
    /// Seconds a conversation waits for the customer's dedicated agent (account owner, or the
    /// agent the bot named) before any eligible agent may take it.
    #[serde(default = "default_owner_wait")]
    pub owner_wait_seconds: u64,
    /// Expiry ladder, in order of `after_seconds`.
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// When humans staff the queue; absent means always.
    #[serde(default)]
    pub hours: Option<crate::hours::BusinessHours>,
    /// Over this quoted wait, the customer is offered the async path instead of waiting.
    #[serde(default)]
    pub max_wait_seconds: Option<u64>,
    /// The queue for handoffs no other queue matches. Exactly one queue has it.
    #[serde(default)]
    pub default: bool,
}

fn yes() -> bool {
    true
}

fn default_sla() -> u64 {
    300
}

fn default_aging() -> f64 {
    1.0
}

fn default_offer_timeout() -> Option<u64> {
    Some(30)
}

fn default_decline_cooldown() -> u64 {
    300
}

fn default_owner_wait() -> u64 {
    60
}

impl QueueConfig {
    /// A queue with every setting at its default.
    pub fn named(name: impl Into<String>) -> Self {
        QueueConfig {
            name: name.into(),
            when: None,
            topics: Vec::new(),
            tiers: Vec::new(),
            skills: Vec::new(),
            match_language: true,
            strategy: Strategy::default(),
            sla_seconds: default_sla(),
            next_response_sla_seconds: None,
            priority: 0,
            aging_per_minute: default_aging(),
            offer_timeout_seconds: default_offer_timeout(),
            decline_cooldown_seconds: default_decline_cooldown(),
            agent_silence_seconds: None,
            owner_wait_seconds: default_owner_wait(),
            steps: Vec::new(),
            hours: None,
            max_wait_seconds: None,
            default: false,
        }
    }
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
    /// The quote is at least this quantile of the wait distribution, so that no more than
    /// `1 - quote_quantile` of customers wait longer than quoted. Default 0.9.
    pub quote_quantile: f64,
    /// A waiting customer is told again when the quote moves by at least this share.
    /// Default 0.25.
    pub update_change: f64,
    /// An SLA warning fires when this share of the SLA has passed. Default 0.8.
    pub sla_warning_share: f64,
    /// What a customer is offered instead of waiting, when the queue is closed or the wait is
    /// over its `max_wait_seconds`: any of `email`, `callback`, `meeting`.
    pub async_options: Vec<String>,
    /// The booking link given with the `meeting` option.
    pub meeting_link: Option<String>,
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
            quote_quantile: 0.9,
            update_change: 0.25,
            sla_warning_share: 0.8,
            async_options: vec!["email".into(), "callback".into(), "meeting".into()],
            meeting_link: None,
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
    /// The first queue (in policy order) whose `when` condition holds, evaluated by the
    /// policy.
    pub rule_queue: Option<&'a str>,
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

/// Chooses the queue for a handoff: the queue the bot asked for if it exists; else the queue
/// whose `when` condition held; else the first
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
        if let Some(q) = req.rule_queue.and_then(by_name) {
            chosen = Some((
                q,
                format!("its rule `{}` holds", q.when.as_deref().unwrap_or_default()),
            ));
        }
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

/// An estimated wait.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitEstimate {
    /// The engine's unpadded estimate, in seconds.
    pub expected_seconds: f64,
    /// What the customer is told: padded and rounded up, in seconds.
    pub quoted_seconds: u64,
    /// Agent slots (free capacity of online, skilled agents) the estimate assumed.
    pub serving_slots: u32,
}

/// Estimated wait for the customer at `position` (1-based) in its line.
///
/// `slots` is the total capacity of online agents eligible for the conversation, `busy_slots`
/// how much of it is in use. If a slot is free for this customer (`position <= slots - busy`),
/// the wait is zero. Otherwise the customer needs `k = position - free` slots to come free; with
/// every slot busy and exponential handle times (the M/M/c assumption of Erlang C) slots free up
/// at `slots / handle_seconds` per second, so the wait is Erlang-distributed with shape `k`:
/// `expected = k * handle_seconds / slots`. A queue with nobody on shift counts as one busy
/// slot, so the quote stays finite and pessimistic.
///
/// The quote underpromises twice over: it is the larger of `expected * wait_padding` and the
/// `quote_quantile` of that distribution, rounded up to `wait_rounding_seconds` and never below
/// one rounding step.
pub fn estimate_wait(
    position: usize,
    slots: u32,
    busy_slots: u32,
    handle_seconds: f64,
    config: &RoutingConfig,
) -> WaitEstimate {
    let (effective, busy) = if slots == 0 {
        (1, 1)
    } else {
        (slots, busy_slots.min(slots))
    };
    let free = (effective - busy) as usize;
    let needed = position.saturating_sub(free);
    let rate = f64::from(effective) / handle_seconds.max(1e-3);
    let expected = needed as f64 / rate;
    let quantile = erlang_quantile(needed as u64, rate, config.quote_quantile);
    let rounding = config.wait_rounding_seconds.max(1);
    let padded = (expected * config.wait_padding)
        .max(quantile)
        .min(1e9)
        .ceil() as u64;
    let quoted = padded.div_ceil(rounding).max(1) * rounding;
    WaitEstimate {
        expected_seconds: (expected * 10.0).round() / 10.0,
        quoted_seconds: quoted,
        serving_slots: slots,
    }
}

#[cfg(test)]
mod tests;
