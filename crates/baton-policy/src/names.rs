//! Names and types in CEL conditions, checked against what a condition can see.
//!
//! A condition that reads a field nobody sets, or compares a number with a string, compiles
//! and evaluates, yet never holds: `signals.vip_customr` is no key of `signals` (the rule is
//! skipped on every turn), `customer.deal_value >= "big"` has no overload. [`problems`] walks
//! the parsed expression and reports such conditions, so that `baton check` (and the server,
//! which loads policies the same way) refuses them.
//!
//! What a condition sees, as [`Policy::decide`](crate::Policy::decide) builds it:
//! - `signals`: a map with every reason code as a key and the turn's strongest signal of that
//!   code as a `double` (0 when there is none). Any other key is an error.
//! - `conversation`: `turns`, `customer_turns`, `failures` (`int`), `topics` (list of reason
//!   codes), `language`, `channel` (`string`, `""` when unknown). Any other key is an error.
//! - `customer`: the [`Customer`](baton_domain::Customer) fields that are set (`id`, `name`,
//!   `tier`, `language`, `email`, `account_owner` as `string`; `tenure_days`,
//!   `contacts_same_issue_30d` as `int`; `deal_value` as `double`), **plus any other attribute
//!   the client sends** (`"plan": "pro"` is `customer.plan`). Since attributes are open, an
//!   unknown `customer` field is not an error; the known ones are type-checked.
//! - queue conditions also see `topic`, `intent` and `language`, all `string`s (`topic` is a
//!   reason code or `""`).
//!
//! Comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`) between two sides of known types are
//! checked: numbers (`int`, `uint`, `double`) compare with each other, anything else only with
//! its own type. A string compared with `topic`, or tested for membership in
//! `conversation.topics`, must be a reason code.

use baton_domain::ReasonCode;
use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue};

/// A problem found in a condition: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) message: String,
    pub(crate) hint: String,
}

/// The type of a value a condition can see, as far as the check knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    UInt,
    Double,
    String,
    Bool,
    Null,
    Bytes,
    /// A list of reason codes (`conversation.topics`).
    Topics,
    Map,
}

impl Kind {
    fn number(self) -> bool {
        matches!(self, Kind::Int | Kind::UInt | Kind::Double)
    }

    /// Whether two values of these kinds can be compared or equal.
    fn compatible(self, other: Kind) -> bool {
        self == other || (self.number() && other.number())
    }

    /// The kind, with an article, for messages: `a number`.
    fn described(self) -> &'static str {
        match self {
            Kind::Int | Kind::UInt | Kind::Double => "a number",
            Kind::String => "a string",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
            Kind::Bytes => "bytes",
            Kind::Topics => "a list of reason codes",
            Kind::Map => "a map",
        }
    }
}

/// A field of `customer` or `conversation`: its name, its type and an example condition.
pub(crate) struct Field {
    pub(crate) name: &'static str,
    kind: Kind,
    example: &'static str,
}

const fn field(name: &'static str, kind: Kind, example: &'static str) -> Field {
    Field {
        name,
        kind,
        example,
    }
}

/// The fields of [`Customer`](baton_domain::Customer) as rules read them (its JSON, see
/// `decide.rs`); a test keeps this list equal to the type's fields.
pub(crate) const CUSTOMER_FIELDS: &[Field] = &[
    field("id", Kind::String, "customer.id == \"cust-9\""),
    field("name", Kind::String, "customer.name == \"Dana\""),
    field("tier", Kind::String, "customer.tier == \"vip\""),
    field("tenure_days", Kind::Int, "customer.tenure_days < 7"),
    field(
        "contacts_same_issue_30d",
        Kind::Int,
        "customer.contacts_same_issue_30d >= 3",
    ),
    field("deal_value", Kind::Double, "customer.deal_value >= 10000.0"),
    field("language", Kind::String, "customer.language == \"de\""),
    field(
        "email",
        Kind::String,
        "customer.email.endsWith(\"@example.com\")",
    ),
    field(
        "account_owner",
        Kind::String,
        "customer.account_owner == \"ana\"",
    ),
];

/// The keys of `conversation` (built in `decide.rs`; a test keeps them equal).
pub(crate) const CONVERSATION_FIELDS: &[Field] = &[
    field("turns", Kind::Int, "conversation.turns > 10"),
    field(
        "customer_turns",
        Kind::Int,
        "conversation.customer_turns >= 3",
    ),
    field("failures", Kind::Int, "conversation.failures >= 2"),
    field("topics", Kind::Topics, "\"refund\" in conversation.topics"),
    field("language", Kind::String, "conversation.language == \"de\""),
    field("channel", Kind::String, "conversation.channel == \"email\""),
];

