//! YAML text -> JSON value tree, plus where every path was written.
//!
//! One parser (`yaml-rust2`) gives both the values and their positions, so any later error
//! (a type mismatch found by serde, or a semantic one found by validation) can point at the line
//! and column of the offending key.

use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column.
pub type Position = (usize, usize);

/// Where each path (`rules[2].when`, `weights.anger`) starts in the source.
#[derive(Debug, Default, Clone)]
pub struct PathIndex(HashMap<String, Position>);

impl PathIndex {
    /// The position of `path`, or of its nearest ancestor that has one, or line 1.
    pub fn locate(&self, path: &str) -> Position {
        let mut p = path.to_owned();
        loop {
            if let Some(pos) = self.0.get(&p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return self.0.get("").copied().unwrap_or((1, 1)),
            }
        }
    }
}

enum Frame {
    Map {
        map: Map<String, Value>,
        path: String,
        key: Option<String>,
    },
    Seq {
        items: Vec<Value>,
        path: String,
    },
}

/// A problem the value tree was still built past: a duplicate key (the later value is kept) or
/// an alias (read as null).
struct Problem {
    message: String,
    position: Position,
    /// The path of the key or value concerned.
    path: String,
    hint: &'static str,
    /// Whether the value at `path` stands in for what was written (an alias), so that a type
    /// error found there later is only a consequence.
    placeholder: bool,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    index: PathIndex,
    problems: Vec<Problem>,
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn pos(mark: Marker) -> Position {
    // yaml-rust2 columns are 0-based on some events; report 1-based columns throughout.
    (mark.line(), mark.col() + 1)
}

impl Builder {
    /// The path a new value at the top of the stack gets, recording its position.
    fn next_path(&mut self, mark: Marker) -> String {
        let path = match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { path, key, .. }) => child_path(path, key.as_deref().unwrap_or("")),
            Some(Frame::Seq { items, path }) => format!("{path}[{}]", items.len()),
        };
        if matches!(self.stack.last(), Some(Frame::Seq { .. }) | None) {
            self.index.0.entry(path.clone()).or_insert(pos(mark));
        }
        path
    }

    fn push_value(&mut self, value: Value, mark: Marker) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, path, key }) => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    let key_path = child_path(path, &k);
                    if map.contains_key(&k) {
                        self.problems.push(Problem {
                            message: format!("duplicate key `{k}`"),
                            position: pos(mark),
                            path: key_path.clone(),
                            hint: "write each key once in a map: remove or rename one of the two",
                            placeholder: false,
                        });
                    }
                    self.index.0.insert(key_path, pos(mark));
                    *key = Some(k);
                }
            },
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, style, _, _) => {
                let value = if self.expecting_key() || style != TScalarStyle::Plain {
                    Value::String(text)
                } else {
                    self.next_path(mark);
                    plain_scalar(text)
                };
                self.push_value(value, mark);
            }
            Event::SequenceStart(..) => {
                let path = self.next_path(mark);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                });
            }
            Event::MappingStart(..) => {
                let path = self.next_path(mark);
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    path,
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match self.stack.pop() {
                    Some(Frame::Seq { items, .. }) => Value::Array(items),
                    Some(Frame::Map { map, .. }) => Value::Object(map),
                    None => Value::Null,
                };
                self.push_value(value, mark);
            }
            Event::Alias(_) => {
                let path = if self.expecting_key() {
                    match self.stack.last() {
                        Some(Frame::Map { path, .. }) => path.clone(),
                        _ => String::new(),
                    }
                } else {
                    self.next_path(mark)
                };
                self.problems.push(Problem {
                    message: "YAML aliases (`*name`) are not supported in policies".to_owned(),
                    position: pos(mark),
                    path,
                    hint: "write the value out in full where the alias stands",
                    placeholder: true,
                });
                self.push_value(Value::Null, mark);
            }
            _ => {}
        }
    }
}

/// YAML 1.2 core-schema resolution of a plain (unquoted) scalar.
fn plain_scalar(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    let numeric = text
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if numeric {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text)
}

