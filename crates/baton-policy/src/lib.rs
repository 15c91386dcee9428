//! Baton's policy: the Define and Decide stages (DESIGN.md sections 1 and 3).
//!
//! Why this crate exists: what counts as a reason to hand off is the operator's call, not the
//! code's. A policy file (YAML) sets weights, thresholds, deterministic triggers, CEL conditions,
//! queues, routing and customer-facing messages; this crate turns its text into a validated
//! [`Policy`] in three stages, as a policy language should:
//!
//! 1. text -> value tree with the position of every key ([`yaml`]);
//! 2. value tree -> typed [`PolicyFile`] (serde, unknown keys rejected);
//! 3. typed file -> [`Policy`]: reason codes checked, ranges checked, CEL compiled, queues
//!    checked.
//!
//! **Every** problem is collected, each with line, column and a hint ([`PolicyErrors`]):
//! stages 1 and 2 report every duplicate key, alias, unknown or missing key and ill-typed value
//! together ([`yaml::deserialize_all`]; only a YAML syntax error stops them at once); stage 3,
//! which needs a well-typed file, then reports every problem in the values.
//!
//! CEL conditions are checked against what they can see ([`CEL_VARIABLES`], and the keys and
//! types of each, listed in the `names` module): a `signals` key that is no reason code, a
//! `conversation` field that does not exist, or a comparison of values of different types
//! (`customer.deal_value >= "big"`) is an error with a "did you mean" hint, since such a
//! rule could never fire. `customer` is open (clients send any attributes, read as
//! `customer.NAME`), so an unknown `customer` field is not an error; its known fields are
//! type-checked.
//!
//! [`Policy::decide`] then turns a turn's signals into a [`Decision`](baton_domain::Decision): deterministic triggers
//! first, then CEL rules, then the weighted score against a threshold that signals may lower.
//! A rule that fails to evaluate is skipped and reported in the decision, never silently ignored.
#![forbid(unsafe_code)]

mod decide;
mod names;
pub mod yaml;

pub use decide::{CustomerValue, Facts};

use baton_detect::DetectConfig;
use baton_domain::{Customer, Mode, QueueName, ReasonCode};
use baton_route::{QueueConfig, RoutingConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The built-in default policy, used when no `--policy` is given.
pub const DEFAULT_POLICY_YAML: &str = include_str!("default.yaml");

/// Variables a CEL condition may use.
pub const CEL_VARIABLES: &[&str] = &["customer", "signals", "conversation"];

/// Variables a queue's `when` condition may use: a rule's, plus `topic` (the strongest topic
/// code, or `""`), `intent` (the brief's intent) and `language` (the customer's, or `""`).
pub const QUEUE_CEL_VARIABLES: &[&str] = &[
    "customer",
    "signals",
    "conversation",
    "topic",
    "intent",
    "language",
];

/// A rule: a CEL condition and what happens when it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name, reported in decisions.
    pub name: String,
    /// CEL condition over `customer`, `signals` and `conversation`.
    pub when: String,
    /// Escalate when the condition holds.
    #[serde(default)]
    pub escalate: bool,
    /// Raise the mode to at least this when the condition holds.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Reason code reported when the rule escalates.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Customer-facing message templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    /// Said at escalation. Placeholders: `{name}`, `{queue}`, `{position}`, `{wait}`.
    pub escalation: String,
    /// Said when the conversation returns to the AI.
    pub handback: String,
    /// Said at escalation when the queue is closed. Placeholders as `escalation`, plus
    /// `{opens}` (when it opens) and `{options}` (the async options).
    #[serde(default = "default_closed")]
    pub closed: String,
    /// Said at escalation when the quoted wait is over the queue's `max_wait_seconds`.
    #[serde(default = "default_long_wait")]
    pub long_wait: String,
}

fn default_closed() -> String {
    "Our {queue} team is away right now and back {opens}. You can leave it with us: {options}, and a person will pick this up with the whole conversation in front of them. Or stay with me meanwhile.".to_owned()
}

