//! `baton simulate`: a discrete-event simulation of customers arriving, waiting, abandoning and
//! being served, driving Baton's real [`Dispatcher`] with simulated time.
//!
//! Why a crate of its own: routing changes must be judged before they meet customers. The
//! simulator uses the very code that routes in production (the dispatcher never reads a
//! clock), so what it reports is what that policy would do under that load, and on M/M/c
//! scenarios it can be checked against Erlang C ([`ErlangC`]).
//!
//! The model: Poisson arrivals per stream; handle times exponential, log-normal or fixed;
//! optional patience (a customer still waiting after it abandons); agent groups with skills,
//! languages, capacity and shifts. Offers are accepted at once (simulated agents are always at
//! their desks) and agents answer at once, so offer and silence timeouts never fire; steps,
//! priorities, aging and strategies all apply. Arrivals stop at `duration_seconds`; the queue
//! then drains, so every customer counted is answered, abandoned, or left waiting when nobody
//! can serve them (reported as `unserved`).

use baton_domain::{Agent, AgentId, AgentStatus, ConversationId, Skill};
use baton_policy::yaml;
use baton_route::dispatch::RouteEvent;
use baton_route::{
    estimate_wait, Dispatcher, ErlangC, Millis, NewConversation, QueueConfig, RoutingConfig,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Exp, LogNormal};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// A scenario file (`baton simulate SCENARIO.yaml`; CONTRACTS.md shows the minimal one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of the random draws: the same scenario and seed give the same report.
    #[serde(default = "one")]
    pub seed: u64,
    /// Simulated seconds during which customers arrive.
    pub duration_seconds: f64,
    /// Queues, with every setting a policy queue has (skills, steps, strategy, aging...).
    pub queues: Vec<QueueConfig>,
    /// Agent groups.
    pub agents: Vec<AgentGroup>,
    /// Arrival streams.
    pub arrivals: Vec<ArrivalStream>,
    /// Handle time of every conversation, unless a stream sets its own.
    pub handle_time: Distribution,
    /// How long a customer waits before abandoning, unless a stream sets its own; absent,
    /// nobody abandons.
    #[serde(default)]
    pub patience: Option<Distribution>,
    /// Priority and wait-estimate settings, as in a policy.
    #[serde(default)]
    pub routing: RoutingConfig,
}

fn one() -> u64 {
    1
}

/// A group of identical agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentGroup {
    /// How many agents.
    pub count: u32,
    /// Name prefix of the agents' ids (`NAME-1`, `NAME-2`...); default `group-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// Skills (names, or `{name, level}`).
    #[serde(default)]
    pub skills: Vec<Skill>,
    /// Languages; empty means any.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Concurrent conversations per agent.
    #[serde(default = "one_u32")]
    pub capacity: u32,
    /// When the group works; absent, always.
    #[serde(default)]
    pub shifts: Vec<Shift>,
    /// Repeat the shifts with this period (e.g. 86400 for daily); absent, they happen once.
    #[serde(default)]
    pub repeat_every_seconds: Option<f64>,
    /// Strategy and routing apply to every agent alike; this staggers each agent's shift
    /// start by this many seconds times its number in the group, for rolling starts.
    #[serde(default)]
    pub stagger_seconds: f64,
}

fn one_u32() -> u32 {
    1
}

/// One working period, in simulated seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Goes online.
    pub start_seconds: f64,
    /// Goes offline (finishing the conversations it holds).
    pub end_seconds: f64,
}

/// A Poisson stream of customers into one queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalStream {
    /// The queue.
    pub queue: String,
    /// Mean arrivals per hour.
    pub per_hour: f64,
    /// Priority of these customers.
    #[serde(default)]
    pub priority: i64,
    /// Their language.
    #[serde(default)]
    pub language: Option<String>,
    /// Their handle time, instead of the scenario's.
    #[serde(default)]
    pub handle_time: Option<Distribution>,
    /// Their patience, instead of the scenario's.
    #[serde(default)]
    pub patience: Option<Distribution>,
}

/// A distribution of durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Exponential with this mean (the M/M/c assumption).
    Exponential {
        /// Mean, seconds.
        mean_seconds: f64,
    },
    /// Log-normal with this mean and standard deviation (how handle times usually look).
    Lognormal {
        /// Mean, seconds.
        mean_seconds: f64,
        /// Standard deviation, seconds.
        sd_seconds: f64,
    },
    /// Always the same.
    Fixed {
        /// Seconds.
        seconds: f64,
    },
}

