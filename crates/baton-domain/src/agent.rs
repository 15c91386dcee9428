//! Human agents.

use crate::AgentId;
use serde::{Deserialize, Serialize};

/// An agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Available for new conversations.
    #[default]
    Online,
    /// Keeps current conversations, takes no new ones.
    Away,
    /// Not working.
    Offline,
}

/// Lowest skill proficiency.
pub const MIN_LEVEL: u8 = 1;
/// Highest skill proficiency.
pub const MAX_LEVEL: u8 = 5;

/// A skill with a proficiency from 1 (basic) to 5 (expert).
///
/// On the wire either a plain name, `"billing"` (proficiency 1), or an object,
/// `{"name": "billing", "level": 4}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "SkillWire")]
pub struct Skill {
    /// The skill's name, e.g. `billing`, `vip`.
    pub name: String,
    /// Proficiency, 1 to 5 (values outside are clamped).
    pub level: u8,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SkillWire {
    Name(String),
    Full {
        name: String,
        #[serde(default = "min_level")]
        level: u8,
    },
}

fn min_level() -> u8 {
    MIN_LEVEL
}

impl From<SkillWire> for Skill {
    fn from(w: SkillWire) -> Self {
        match w {
            SkillWire::Name(name) => Skill::new(name, MIN_LEVEL),
            SkillWire::Full { name, level } => Skill::new(name, level),
        }
    }
}

impl Skill {
    /// A skill at `level`, clamped to 1..=5.
    pub fn new(name: impl Into<String>, level: u8) -> Self {
        Skill {
            name: name.into(),
            level: level.clamp(MIN_LEVEL, MAX_LEVEL),
        }
    }
}

impl From<&str> for Skill {
    fn from(name: &str) -> Self {
        Skill::new(name, MIN_LEVEL)
    }
}

/// A human agent with skills, languages and a capacity (concurrent conversations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's id.
    pub id: AgentId,
    /// Display name, used in the customer-facing "you are now talking to" line.
    pub name: String,
    /// Skills with proficiency, matched against a queue's required skills.
    #[serde(default)]
    pub skills: Vec<Skill>,
    /// Languages the agent serves customers in (ISO 639-1, e.g. `en`, `de`). Empty means any.
    #[serde(default)]
    pub languages: Vec<String>,
    /// How many conversations the agent can hold at once; at least 1.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Presence.
    #[serde(default)]
    pub status: AgentStatus,
}

fn default_capacity() -> u32 {
    1
}

impl Agent {
    /// The agent's proficiency in `skill`, if it has the skill.
    pub fn level(&self, skill: &str) -> Option<u8> {
        self.skills
            .iter()
            .find(|s| s.name == skill)
            .map(|s| s.level)
    }

    /// Whether the agent serves customers in `language` (an agent with no languages serves
    /// any).
    pub fn speaks(&self, language: &str) -> bool {
        self.languages.is_empty()
            || self
                .languages
                .iter()
                .any(|l| l.eq_ignore_ascii_case(language))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skills_read_as_names_or_objects_and_levels_are_clamped() {
        let a: Agent = serde_json::from_value(serde_json::json!({
            "id": "a1", "name": "Ana",
            "skills": ["billing", {"name": "vip", "level": 4}, {"name": "x", "level": 9}],
            "languages": ["en", "DE"]
        }))
        .expect("agent");
        assert_eq!(a.level("billing"), Some(1));
        assert_eq!(a.level("vip"), Some(4));
        assert_eq!(a.level("x"), Some(MAX_LEVEL));
        assert_eq!(a.level("security"), None);
        assert!(a.speaks("de") && !a.speaks("fr"));
        assert_eq!(a.capacity, 1);
        // Written back as objects, read back the same.
        let again: Agent =
            serde_json::from_value(serde_json::to_value(&a).expect("json")).expect("agent");
        assert_eq!(again, a);
    }
}