fn default_long_wait() -> String {
    "I'm bringing in a person from our {queue} team{name}; the wait is about {wait} right now. Rather not wait? Choose {options}, and a person will follow up with this whole conversation in front of them.".to_owned()
}

/// The policy file as written (stage 2). See `default.yaml` for every field, documented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version; only 1 exists.
    pub version: u32,
    /// Log decisions without acting on them.
    #[serde(default)]
    pub shadow: bool,
    /// Score needed to escalate, in `[0, 1]`.
    pub threshold: f64,
    /// Floor for the threshold after signals lower it.
    pub min_threshold: f64,
    /// Score from which the mode is `ai_assisted`.
    pub assist_threshold: f64,
    /// Weighted contribution from which a signal is reported as a reason.
    pub min_contribution: f64,
    /// Signal score from which a trigger fires.
    pub trigger_min_score: f64,
    /// Codes that escalate on their own.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Weight per code, in `[0, 1]`.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// How much a code at full strength lowers the threshold, in `[0, 0.5]`.
    #[serde(default)]
    pub lowers_threshold: BTreeMap<String, f64>,
    /// CEL rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Detector settings.
    #[serde(default)]
    pub detectors: DetectConfig,
    /// Queues; exactly one has `default: true`.
    pub queues: Vec<QueueConfig>,
    /// Priority and wait-estimate settings.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Customer-facing messages.
    pub messages: Messages,
}

/// A compiled rule.
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) program: cel::Program,
    pub(crate) escalate: bool,
    pub(crate) mode: Option<Mode>,
    pub(crate) reason: Option<ReasonCode>,
    /// The leading conjuncts of the condition (its top-level `&&` operands) that read only
    /// `customer`, compiled on their own. When they hold up to one that is false for a
    /// conversation's customer, the whole condition is false on every turn of it, so
    /// [`Policy::customer_value`] evaluates them once and decisions skip the rule.
    pub(crate) customer_guards: Vec<cel::Program>,
    /// The leading conjuncts of the condition that compare one signal with a number
    /// (`signals.vip_customer > 0`), read without CEL: when one fails on a turn, the whole
    /// condition is false and the decision skips the rule (and builds no CEL variables when
    /// no rule is left).
    pub(crate) signal_guards: Vec<SignalGuard>,
}

/// A condition part `signals.<code> > <number>` (or `>=`), checked on the turn's strongest
/// signal of that code (0 when there is none), as CEL would read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SignalGuard {
    pub(crate) code: ReasonCode,
    pub(crate) min: f64,
    pub(crate) inclusive: bool,
}

impl SignalGuard {
    /// Whether the part holds for a signal scoring `score`.
    pub(crate) fn holds(&self, score: f64) -> bool {
        if self.inclusive {
            score >= self.min
        } else {
            score > self.min
        }
    }
}

/// A validated policy, ready to decide.
pub struct Policy {
    /// The file it came from, as written.
    pub file: PolicyFile,
    pub(crate) triggers: Vec<ReasonCode>,
    pub(crate) weights: BTreeMap<ReasonCode, f64>,
    pub(crate) lowers: BTreeMap<ReasonCode, f64>,
    pub(crate) rules: Vec<Rule>,
    /// The CEL standard library, built once (building it per decision dominated the cost).
    pub(crate) cel_env: std::sync::Arc<cel::Env>,
    /// The signal codes the rules read as `signals.<code>`, or `None` when a rule reads the map
    /// some other way (`signals["..."]`, a macro over it): then every code is given.
    pub(crate) read_signals: Option<Vec<ReasonCode>>,
    /// Whether some rule names `customer`, and `conversation`: a decision builds only the
    /// variables some rule can read.
    pub(crate) reads_customer: bool,
    pub(crate) reads_conversation: bool,
    /// Queues with a `when` condition, compiled, in policy order.
    pub(crate) queue_rules: Vec<(String, cel::Program)>,
    /// Business hours of the queues that have them.
    pub(crate) schedules: BTreeMap<String, baton_route::Schedule>,
    /// [`Policy::customer_value`] of a customer Baton knows nothing about (a visitor, a bot
    /// that sends no customer), converted once when the policy is built.
    pub(crate) anonymous: Option<CustomerValue>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy").field("file", &self.file).finish()
    }
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyError {
    /// The file name, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The path of the offending key, e.g. `weights.frustation`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if !self.path.is_empty() {
            write!(f, " (at `{}`)", self.path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        let n = self.0.len();
        write!(f, "\n{n} error{} in policy", if n == 1 { "" } else { "s" })
    }
}