/// A variable a condition may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variable {
    Signals,
    Customer,
    Conversation,
    /// `topic`, `intent`, `language` in queue conditions.
    Text(&'static str),
}

impl Variable {
    fn named(name: &str) -> Option<Variable> {
        Some(match name {
            "signals" => Variable::Signals,
            "customer" => Variable::Customer,
            "conversation" => Variable::Conversation,
            "topic" => Variable::Text("topic"),
            "intent" => Variable::Text("intent"),
            "language" => Variable::Text("language"),
            _ => return None,
        })
    }
}

/// A side of a comparison whose type is known.
struct Typed {
    kind: Kind,
    /// As written, for messages: `customer.deal_value`, `"big"`.
    text: String,
    /// An example condition with this side, when it is a field.
    example: Option<String>,
    /// Whether this is `topic`, whose strings are reason codes.
    topic: bool,
    /// The string, when this side is a string literal.
    string: Option<String>,
}

/// Every problem in a compiled condition that may read `variables` (the caller has checked that
/// it reads no other).
pub(crate) fn problems(expression: &IdedExpr, variables: &[&str]) -> Vec<Problem> {
    let mut walk = Walk {
        variables,
        bound: Vec::new(),
        problems: Vec::new(),
    };
    walk.expr(expression);
    walk.problems
}

/// The variables `expression` reads: its identifiers, but for the names a macro binds
/// (`t` in `conversation.topics.exists(t, t == "refund")`) where they are bound. In order of
/// first use.
pub(crate) fn free_variables(expression: &IdedExpr) -> Vec<String> {
    fn walk(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<String>) {
        match &e.expr {
            Expr::Ident(name) => {
                if !bound.contains(name) && !out.contains(name) {
                    out.push(name.clone());
                }
            }
            Expr::Select(select) => walk(&select.operand, bound, out),
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    walk(target, bound, out);
                }
                for a in &call.args {
                    walk(a, bound, out);
                }
            }
            Expr::Comprehension(c) => {
                walk(&c.iter_range, bound, out);
                let depth = bound.len();
                bound.push(c.iter_var.clone());
                bound.extend(c.iter_var2.clone());
                bound.push(c.accu_var.clone());
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    walk(part, bound, out);
                }
                bound.truncate(depth);
            }
            Expr::List(list) => {
                for item in &list.elements {
                    walk(item, bound, out);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        walk(&m.key, bound, out);
                        walk(&m.value, bound, out);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        walk(&f.value, bound, out);
                    }
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    let mut out = Vec::new();
    walk(expression, &mut Vec::new(), &mut out);
    out
}

struct Walk<'a> {
    variables: &'a [&'a str],
    /// Names bound by comprehensions around the current node (`t` in `exists(t, ...)`), which
    /// hide a variable of the same name.
    bound: Vec<String>,
    problems: Vec<Problem>,
}