/// Parses YAML text into a JSON value and its path index.
///
/// # Errors
/// A message and position for a syntax error, a duplicate key or an alias.
pub fn parse(text: &str) -> Result<(Value, PathIndex), (String, Position)> {
    let (value, index, problems) = parse_lenient(text)?;
    match problems.into_iter().next() {
        Some(p) => Err((p.message, p.position)),
        None => Ok((value, index)),
    }
}

/// Parses YAML text into a JSON value and its path index, building the tree past duplicate keys
/// and aliases, which come back as problems.
///
/// # Errors
/// A message and position for a syntax error, after which nothing can be read.
fn parse_lenient(text: &str) -> Result<(Value, PathIndex, Vec<Problem>), (String, Position)> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, false) {
        let m = e.marker();
        return Err((e.info().to_owned(), (m.line(), m.col() + 1)));
    }
    Ok((
        builder.root.unwrap_or(Value::Null),
        builder.index,
        builder.problems,
    ))
}

/// A YAML document that did not become the expected type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedError {
    /// What was wrong.
    pub message: String,
    /// Where (1-based line and column).
    pub position: Position,
    /// The path of the offending key (`queues[0].sla_seconds`), empty for the document.
    pub path: String,
    /// How to fix it, for the usual kinds of mistake.
    pub hint: &'static str,
}

/// Parses YAML text into `T` (serde), with the path index for later checks.
///
/// # Errors
/// [`TypedError`] with the position of the syntax error, or of the key whose value did not fit
/// (unknown key, missing key, wrong type): the first problem only. [`deserialize_all`] finds
/// them all.
pub fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<(T, PathIndex), TypedError> {
    let (value, index) = parse(text).map_err(syntax_error)?;
    match serde_path_to_error::deserialize(&value) {
        Ok(typed) => Ok((typed, index)),
        Err(e) => Err(typed_error(&e, &index)),
    }
}

fn syntax_error((message, position): (String, Position)) -> TypedError {
    TypedError {
        message: format!("invalid YAML: {message}"),
        position,
        path: String::new(),
        hint: "check indentation and that lists and maps are closed",
    }
}

fn typed_error(e: &serde_path_to_error::Error<serde_json::Error>, index: &PathIndex) -> TypedError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = e.inner().to_string();
    let hint = if message.contains("unknown field") {
        "remove the key or fix its spelling"
    } else if message.contains("missing field") {
        "add the key"
    } else {
        "fix the value's type"
    };
    TypedError {
        message,
        position: index.locate(&path),
        path,
        hint,
    }
}

/// Most problems [`deserialize_all`] reports in one document; past that it stops.
const MAX_PROBLEMS: usize = 200;

/// Most mends [`deserialize_all`] makes in one document, a bound it never reaches on a policy.
const MAX_MENDS: usize = 10_000;

/// Parses YAML text into `T` like [`deserialize`], but reports **every** problem rather than the
/// first: every duplicate key and alias, and every key whose value did not fit (unknown key,
/// missing key, wrong type), in document order as serde meets them.
///
/// `model` is a valid document of the same shape (for a policy, the built-in one). After each
/// problem the tree is mended so that reading can go on: an unknown key is dropped, a missing or
/// ill-typed value is replaced by the model's value at the same path (any list item of the
/// model standing for any list item), or dropped when the model has none (which its parent
/// may then need in turn). Problems that only follow from such a mend are not reported. Only a
/// YAML syntax error ends reading at once.
///
/// # Errors
/// Every [`TypedError`] found, at least one.
pub fn deserialize_all<T: serde::de::DeserializeOwned>(
    text: &str,
    model: &Value,
) -> Result<(T, PathIndex), Vec<TypedError>> {
    let (mut value, index, problems) = parse_lenient(text).map_err(|e| vec![syntax_error(e)])?;
    // Paths whose value was put there (an alias's null, a mend): problems at or under them
    // are consequences, not reported.
    let mut placed: Vec<String> = Vec::new();
    // Paths mended so far: each is mended once, then its parent.
    let mut mended: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for p in problems {
        if p.placeholder {
            placed.push(p.path.clone());
        }
        errors.push(TypedError {
            message: format!("invalid YAML: {}", p.message),
            position: p.position,
            path: p.path,
            hint: p.hint,
        });
    }
    for _ in 0..MAX_MENDS {
        if errors.len() >= MAX_PROBLEMS {
            break;
        }
        let e = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(typed) if errors.is_empty() => return Ok((typed, index)),
            Ok(_) => return Err(errors),
            Err(e) => e,
        };
        let mut at = steps(e.path());
        let message = e.inner().to_string();
        let unknown_key = message.starts_with("unknown field `");
        if let Some(key) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key.to_owned())
        {
            at.push(Step::Key(key));
        }
        let target = step_path(&at);
        if !placed.iter().any(|m| within(&target, m)) {
            errors.push(typed_error(&e, &index));
        }
        // Mend at the offending value, or failing that at each ancestor in turn.
        let mut drop_only = unknown_key;
        loop {
            let path = step_path(&at);
            if !mended.contains(&path) && mend(&mut value, &at, model, drop_only) {
                placed.push(path.clone());
                mended.push(path);
                break;
            }
            if at.pop().is_none() {
                return Err(errors);
            }
            drop_only = false;
        }
    }
    Err(errors)
}