/// Collects errors with positions.
struct Checker<'a> {
    file: &'a str,
    index: &'a yaml::PathIndex,
    errors: Vec<PolicyError>,
}

impl Checker<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self.index.locate(path);
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            path: path.to_owned(),
            message: message.into(),
            hint,
        });
    }

    fn code(&mut self, path: &str, name: &str) -> Option<ReasonCode> {
        match name.parse::<ReasonCode>() {
            Ok(code) => Some(code),
            Err(_) => {
                let nearest = ReasonCode::ALL
                    .iter()
                    .map(|c| (strsim::levenshtein(c.as_str(), name), c.as_str()))
                    .min();
                let hint = match nearest {
                    Some((d, c)) if d <= 3 => format!("did you mean `{c}`?"),
                    _ => "reason codes are listed in CONTRACTS.md, e.g. `human_requested`, `refund`, `anger`".to_owned(),
                };
                self.error(path, format!("unknown reason code `{name}`"), Some(hint));
                None
            }
        }
    }

    /// Compiles a CEL condition that may use only `allowed` variables; reports at `path` a
    /// syntax error, an unknown variable, and every name or comparison that cannot work
    /// ([`names`]: an unknown signal code or `conversation` field, a number compared with a
    /// string, ...).
    fn condition(
        &mut self,
        path: &str,
        when: &str,
        allowed: &[&str],
        example: &str,
    ) -> Option<cel::Program> {
        match cel::Program::compile(when) {
            Ok(program) => {
                let unknown: Vec<String> = names::free_variables(program.expression())
                    .into_iter()
                    .filter(|v| !allowed.contains(&v.as_str()))
                    .map(|v| format!("`{v}`"))
                    .collect();
                if unknown.is_empty() {
                    let problems = names::problems(program.expression(), allowed);
                    if problems.is_empty() {
                        return Some(program);
                    }
                    for p in problems {
                        self.error(path, p.message, Some(p.hint));
                    }
                    return None;
                }
                let names: Vec<String> = allowed.iter().map(|v| format!("`{v}`")).collect();
                self.error(
                    path,
                    format!("condition uses unknown variable {}", unknown.join(", ")),
                    Some(format!("conditions may use {}", names.join(", "))),
                );
            }
            Err(e) => {
                let msg = e.to_string().lines().next().unwrap_or_default().to_owned();
                self.error(
                    path,
                    format!("invalid CEL condition: {msg}"),
                    Some(format!("CEL syntax: `{example}`")),
                );
            }
        }
        None
    }

    fn share(&mut self, path: &str, value: f64, max: f64) {
        if !(0.0..=max).contains(&value) {
            self.error(
                path,
                format!("{value} is outside [0, {max}]"),
                Some(format!("use a number from 0 to {max}")),
            );
        }
    }
}

impl Policy {
    /// The codes that escalate on their own (the policy's `triggers`).
    pub fn triggers(&self) -> &[ReasonCode] {
        &self.triggers
    }

    /// The built-in default policy.
    ///
    /// # Errors
    /// Only if the embedded file is invalid, which the crate's tests rule out.
    pub fn builtin() -> Result<Policy, PolicyErrors> {
        Policy::parse(DEFAULT_POLICY_YAML, "<built-in policy>")
    }

