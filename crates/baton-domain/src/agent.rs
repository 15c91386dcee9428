//! Human agents.

use crate::AgentId;
use serde::{Deserialize, Serialize};

/// An agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
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
/// `{"name": "billing", "level": 4}`. A `level` outside 1 to 5 is refused when the skill is
/// read, with a [`SkillLevelError`] as the serde error's message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "SkillWire")]
pub struct Skill {
    /// The skill's name, e.g. `billing`, `vip`.
    pub name: String,
    /// Proficiency, [`MIN_LEVEL`] to [`MAX_LEVEL`].
    pub level: u8,
}

/// A skill level outside [`MIN_LEVEL`] to [`MAX_LEVEL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skill `{name}`: `level` {level} is outside the valid range {MIN_LEVEL} to {MAX_LEVEL}: give a proficiency from {MIN_LEVEL} (basic) to {MAX_LEVEL} (expert)")]
pub struct SkillLevelError {
    /// The skill's name.
    pub name: String,
    /// The level given.
    pub level: i64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SkillWire {
    Name(String),
    Full {
        name: String,
        // Wide, so that any whole number reaches the range check and its message.
        #[serde(default = "min_level")]
        level: i64,
    },
}

fn min_level() -> i64 {
    i64::from(MIN_LEVEL)
}

impl TryFrom<SkillWire> for Skill {
    type Error = SkillLevelError;

    fn try_from(w: SkillWire) -> Result<Self, Self::Error> {
        match w {
            SkillWire::Name(name) => Ok(Skill::new(name, MIN_LEVEL)),
            SkillWire::Full { name, level } => Skill::try_new(name, level),
        }
    }
}

impl Skill {
    /// A skill at `level`, clamped to 1..=5 (for levels the code itself chooses; what comes
    /// from outside goes through [`Skill::try_new`] or deserialisation, which refuse).
    pub fn new(name: impl Into<String>, level: u8) -> Self {
        Skill {
            name: name.into(),
            level: level.clamp(MIN_LEVEL, MAX_LEVEL),
        }
    }

    /// A skill at `level`.
    ///
    /// # Errors
    /// [`SkillLevelError`] when `level` is outside [`MIN_LEVEL`] to [`MAX_LEVEL`].
    pub fn try_new(name: impl Into<String>, level: i64) -> Result<Self, SkillLevelError> {
        let name = name.into();
        match u8::try_from(level) {
            Ok(l) if (MIN_LEVEL..=MAX_LEVEL).contains(&l) => Ok(Skill { name, level: l }),
            _ => Err(SkillLevelError { name, level }),
        }
    }
}

impl From<&str> for Skill {
    fn from(name: &str) -> Self {
        Skill::new(name, MIN_LEVEL)
    }
}

/// A human agent with skills, languages and a capacity (concurrent conversations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    fn skills_read_as_names_or_objects() {
        let a: Agent = serde_json::from_value(serde_json::json!({
            "id": "a1", "name": "Ana",
            "skills": ["billing", {"name": "vip", "level": 4}, {"name": "x", "level": 5}, {"name": "y"}],
            "languages": ["en", "DE"]
        }))
        .expect("agent");
        assert_eq!(a.level("billing"), Some(1));
        assert_eq!(a.level("vip"), Some(4));
        assert_eq!(a.level("x"), Some(MAX_LEVEL));
        assert_eq!(a.level("y"), Some(MIN_LEVEL));
        assert_eq!(a.level("security"), None);
        assert!(a.speaks("de") && !a.speaks("fr"));
        assert_eq!(a.capacity, 1);
        // Written back as objects, read back the same.
        let again: Agent =
            serde_json::from_value(serde_json::to_value(&a).expect("json")).expect("agent");
        assert_eq!(again, a);
    }

    #[test]
    fn a_skill_level_outside_the_range_is_refused_not_clamped() {
        for level in [9, 0, -1, 300] {
            let body = format!(
                r#"{{"id": "a1", "name": "Ana", "skills": ["billing", {{"name": "vip", "level": {level}}}]}}"#
            );
            let err = serde_json::from_str::<Agent>(&body).expect_err("refused");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "skill `vip`: `level` {level} is outside the valid range 1 to 5"
                )),
                "{message}"
            );
        }
        assert_eq!(
            Skill::try_new("vip", 9),
            Err(SkillLevelError {
                name: "vip".into(),
                level: 9
            })
        );
        assert_eq!(Skill::try_new("vip", 5).map(|s| s.level), Ok(5));
    }
}
