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

/// A human agent with skills and a capacity (concurrent conversations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's id.
    pub id: AgentId,
    /// Display name, used in the customer-facing "you are now talking to" line.
    pub name: String,
    /// Skills, matched against a queue's required skills (e.g. `billing`, `lang:de`).
    #[serde(default)]
    pub skills: Vec<String>,
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
    /// Whether the agent has every skill in `required`.
    pub fn has_skills(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.skills.iter().any(|s| s == r))
    }
}
