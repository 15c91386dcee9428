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

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    index: PathIndex,
    error: Option<(String, Position)>,
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
                    if map.contains_key(&k) && self.error.is_none() {
                        self.error = Some((format!("duplicate key `{k}`"), pos(mark)));
                    }
                    self.index.0.insert(child_path(path, &k), pos(mark));
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
                if self.error.is_none() {
                    self.error = Some((
                        "YAML aliases (`*name`) are not supported in policies".to_owned(),
                        pos(mark),
                    ));
                }
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
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, false) {
        let m = e.marker();
        return Err((e.info().to_owned(), (m.line(), m.col() + 1)));
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok((builder.root.unwrap_or(Value::Null), builder.index))
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
/// (unknown key, missing key, wrong type).
pub fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<(T, PathIndex), TypedError> {
    let (value, index) = parse(text).map_err(|(message, position)| TypedError {
        message: format!("invalid YAML: {message}"),
        position,
        path: String::new(),
        hint: "check indentation and that lists and maps are closed",
    })?;
    match serde_path_to_error::deserialize(&value) {
        Ok(typed) => Ok((typed, index)),
        Err(e) => {
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
            Err(TypedError {
                message,
                position: index.locate(&path),
                path,
                hint,
            })
        }
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
