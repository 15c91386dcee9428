//! Baton's domain: the nouns every other crate speaks.
//!
//! This crate exists so that detection, policy, briefs, routing and storage agree on one
//! vocabulary without depending on each other: a [`Conversation`] is a sequence of [`Turn`]s by
//! a [`Customer`]; detectors turn it into [`Signal`]s tagged with a [`ReasonCode`]; the policy turns
//! signals into a [`Decision`]; an escalation produces a [`Brief`] and moves the conversation
//! through the [`HandoffState`] machine (DESIGN.md section 6) into a queue served by [`Agent`]s.
//!
//! Everything here is plain data with validation at construction ("parse, don't validate"):
//! there is no I/O and no async. Input that arrives from outside (API bodies, JSON Lines files)
//! deserializes straight into these types, and invalid input is rejected with an error that says
//! what was wrong and how to fix it.
#![forbid(unsafe_code)]

mod agent;
mod brief;
mod conversation;
mod decision;
mod handoff;
mod ids;
mod reason;
mod signal;

pub use agent::{Agent, AgentStatus, Skill, SkillLevelError, MAX_LEVEL, MIN_LEVEL};
pub use brief::{
    AttemptedSolution, Brief, BriefReason, CustomerContext, Entity, EntityKind, SentimentSummary,
    TranscriptLine, BRIEF_SCHEMA_VERSION,
};
pub use conversation::{
    Conversation, Customer, Role, Turn, TurnAction, TurnError, MAX_TURN_TEXT_BYTES,
};
pub use decision::{Contribution, Decision, Mode, SkippedRule};
pub use handoff::{HandoffState, TransitionError};
pub use ids::{AgentId, ConversationId, IdError, QueueName, MAX_ID_BYTES};
pub use reason::{ReasonCode, UnknownReasonCode};
pub use signal::Signal;