/// A drawable form of [`Distribution`].
#[derive(Debug, Clone, Copy)]
enum Sampler {
    Exponential(Exp<f64>),
    Lognormal(LogNormal<f64>),
    Fixed(f64),
}

impl Sampler {
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Sampler::Exponential(d) => d.sample(rng),
            Sampler::Lognormal(d) => d.sample(rng),
            Sampler::Fixed(s) => *s,
        }
    }
}

impl Distribution {
    fn mean(&self) -> f64 {
        match *self {
            Distribution::Exponential { mean_seconds }
            | Distribution::Lognormal { mean_seconds, .. } => mean_seconds,
            Distribution::Fixed { seconds } => seconds,
        }
    }

    fn sampler(&self) -> Result<Sampler, String> {
        let positive = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(format!(
                    "`{what}` is {v}: give a positive number of seconds"
                ))
            }
        };
        Ok(match *self {
            Distribution::Exponential { mean_seconds } => {
                let m = positive(mean_seconds, "mean_seconds")?;
                Sampler::Exponential(Exp::new(1.0 / m).map_err(|e| e.to_string())?)
            }
            Distribution::Lognormal {
                mean_seconds,
                sd_seconds,
            } => {
                let m = positive(mean_seconds, "mean_seconds")?;
                let s = positive(sd_seconds, "sd_seconds")?;
                // The normal's parameters from the log-normal's mean and sd.
                let sigma2 = (1.0 + (s / m).powi(2)).ln();
                Sampler::Lognormal(
                    LogNormal::new(m.ln() - sigma2 / 2.0, sigma2.sqrt())
                        .map_err(|e| e.to_string())?,
                )
            }
            Distribution::Fixed { seconds } => Sampler::Fixed(positive(seconds, "seconds")?),
        })
    }
}

/// A scenario that cannot run, with where and how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {path}{sep}{message}\n  hint: {hint}", sep = if path.is_empty() { "" } else { ": " })]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key (`arrivals[0].per_hour`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Figures for one queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueReport {
    /// Customers who arrived for this queue.
    pub offered: u64,
    /// Customers an agent took.
    pub answered: u64,
    /// Customers who gave up waiting.
    pub abandoned: u64,
    /// Customers still waiting when nobody was left to serve them.
    pub unserved: u64,
    /// Mean wait of answered customers, seconds.
    pub mean_wait_seconds: f64,
    /// 90th percentile wait of answered customers, seconds.
    pub p90_wait_seconds: f64,
    /// Share answered within the queue's `sla_seconds`, of those answered or abandoned.
    pub service_level: f64,
    /// Share of offered customers who abandoned.
    pub abandonment_rate: f64,
    /// Mean handle time of answered customers, seconds.
    pub average_handle_seconds: f64,
    /// Handle time of this queue's conversations over the staffed capacity of the agents
    /// eligible for it.
    pub occupancy: f64,
    /// Mean absolute error of the engine's unpadded wait estimate at arrival against the wait
    /// that followed, answered customers, seconds.
    pub ewt_mean_abs_error_seconds: f64,
    /// Share of answered customers who waited longer than the (padded) wait they were quoted.
    pub quote_exceeded_share: f64,
    /// Mean quoted wait, seconds.
    pub mean_quote_seconds: f64,
    /// Erlang C's figures for this queue, when the scenario is M/M/c for it (one stream,
    /// exponential handle times, no patience, agents of capacity 1 that serve only this queue
    /// and work throughout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erlang_c: Option<ErlangReport>,
}

/// What Erlang C predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErlangReport {
    /// Agents.
    pub agents: u32,
    /// Offered load, Erlangs.
    pub offered_load: f64,
    /// Occupancy.
    pub occupancy: f64,
    /// Probability of waiting.
    pub probability_of_waiting: f64,
    /// Mean wait, seconds.
    pub mean_wait_seconds: f64,
    /// Service level at the queue's SLA.
    pub service_level: f64,
}

/// The simulation's report (CONTRACTS.md, `baton simulate`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Per queue, by name.
    pub queues: BTreeMap<String, QueueReport>,
    /// Customers simulated.
    pub arrivals: u64,
    /// Simulated seconds until the last customer was served.
    pub simulated_seconds: f64,
}