    /// Parses and validates a policy. `file` names the source in error messages.
    ///
    /// # Errors
    /// [`PolicyErrors`] with every problem found, each with line, column and a hint: every
    /// structural one (YAML, unknown or missing keys, wrong types) at once; when there is none,
    /// every problem in the values (ranges, reason codes, CEL conditions with the names and
    /// types they use, queues).
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyErrors> {
        // The built-in policy stands in for values that do not fit, so that every structural
        // problem is found in one pass.
        let model = yaml::parse(DEFAULT_POLICY_YAML)
            .map(|(value, _)| value)
            .unwrap_or_default();
        let (parsed, index) = yaml::deserialize_all::<PolicyFile>(text, &model).map_err(|errors| {
            PolicyErrors(
                errors
                    .into_iter()
                    .map(|e| {
                        let hint = if e.message.starts_with("invalid YAML") {
                            e.hint.to_owned()
                        } else {
                            format!(
                                "{}; the built-in policy (`baton check --print-default`) shows every key with its usual value",
                                e.hint
                            )
                        };
                        PolicyError {
                            file: file.to_owned(),
                            line: e.position.0,
                            column: e.position.1,
                            path: e.path,
                            message: e.message,
                            hint: Some(hint),
                        }
                    })
                    .collect(),
            )
        })?;
        let mut c = Checker {
            file,
            index: &index,
            errors: Vec::new(),
        };
        let mut policy = validate(parsed, &mut c);
        if c.errors.is_empty() {
            policy.anonymous = Some(policy.customer_value(&Customer::default()));
            Ok(policy)
        } else {
            Err(PolicyErrors(c.errors))
        }
    }

    /// The business hours of `queue`, when it has them.
    pub fn schedule(&self, queue: &str) -> Option<&baton_route::Schedule> {
        self.schedules.get(queue)
    }

    /// The queues, in policy order.
    pub fn queues(&self) -> &[QueueConfig] {
        &self.file.queues
    }

    /// Whether a rule's condition reads `conversation.language`, so the language must be known
    /// on every turn rather than only at a handoff.
    pub fn reads_language(&self) -> bool {
        self.file.rules.iter().any(|r| r.when.contains("language"))
    }

    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.file.queues.iter().find(|q| q.name == name)
    }
}