/// One step of a path into a value tree.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    let mut out = Vec::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push(Step::Index(*index)),
            Segment::Map { key } => out.push(Step::Key(key.clone())),
            Segment::Enum { variant } => out.push(Step::Key(variant.clone())),
            Segment::Unknown => break,
        }
    }
    out
}

/// A path as [`PathIndex`] writes it: `queues[0].skills`.
fn step_path(steps: &[Step]) -> String {
    let mut path = String::new();
    for step in steps {
        match step {
            Step::Key(k) => path = child_path(&path, k),
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// Whether `path` is `ancestor` or lies under it.
fn within(path: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The model's value at `steps`, any list item standing for any other.
fn model_at<'m>(model: &'m Value, steps: &[Step]) -> Option<&'m Value> {
    let Some((first, rest)) = steps.split_first() else {
        return Some(model);
    };
    match (first, model) {
        (Step::Key(k), Value::Object(map)) => model_at(map.get(k)?, rest),
        (Step::Index(_), Value::Array(items)) => items.iter().find_map(|i| model_at(i, rest)),
        _ => None,
    }
}

fn value_at<'v>(value: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    let mut v = value;
    for step in steps {
        v = match (step, v) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(k)?,
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Mends `value` at `at`: with `drop_only`, drops the key there; otherwise puts the model's
/// value there, or drops the key when the model has none. List items are replaced, never
/// dropped, so that later paths keep their positions. Whether anything changed.
fn mend(value: &mut Value, at: &[Step], model: &Value, drop_only: bool) -> bool {
    let replacement = if drop_only {
        None
    } else {
        model_at(model, at).cloned()
    };
    let Some((last, parent)) = at.split_last() else {
        return match replacement {
            Some(r) => {
                *value = r;
                true
            }
            None => false,
        };
    };
    match (value_at(value, parent), last, replacement) {
        (Some(Value::Object(map)), Step::Key(k), Some(r)) => {
            map.insert(k.clone(), r);
            true
        }
        (Some(Value::Object(map)), Step::Key(k), None) => map.remove(k).is_some(),
        (Some(Value::Array(items)), Step::Index(i), Some(r)) => match items.get_mut(*i) {
            Some(item) => {
                *item = r;
                true
            }
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_positions() {
        let (v, idx) = parse("a: 1\nb:\n  - x: 2.5\n    y: \"3\"\n  - true\n").expect("parses");
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"][0]["x"], 2.5);
        assert_eq!(v["b"][0]["y"], "3");
        assert_eq!(v["b"][1], true);
        assert_eq!(idx.locate("b[0].y").0, 4);
        assert_eq!(idx.locate("b[1]").0, 5);
        assert_eq!(idx.locate("b[0].zzz").0, 3);
    }

    #[test]
    fn syntax_errors_and_duplicates_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert!(err.1 .0 >= 1);
        let dup = parse("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(dup.0, "duplicate key `a`");
        assert_eq!(dup.1 .0, 3);
    }
}