/// Parses and checks a scenario.
///
/// # Errors
/// [`ScenarioError`] with the line and column of the first problem.
pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    let err =
        |(line, column): yaml::Position, path: &str, message: String, hint: &str| ScenarioError {
            file: file.to_owned(),
            line,
            column,
            path: path.to_owned(),
            message,
            hint: hint.to_owned(),
        };
    let (scenario, index) = yaml::deserialize::<Scenario>(text)
        .map_err(|e| err(e.position, &e.path, e.message, e.hint))?;
    let at = |path: &str, message: String, hint: &str| err(index.locate(path), path, message, hint);
    if !(scenario.duration_seconds.is_finite() && scenario.duration_seconds > 0.0) {
        return Err(at(
            "duration_seconds",
            "duration_seconds must be above 0".into(),
            "give the simulated time in seconds, e.g. 86400 for a day",
        ));
    }
    if scenario.queues.is_empty() || scenario.arrivals.is_empty() || scenario.agents.is_empty() {
        return Err(at(
            "",
            "a scenario needs queues, agents and arrivals".into(),
            "see CONTRACTS.md for a minimal scenario",
        ));
    }
    let names: Vec<&str> = scenario.queues.iter().map(|q| q.name.as_str()).collect();
    for (i, q) in scenario.queues.iter().enumerate() {
        if names.iter().filter(|n| **n == q.name).count() > 1 {
            return Err(at(
                &format!("queues[{i}].name"),
                format!("queue `{}` is declared twice", q.name),
                "give every queue its own name",
            ));
        }
        for (j, s) in q.steps.iter().enumerate() {
            if let Some(o) = &s.overflow {
                if !names.contains(&o.as_str()) {
                    return Err(at(
                        &format!("queues[{i}].steps[{j}].overflow"),
                        format!("no queue `{o}` to overflow to"),
                        "name one of the scenario's queues",
                    ));
                }
            }
        }
    }
    for (i, a) in scenario.arrivals.iter().enumerate() {
        if !names.contains(&a.queue.as_str()) {
            return Err(at(
                &format!("arrivals[{i}].queue"),
                format!("no queue `{}`", a.queue),
                &format!("name one of the scenario's queues: {}", names.join(", ")),
            ));
        }
        if !(a.per_hour.is_finite() && a.per_hour > 0.0) {
            return Err(at(
                &format!("arrivals[{i}].per_hour"),
                format!("per_hour is {}", a.per_hour),
                "give the mean arrivals per hour, above 0",
            ));
        }
        for (key, d) in [("handle_time", a.handle_time), ("patience", a.patience)] {
            if let Some(d) = d {
                d.sampler()
                    .map_err(|m| at(&format!("arrivals[{i}].{key}"), m, "fix the distribution"))?;
            }
        }
    }
    scenario
        .handle_time
        .sampler()
        .map_err(|m| at("handle_time", m, "fix the distribution"))?;
    if let Some(p) = scenario.patience {
        p.sampler()
            .map_err(|m| at("patience", m, "fix the distribution"))?;
    }
    for (i, g) in scenario.agents.iter().enumerate() {
        if let Some(name) = &g.name {
            if let Err(e) = AgentId::parse(format!("{name}-1")) {
                return Err(at(
                    &format!("agents[{i}].name"),
                    e.to_string(),
                    "use letters, digits, `-`, `_`, `.` or `:`",
                ));
            }
        }
        if g.count == 0 || g.capacity == 0 {
            return Err(at(
                &format!("agents[{i}]"),
                "count and capacity must be at least 1".into(),
                "drop the group, or give it agents",
            ));
        }
        if g.shifts.iter().any(|s| s.end_seconds <= s.start_seconds)
            || g.repeat_every_seconds.is_some_and(|r| r <= 0.0)
        {
            return Err(at(
                &format!("agents[{i}].shifts"),
                "a shift ends before it starts, or repeats every 0 seconds".into(),
                "give start_seconds < end_seconds, and a positive repeat_every_seconds",
            ));
        }
    }
    Ok(scenario)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival(usize),
    Complete(u32),
    Abandon(u32),
    ShiftStart(u32),
    ShiftEnd(u32),
}

#[derive(Debug, Clone, Copy)]
struct Customer {
    stream: u32,
    arrived: Millis,
    expected: f32,
    quoted: u32,
    assigned: Option<Millis>,
    abandoned: bool,
    handled_ms: Millis,
}

fn ms(seconds: f64) -> Millis {
    (seconds * 1000.0).round() as Millis
}