fn validate(file: PolicyFile, c: &mut Checker<'_>) -> Policy {
    if file.version != 1 {
        c.error(
            "version",
            format!("unsupported version {}", file.version),
            Some("use `version: 1`".into()),
        );
    }
    for (path, v) in [
        ("threshold", file.threshold),
        ("min_threshold", file.min_threshold),
        ("assist_threshold", file.assist_threshold),
        ("min_contribution", file.min_contribution),
        ("trigger_min_score", file.trigger_min_score),
    ] {
        c.share(path, v, 1.0);
    }
    if file.min_threshold > file.threshold {
        c.error(
            "min_threshold",
            "min_threshold is above threshold",
            Some("make min_threshold at most threshold".into()),
        );
    }
    if file.assist_threshold > file.threshold {
        c.error(
            "assist_threshold",
            "assist_threshold is above threshold",
            Some(
                "ai_assisted sits below escalation: make assist_threshold at most threshold".into(),
            ),
        );
    }
    let mut triggers = Vec::new();
    for (i, name) in file.triggers.iter().enumerate() {
        if let Some(code) = c.code(&format!("triggers[{i}]"), name) {
            triggers.push(code);
        }
    }
    let mut weights = BTreeMap::new();
    for (name, w) in &file.weights {
        let path = format!("weights.{name}");
        c.share(&path, *w, 1.0);
        if let Some(code) = c.code(&path, name) {
            weights.insert(code, *w);
        }
    }
    let mut lowers = BTreeMap::new();
    for (name, v) in &file.lowers_threshold {
        let path = format!("lowers_threshold.{name}");
        c.share(&path, *v, 0.5);
        if let Some(code) = c.code(&path, name) {
            lowers.insert(code, *v);
        }
    }
    let mut rules = Vec::new();
    let mut names = Vec::new();
    for (i, r) in file.rules.iter().enumerate() {
        let base = format!("rules[{i}]");
        if r.name.trim().is_empty() || names.contains(&r.name) {
            c.error(
                &format!("{base}.name"),
                format!("rule name `{}` is empty or used twice", r.name),
                Some("give every rule its own name".into()),
            );
        }
        names.push(r.name.clone());
        if !r.escalate && r.mode.is_none() {
            c.error(
                &base,
                format!("rule `{}` does nothing", r.name),
                Some("add `escalate: true` or `mode: ai_assisted`".into()),
            );
        }
        let reason = r
            .reason
            .as_ref()
            .and_then(|n| c.code(&format!("{base}.reason"), n));
        let example = "customer.tier == \"vip\" && signals.anger > 0.5";
        if let Some(program) = c.condition(&format!("{base}.when"), &r.when, CEL_VARIABLES, example)
        {
            rules.push(Rule {
                name: r.name.clone(),
                program,
                escalate: r.escalate,
                mode: r.mode,
                reason,
                customer_guards: customer_guards(&r.when),
                signal_guards: signal_guards(&r.when),
            });
        }
    }
    let (queue_rules, schedules) = validate_queues(&file, c);
    for (path, text) in [
        ("messages.escalation", &file.messages.escalation),
        ("messages.handback", &file.messages.handback),
        ("messages.closed", &file.messages.closed),
        ("messages.long_wait", &file.messages.long_wait),
    ] {
        for placeholder in placeholders(text) {
            if !["name", "queue", "position", "wait", "opens", "options"].contains(&placeholder) {
                c.error(
                    path,
                    format!("unknown placeholder `{{{placeholder}}}`"),
                    Some("placeholders are {name}, {queue}, {position}, {wait}, {opens} and {options}".into()),
                );
            }
        }
    }
    for (i, option) in file.routing.async_options.iter().enumerate() {
        if !["email", "callback", "meeting"].contains(&option.as_str()) {
            c.error(
                &format!("routing.async_options[{i}]"),
                format!("unknown async option `{option}`"),
                Some("use `email`, `callback` or `meeting`".into()),
            );
        }
    }
    if !(0.0..1.0).contains(&file.routing.sla_warning_share)
        || !(0.5..1.0).contains(&file.routing.quote_quantile)
    {
        c.error(
            "routing",
            "sla_warning_share must be in [0, 1) and quote_quantile in [0.5, 1)",
            Some("the defaults are 0.8 and 0.9".into()),
        );
    }
    let r = &file.routing;
    if r.default_handle_seconds <= 0.0 || r.wait_padding < 1.0 {
        c.error(
            "routing",
            "default_handle_seconds must be above 0 and wait_padding at least 1",
            Some("the defaults are 360 and 1.5".into()),
        );
    }
    let read_signals = signals_read(file.rules.iter().map(|r| r.when.as_str()));
    let reads = |name: &str| file.rules.iter().any(|r| r.when.contains(name));
    let (reads_customer, reads_conversation) = (reads("customer"), reads("conversation"));
    Policy {
        file,
        triggers,
        weights,
        lowers,
        rules,
        cel_env: std::sync::Arc::new(cel::Env::stdlib()),
        read_signals,
        reads_customer,
        reads_conversation,
        queue_rules,
        schedules,
        anonymous: None,
    }
}