impl Walk<'_> {
    fn variable(&self, e: &IdedExpr) -> Option<Variable> {
        match &e.expr {
            Expr::Ident(name)
                if self.variables.contains(&name.as_str())
                    && !self.bound.iter().any(|b| b == name) =>
            {
                Variable::named(name)
            }
            _ => None,
        }
    }

    fn report(&mut self, message: String, hint: String) {
        let problem = Problem { message, hint };
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    fn expr(&mut self, e: &IdedExpr) {
        match &e.expr {
            Expr::Select(select) => {
                self.select(&select.operand, &select.field);
                self.expr(&select.operand);
            }
            Expr::Call(call) => {
                let args = &call.args;
                match (call.func_name.as_str(), args.as_slice()) {
                    (
                        operators::EQUALS
                        | operators::NOT_EQUALS
                        | operators::LESS
                        | operators::LESS_EQUALS
                        | operators::GREATER
                        | operators::GREATER_EQUALS,
                        [a, b],
                    ) => self.comparison(&call.func_name, a, b),
                    (operators::IN, [a, b]) => self.membership(a, b),
                    (operators::INDEX | operators::OPT_INDEX, [map, key]) => {
                        if let Expr::Literal(LiteralValue::String(k)) = &key.expr {
                            self.select(map, k.inner());
                        }
                    }
                    _ => {}
                }
                if let Some(target) = &call.target {
                    self.expr(target);
                }
                for a in args {
                    self.expr(a);
                }
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range);
                let bound = self.bound.len();
                self.bound.push(c.iter_var.clone());
                self.bound.extend(c.iter_var2.clone());
                self.bound.push(c.accu_var.clone());
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.expr(part);
                }
                self.bound.truncate(bound);
            }
            Expr::List(list) => {
                for item in &list.elements {
                    self.expr(item);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.expr(&m.key);
                        self.expr(&m.value);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.expr(&f.value);
                    }
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    /// `operand.field` (or `operand["field"]`, or `has(operand.field)`).
    fn select(&mut self, operand: &IdedExpr, name: &str) {
        match self.variable(operand) {
            Some(Variable::Signals) => {
                if name.parse::<ReasonCode>().is_err() {
                    let hint = match nearest(name, ReasonCode::ALL.iter().map(|c| c.as_str())) {
                        Some(code) => format!("did you mean `signals.{code}`?"),
                        None => "`signals` has one key per reason code (CONTRACTS.md), e.g. `signals.anger`, `signals.vip_customer`".to_owned(),
                    };
                    self.report(
                        format!("condition reads `signals.{name}`, but `{name}` is no signal code, so the rule can never fire"),
                        hint,
                    );
                }
            }
            Some(Variable::Conversation) => {
                if !CONVERSATION_FIELDS.iter().any(|f| f.name == name) {
                    let names = CONVERSATION_FIELDS.iter().map(|f| f.name);
                    let hint = match nearest(name, names.clone()) {
                        Some(field) => format!("did you mean `conversation.{field}`?"),
                        None => format!(
                            "`conversation` has {}",
                            names
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.report(
                        format!("condition reads `conversation.{name}`, which does not exist, so the rule can never fire"),
                        hint,
                    );
                }
            }
            Some(Variable::Text(var)) => self.report(
                format!(
                    "condition reads `{var}.{name}`, but `{var}` is a string, which has no fields"
                ),
                format!("compare `{var}` itself, e.g. `{var} == \"refund\"`"),
            ),
            Some(Variable::Customer) | None => {
                if let Some(t) = self.typed(operand) {
                    if t.kind != Kind::Map {
                        self.report(
                            format!(
                                "condition reads `{}.{name}`, but `{}` is {}, which has no fields",
                                t.text,
                                t.text,
                                t.kind.described()
                            ),
                            match t.example {
                                Some(example) => format!("use the value itself, as in `{example}`"),
                                None => "use the value itself".to_owned(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// The type of `e`, when the check knows it: a literal, a field or variable of known type.
    fn typed(&self, e: &IdedExpr) -> Option<Typed> {
        let literal = |kind, text: String| {
            Some(Typed {
                kind,
                text,
                example: None,
                topic: false,
                string: None,
            })
        };
        match &e.expr {
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(b) => literal(Kind::Bool, format!("{}", **b)),
                LiteralValue::Bytes(_) => literal(Kind::Bytes, "b\"...\"".to_owned()),
                LiteralValue::Double(d) => literal(Kind::Double, format!("{:?}", **d)),
                LiteralValue::Int(i) => literal(Kind::Int, format!("{}", **i)),
                LiteralValue::UInt(u) => literal(Kind::UInt, format!("{}u", **u)),
                LiteralValue::Null => literal(Kind::Null, "null".to_owned()),
                LiteralValue::String(s) => Some(Typed {
                    kind: Kind::String,
                    text: format!("{:?}", s.inner()),
                    example: None,
                    topic: false,
                    string: Some(s.inner().to_owned()),
                }),
            },
            Expr::Call(call) if call.func_name == operators::NEGATE && call.args.len() == 1 => {
                let inner = self.typed(&call.args[0])?;
                inner.kind.number().then(|| Typed {
                    text: format!("-{}", inner.text),
                    ..inner
                })
            }
            Expr::Ident(_) => match self.variable(e)? {
                Variable::Text(name) => Some(Typed {
                    kind: Kind::String,
                    text: name.to_owned(),
                    example: Some(if name == "language" {
                        "language == \"de\"".to_owned()
                    } else {
                        format!("{name} == \"refund\"")
                    }),
                    topic: name == "topic",
                    string: None,
                }),
                Variable::Signals => literal(Kind::Map, "signals".to_owned()),
                Variable::Customer => literal(Kind::Map, "customer".to_owned()),
                Variable::Conversation => literal(Kind::Map, "conversation".to_owned()),
            },
            Expr::Select(select) if !select.test => {
                let name = select.field.as_str();
                let (kind, example) = match self.variable(&select.operand)? {
                    Variable::Signals => {
                        let code: ReasonCode = name.parse().ok()?;
                        (Kind::Double, format!("signals.{code} > 0.5"))
                    }
                    Variable::Customer => {
                        let f = CUSTOMER_FIELDS.iter().find(|f| f.name == name)?;
                        (f.kind, f.example.to_owned())
                    }
                    Variable::Conversation => {
                        let f = CONVERSATION_FIELDS.iter().find(|f| f.name == name)?;
                        (f.kind, f.example.to_owned())
                    }
                    Variable::Text(_) => return None,
                };
                let root = match &select.operand.expr {
                    Expr::Ident(root) => root.as_str(),
                    _ => "",
                };
                Some(Typed {
                    kind,
                    text: format!("{root}.{name}"),
                    example: Some(example),
                    topic: false,
                    string: None,
                })
            }
            Expr::Select(select) if select.test => literal(Kind::Bool, "has(...)".to_owned()),
            _ => None,
        }
    }

    fn comparison(&mut self, operator: &str, a: &IdedExpr, b: &IdedExpr) {
        let (Some(a), Some(b)) = (self.typed(a), self.typed(b)) else {
            return;
        };
        let symbol = operator.trim_matches('_');
        let written = format!("{} {symbol} {}", a.text, b.text);
        for (this, other) in [(&a, &b), (&b, &a)] {
            if let (true, Some(code)) = (this.topic, &other.string) {
                self.code_literal(code, &written);
            }
        }
        if a.kind.compatible(b.kind) {
            return;
        }
        let outcome = if operator == operators::NOT_EQUALS {
            "always holds"
        } else {
            "never holds"
        };
        // Suggest the field's own kind of value.
        let (field, other) = if a.example.is_some() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let hint = if other.kind == Kind::Null && field.example.is_some() {
            format!(
                "a field that is not set is absent, not null: did you mean `has({})`?",
                field.text
            )
        } else if let (Some(number), true) = (
            other.string.as_deref().filter(|s| s.parse::<f64>().is_ok()),
            field.kind.number(),
        ) {
            format!(
                "did you mean the number `{} {symbol} {number}`, without quotes?",
                field.text
            )
        } else if let (Kind::Topics, Some(_)) = (field.kind, &other.string) {
            format!("did you mean `{} in {}`?", other.text, field.text)
        } else if let Some(example) = &field.example {
            format!(
                "did you mean {}, as in `{example}`?",
                field.kind.described()
            )
        } else {
            "compare values of the same type".to_owned()
        };
        self.report(
            format!(
                "`{written}` compares {} with {}, which {outcome}",
                a.kind.described(),
                b.kind.described()
            ),
            hint,
        );
    }

    /// `a in b`.
    fn membership(&mut self, a: &IdedExpr, b: &IdedExpr) {
        let (Some(item), Some(list)) = (self.typed(a), self.typed(b)) else {
            return;
        };
        let written = format!("{} in {}", item.text, list.text);
        match list.kind {
            Kind::Map => {}
            Kind::Topics => match (&item.string, item.kind) {
                (Some(code), _) => self.code_literal(code, &written),
                (None, Kind::String) => {}
                (None, kind) => self.report(
                    format!(
                        "`{written}` looks for {} in a list of reason codes, which never holds",
                        kind.described()
                    ),
                    "did you mean a reason code, as in `\"refund\" in conversation.topics`?"
                        .to_owned(),
                ),
            },
            kind => self.report(
                format!(
                    "`{written}` looks for a value in {}, but `in` needs a list or a map",
                    kind.described()
                ),
                match &list.example {
                    Some(example) => format!("did you mean `{example}`?"),
                    None => {
                        "use `in` with a list, e.g. `\"refund\" in conversation.topics`".to_owned()
                    }
                },
            ),
        }
    }

    /// A string compared with `topic` or looked for in `conversation.topics`: a reason code, or
    /// `""` (no topic).
    fn code_literal(&mut self, code: &str, written: &str) {
        if code.is_empty() || code.parse::<ReasonCode>().is_ok() {
            return;
        }
        let hint = match nearest(code, ReasonCode::ALL.iter().map(|c| c.as_str())) {
            Some(c) => format!("did you mean `\"{c}\"`?"),
            None => "topics are reason codes (CONTRACTS.md), e.g. `refund`, `billing_dispute`"
                .to_owned(),
        };
        self.report(
            format!("`{written}`: `{code}` is no reason code, so this never holds"),
            hint,
        );
    }
}

/// The candidate closest to `name` by edit distance, when it is close enough to be a typo.
fn nearest<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (strsim::levenshtein(c, name), c))
        .min()
        .filter(|&(d, c)| d <= 3 && d < c.len().max(name.len()))
        .map(|(_, c)| c)
}