struct Sim<'a> {
    scenario: &'a Scenario,
    dispatcher: Dispatcher,
    rng: ChaCha8Rng,
    heap: BinaryHeap<Reverse<(Millis, u64, Ev)>>,
    seq: u64,
    customers: Vec<Customer>,
    handle: Vec<Sampler>,
    patience: Vec<Option<Sampler>>,
    interarrival: Vec<Exp<f64>>,
    /// Each agent, with its group.
    agents: Vec<(Agent, usize)>,
    online_since: Vec<Option<Millis>>,
    online_ms: Vec<Millis>,
}

impl Sim<'_> {
    fn push(&mut self, at: Millis, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, ev)));
    }

    /// Accepts offers at once and starts the handle time of each assignment.
    fn pump(&mut self, now: Millis) {
        loop {
            let events = self.dispatcher.drain_events();
            if events.is_empty() {
                return;
            }
            for e in events {
                match e {
                    RouteEvent::Offered {
                        conversation,
                        agent,
                        ..
                    } => {
                        // An offer to an agent of ours is always acceptable at once.
                        let _ = self
                            .dispatcher
                            .accept(conversation.as_str(), agent.as_str(), now);
                    }
                    RouteEvent::Assigned { conversation, .. } => {
                        let _ = self.dispatcher.agent_replied(conversation.as_str());
                        let Ok(n) = conversation.as_str().parse::<u32>() else {
                            continue;
                        };
                        let c = &mut self.customers[n as usize];
                        c.assigned = Some(now);
                        let h = ms(self.handle[c.stream as usize].sample(&mut self.rng)).max(1);
                        c.handled_ms = h;
                        self.push(now + h, Ev::Complete(n));
                    }
                    _ => {}
                }
            }
        }
    }

    fn set_online(&mut self, agent: u32, online: bool, now: Millis) {
        let i = agent as usize;
        let status = if online {
            AgentStatus::Online
        } else {
            AgentStatus::Offline
        };
        if online {
            self.online_since[i].get_or_insert(now);
        } else if let Some(since) = self.online_since[i].take() {
            self.online_ms[i] += now - since;
        }
        let id = self.agents[i].0.id.to_string();
        let _ = self.dispatcher.set_presence(&id, status, now);
        self.pump(now);
    }

    fn arrive(&mut self, stream: usize, now: Millis) {
        let s = &self.scenario.arrivals[stream];
        let n = self.customers.len() as u32;
        self.customers.push(Customer {
            stream: stream as u32,
            arrived: now,
            expected: 0.0,
            quoted: 0,
            assigned: None,
            abandoned: false,
            handled_ms: 0,
        });
        // A number is always an id.
        let Ok(id) = ConversationId::parse(n.to_string()) else {
            return;
        };
        let new = NewConversation {
            id: id.clone(),
            queue: s.queue.clone(),
            priority: s.priority,
            language: s.language.clone(),
            owner: None,
            queued_at: now,
            why: "simulated arrival".into(),
        };
        // Parsed and checked: the queue exists and ids are fresh.
        let _ = self.dispatcher.enqueue(new, now);
        self.pump(now);
        let estimate = self.dispatcher.estimate(id.as_str()).unwrap_or_else(|| {
            // Taken at once: no wait expected; the quote is the smallest step.
            estimate_wait(1, 1, 0, 1.0, &self.scenario.routing)
        });
        let c = &mut self.customers[n as usize];
        c.expected = estimate.expected_seconds as f32;
        c.quoted = u32::try_from(estimate.quoted_seconds).unwrap_or(u32::MAX);
        if c.assigned.is_none() {
            if let Some(p) = self.patience[stream] {
                let wait = ms(p.sample(&mut self.rng));
                self.push(now + wait, Ev::Abandon(n));
            }
        }
        let gap = ms(self.interarrival[stream].sample(&mut self.rng));
        if ((now + gap) as f64) < self.scenario.duration_seconds * 1000.0 {
            self.push(now + gap, Ev::Arrival(stream));
        }
    }

    fn run(&mut self) -> Millis {
        let mut now = 0;
        loop {
            let next_event = self.heap.peek().map(|Reverse((at, ..))| *at);
            let next_timer = self.dispatcher.next_timer();
            match (next_event, next_timer) {
                (None, None) => return now,
                (e, Some(t)) if e.is_none_or(|e| t < e) => {
                    now = t;
                    self.dispatcher.advance(t);
                    self.pump(t);
                }
                _ => {
                    let Some(Reverse((at, _, ev))) = self.heap.pop() else {
                        return now;
                    };
                    now = at;
                    match ev {
                        Ev::Arrival(s) => self.arrive(s, at),
                        Ev::Complete(n) => {
                            let _ = self.dispatcher.finish(&n.to_string(), true, at);
                            self.pump(at);
                        }
                        Ev::Abandon(n) => {
                            let c = &mut self.customers[n as usize];
                            if c.assigned.is_none() {
                                c.abandoned = true;
                                let _ = self.dispatcher.finish(&n.to_string(), false, at);
                                self.pump(at);
                            }
                        }
                        Ev::ShiftStart(a) => self.set_online(a, true, at),
                        Ev::ShiftEnd(a) => self.set_online(a, false, at),
                    }
                }
            }
        }
    }
}