/// The codes that rule conditions read as `signals.<code>`; `None` when some condition uses
/// `signals` otherwise (indexing, macros, size), so that it must see every code.
fn signals_read<'a>(conditions: impl Iterator<Item = &'a str>) -> Option<Vec<ReasonCode>> {
    let mut codes = Vec::new();
    for when in conditions {
        let mut rest = when;
        while let Some(at) = rest.find("signals") {
            let before_ok = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
            let after = &rest[at + "signals".len()..];
            rest = after;
            if !before_ok {
                continue;
            }
            let field = after.strip_prefix('.')?;
            let name: String = field
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // Validation refuses unknown codes, so another name is a method or macro over
            // the map (`signals.exists(k, ...)`), which must see every code.
            let code = name.parse::<ReasonCode>().ok()?;
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
    }
    Some(codes)
}

/// The top-level `&&` operands of a CEL condition, as written: split outside parentheses,
/// brackets, braces and string literals (a backslash escapes the next character except in raw
/// strings, `r"..."`). A condition without a top-level `&&` is one operand.
fn conjuncts(when: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    // The open quote, and whether its string is raw.
    let mut quote: Option<(char, bool)> = None;
    let mut previous = ' ';
    let mut chars = when.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some((_, false)), '\\') => {
                chars.next();
            }
            (Some((q, _)), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some((c, matches!(previous, 'r' | 'R'))),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, '&') if depth == 0 && chars.peek().is_some_and(|&(_, n)| n == '&') => {
                parts.push(when[start..i].trim());
                chars.next();
                start = i + 2;
            }
            _ => {}
        }
        previous = c;
    }
    parts.push(when[start..].trim());
    parts
}

/// The leading conjuncts of `when` that read `customer` and nothing else, compiled (see
/// [`Rule::customer_guards`]). Empty when the condition has a single operand: then the whole
/// condition is evaluated per decision.
fn customer_guards(when: &str) -> Vec<cel::Program> {
    let parts = conjuncts(when);
    if parts.len() < 2 {
        return Vec::new();
    }
    parts
        .into_iter()
        .map_while(|part| {
            cel::Program::compile(part)
                .ok()
                .filter(|p| p.references().variables() == ["customer"])
        })
        .collect()
}

/// The leading conjuncts of `when` of the form `signals.<code> > <number>` or `>=` (see
/// [`Rule::signal_guards`]), up to the first of another form. A code Baton does not know, or a
/// part with anything more (`||`, parentheses, arithmetic), ends the guards.
fn signal_guards(when: &str) -> Vec<SignalGuard> {
    conjuncts(when)
        .into_iter()
        .map_while(signal_guard)
        .collect()
}

fn signal_guard(part: &str) -> Option<SignalGuard> {
    let rest = part.strip_prefix("signals.")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (name, rest) = rest.split_at(end);
    let code: ReasonCode = name.parse().ok()?;
    let rest = rest.trim_start();
    let (inclusive, number) = match rest.strip_prefix(">=") {
        Some(number) => (true, number),
        None => (false, rest.strip_prefix('>')?),
    };
    let min: f64 = number.trim().parse().ok()?;
    min.is_finite().then_some(SignalGuard {
        code,
        min,
        inclusive,
    })
}

type QueueRules = Vec<(String, cel::Program)>;