/// Runs a checked scenario.
pub fn simulate(scenario: &Scenario) -> Report {
    let routing = scenario.routing.clone();
    let mut sim = Sim {
        scenario,
        dispatcher: Dispatcher::new(scenario.queues.clone(), routing),
        rng: ChaCha8Rng::seed_from_u64(scenario.seed),
        heap: BinaryHeap::new(),
        seq: 0,
        customers: Vec::new(),
        handle: Vec::new(),
        patience: Vec::new(),
        interarrival: Vec::new(),
        agents: Vec::new(),
        online_since: Vec::new(),
        online_ms: Vec::new(),
    };
    for s in &scenario.arrivals {
        // Checked by `parse`; a scenario built in code falls back to the scenario's figures.
        let handle = s.handle_time.unwrap_or(scenario.handle_time);
        sim.handle.push(
            handle
                .sampler()
                .unwrap_or(Sampler::Fixed(handle.mean().max(1.0))),
        );
        sim.patience.push(
            s.patience
                .or(scenario.patience)
                .and_then(|p| p.sampler().ok()),
        );
        sim.interarrival
            .push(Exp::new(s.per_hour.max(1e-9) / 3600.0).unwrap_or(
                Exp::new(1.0).unwrap_or_else(|_| unreachable!("rate 1 is a valid exponential")),
            ));
    }
    let end = ms(scenario.duration_seconds);
    for (g, group) in scenario.agents.iter().enumerate() {
        let prefix = group.name.clone().unwrap_or_else(|| format!("group-{g}"));
        for k in 0..group.count {
            let id = format!("{prefix}-{}", k + 1);
            let i = sim.agents.len() as u32;
            let always = group.shifts.is_empty();
            // Group names are checked by `parse`; a scenario built in code gets plain ids.
            let Ok(agent_id) =
                AgentId::parse(id.clone()).or_else(|_| AgentId::parse(format!("agent-{i}")))
            else {
                continue;
            };
            let agent = Agent {
                id: agent_id,
                name: id.clone(),
                skills: group.skills.clone(),
                languages: group.languages.clone(),
                capacity: group.capacity,
                status: if always {
                    AgentStatus::Online
                } else {
                    AgentStatus::Offline
                },
            };
            // Capacity is at least 1 (checked) and the agent is new: always accepted.
            let _ = sim.dispatcher.upsert_agent(agent.clone(), 0);
            sim.agents.push((agent, g));
            sim.online_since.push(always.then_some(0));
            sim.online_ms.push(0);
            let offset = group.stagger_seconds * f64::from(k);
            let period = group.repeat_every_seconds;
            let mut cycle = 0.0;
            loop {
                for s in &group.shifts {
                    let start = ms(s.start_seconds + offset + cycle);
                    if start < end {
                        sim.push(start, Ev::ShiftStart(i));
                        sim.push(ms(s.end_seconds + offset + cycle), Ev::ShiftEnd(i));
                    }
                }
                match period {
                    Some(p) if ms(cycle + p) < end => cycle += p,
                    _ => break,
                }
            }
        }
    }
    for s in 0..scenario.arrivals.len() {
        let first = ms(sim.interarrival[s].sample(&mut sim.rng));
        if first < end {
            sim.push(first, Ev::Arrival(s));
        }
    }
    let finished = sim.run();
    for i in 0..sim.agents.len() {
        if let Some(since) = sim.online_since[i].take() {
            sim.online_ms[i] += finished.max(end) - since;
        }
    }
    report(&sim, finished)
}

fn report(sim: &Sim<'_>, finished: Millis) -> Report {
    let scenario = sim.scenario;
    let mut queues = BTreeMap::new();
    for (qi, q) in scenario.queues.iter().enumerate() {
        let streams: Vec<usize> = (0..scenario.arrivals.len())
            .filter(|&s| scenario.arrivals[s].queue == q.name)
            .collect();
        let mine = sim
            .customers
            .iter()
            .filter(|c| streams.contains(&(c.stream as usize)));
        let (mut offered, mut abandoned, mut unserved, mut in_sla) = (0u64, 0u64, 0u64, 0u64);
        let (mut err, mut exceeded, mut quotes, mut handled) = (0.0, 0u64, 0.0, 0i64);
        let mut waits = Vec::new();
        let sla = ms(q.sla_seconds as f64);
        for c in mine {
            offered += 1;
            quotes += f64::from(c.quoted);
            match c.assigned {
                Some(at) => {
                    let wait = at - c.arrived;
                    let w = wait as f64 / 1000.0;
                    waits.push(w);
                    in_sla += u64::from(wait <= sla);
                    err += (f64::from(c.expected) - w).abs();
                    exceeded += u64::from(w > f64::from(c.quoted));
                    handled += c.handled_ms;
                }
                None if c.abandoned => abandoned += 1,
                None => unserved += 1,
            }
        }
        let answered = waits.len() as u64;
        waits.sort_by(f64::total_cmp);
        let p90 = if waits.is_empty() {
            0.0
        } else {
            waits[((waits.len() as f64 * 0.9).ceil() as usize).clamp(1, waits.len()) - 1]
        };
        let staffed: i64 = sim
            .agents
            .iter()
            .enumerate()
            .filter(|(_, (agent, _))| q.skills.iter().all(|s| s.met_by(agent)))
            .map(|(i, (agent, _))| sim.online_ms[i] * i64::from(agent.capacity))
            .sum();
        let per = |x: f64, n: u64| if n == 0 { 0.0 } else { x / n as f64 };
        queues.insert(
            q.name.clone(),
            QueueReport {
                offered,
                answered,
                abandoned,
                unserved,
                mean_wait_seconds: per(waits.iter().sum(), answered),
                p90_wait_seconds: p90,
                service_level: per(in_sla as f64, answered + abandoned),
                abandonment_rate: per(abandoned as f64, offered),
                average_handle_seconds: per(handled as f64 / 1000.0, answered),
                occupancy: if staffed > 0 {
                    handled as f64 / staffed as f64
                } else {
                    0.0
                },
                ewt_mean_abs_error_seconds: per(err, answered),
                quote_exceeded_share: per(exceeded as f64, answered),
                mean_quote_seconds: per(quotes, offered),
                erlang_c: erlang_for(scenario, qi, &streams),
            },
        );
    }
    Report {
        queues,
        arrivals: sim.customers.len() as u64,
        simulated_seconds: finished as f64 / 1000.0,
    }
}

/// Erlang C for queue `qi` when the scenario is M/M/c for it.
fn erlang_for(scenario: &Scenario, qi: usize, streams: &[usize]) -> Option<ErlangReport> {
    let q = &scenario.queues[qi];
    let [s] = streams else { return None };
    let stream = &scenario.arrivals[*s];
    let handle = stream.handle_time.unwrap_or(scenario.handle_time);
    let Distribution::Exponential { mean_seconds } = handle else {
        return None;
    };
    if stream.patience.or(scenario.patience).is_some()
        || scenario.queues.len() != 1
        || !q.steps.is_empty()
        || scenario
            .agents
            .iter()
            .any(|g| g.capacity != 1 || !g.shifts.is_empty())
    {
        return None;
    }
    let agents: u32 = scenario.agents.iter().map(|g| g.count).sum();
    let rate = stream.per_hour / 3600.0;
    let e = ErlangC::new(agents, rate, mean_seconds)?;
    Some(ErlangReport {
        agents,
        offered_load: rate * mean_seconds,
        occupancy: e.occupancy,
        probability_of_waiting: e.probability_of_waiting,
        mean_wait_seconds: e.mean_wait_seconds,
        service_level: e.service_level(q.sla_seconds as f64, agents, mean_seconds),
    })
}

/// Draws used by tests to check the samplers; not part of the simulation.
#[cfg(test)]
fn draw_mean(d: Distribution, n: usize, seed: u64) -> f64 {
    let s = d.sampler().expect("valid");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| s.sample(&mut rng)).sum::<f64>() / n as f64
}

#[cfg(test)]
mod tests;