/// Checks the queues; returns their compiled `when` conditions and business hours.
fn validate_queues(
    file: &PolicyFile,
    c: &mut Checker<'_>,
) -> (QueueRules, BTreeMap<String, baton_route::Schedule>) {
    let (mut rules, mut schedules) = (Vec::new(), BTreeMap::new());
    if file.queues.is_empty() {
        c.error(
            "queues",
            "no queues",
            Some("declare at least one queue with `default: true`".into()),
        );
    }
    let defaults = file.queues.iter().filter(|q| q.default).count();
    if !file.queues.is_empty() && defaults != 1 {
        c.error(
            "queues",
            format!("{defaults} queues have `default: true`"),
            Some("mark exactly one queue as the default".into()),
        );
    }
    let names: Vec<&str> = file.queues.iter().map(|q| q.name.as_str()).collect();
    for (i, q) in file.queues.iter().enumerate() {
        let base = format!("queues[{i}]");
        let path = format!("{base}.name");
        if let Err(e) = QueueName::parse(q.name.clone()) {
            c.error(&path, e.to_string(), None);
        }
        if names[..i].contains(&q.name.as_str()) {
            c.error(
                &path,
                format!("queue `{}` is declared twice", q.name),
                Some("give every queue its own name".into()),
            );
        }
        if q.sla_seconds == 0 {
            c.error(
                &format!("{base}.sla_seconds"),
                "sla_seconds is 0",
                Some("give the target time to first response in seconds, e.g. 120".into()),
            );
        }
        if !(q.aging_per_minute.is_finite() && q.aging_per_minute >= 0.0) {
            c.error(
                &format!("{base}.aging_per_minute"),
                format!("aging_per_minute is {}", q.aging_per_minute),
                Some(
                    "give priority points gained per minute of waiting, 0 or more (default 1)"
                        .into(),
                ),
            );
        }
        for (key, value) in [
            ("offer_timeout_seconds", q.offer_timeout_seconds),
            ("agent_silence_seconds", q.agent_silence_seconds),
            ("next_response_sla_seconds", q.next_response_sla_seconds),
            ("max_wait_seconds", q.max_wait_seconds),
        ] {
            if value == Some(0) {
                c.error(
                    &format!("{base}.{key}"),
                    format!("{key} is 0"),
                    Some("give a number of seconds above 0, or leave the key out".into()),
                );
            }
        }
        let skill_lists = std::iter::once((format!("{base}.skills"), &q.skills)).chain(
            q.steps.iter().enumerate().filter_map(|(j, s)| {
                s.skills
                    .as_ref()
                    .map(|k| (format!("{base}.steps[{j}].skills"), k))
            }),
        );
        for (path, skills) in skill_lists {
            for (k, s) in skills.iter().enumerate() {
                if !(baton_domain::MIN_LEVEL..=baton_domain::MAX_LEVEL).contains(&s.min_level()) {
                    c.error(
                        &format!("{path}[{k}].min_level"),
                        format!("min_level {} is outside 1 to 5", s.min_level()),
                        Some("proficiency runs from 1 (basic) to 5 (expert)".into()),
                    );
                }
            }
        }
        let mut last = 0;
        for (j, step) in q.steps.iter().enumerate() {
            let path = format!("{base}.steps[{j}]");
            if step.after_seconds <= last && j > 0 || step.after_seconds == 0 {
                c.error(
                    &format!("{path}.after_seconds"),
                    "steps must come later and later, after more than 0 seconds",
                    Some("order the steps by `after_seconds`, each above the one before".into()),
                );
            }
            last = step.after_seconds;
            if let Some(target) = &step.overflow {
                if target == &q.name || !names.contains(&target.as_str()) {
                    c.error(
                        &format!("{path}.overflow"),
                        format!("no other queue `{target}` to overflow to"),
                        Some(format!(
                            "name another of the policy's queues: {}",
                            names.join(", ")
                        )),
                    );
                }
            }
        }
        if let Some(hours) = &q.hours {
            match hours.schedule() {
                Ok(s) => {
                    schedules.insert(q.name.clone(), s);
                }
                Err(e) => c.error(&format!("{base}.hours"), e, None),
            }
        }
        if let Some(when) = &q.when {
            let example = "topic == \"refund\" && customer.tier == \"vip\"";
            if let Some(program) =
                c.condition(&format!("{base}.when"), when, QUEUE_CEL_VARIABLES, example)
            {
                rules.push((q.name.clone(), program));
            }
        }
    }
    (rules, schedules)
}

/// The JSON Schema of the policy file (draft 2020-12), published as
/// `schemas/policy.schema.json`, so editors can complete and check policy YAML.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PolicyFile)).unwrap_or_default()
}

/// `{word}` placeholders in a template.
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(p, _)| p))
}

#[cfg(test)]
mod tests;
