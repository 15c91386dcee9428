//! The handoff state machine (DESIGN.md section 6).
//!
//! ```text
//! ai_active -> handoff_requested -> queued -> offered -> assigned -> resolved
//!                   |                 |  ^       |         |
//!                   |                 |  +-------+         +-> returned_to_ai -> (ai_active rules)
//!                   +-> async_followup, returned_to_ai    queued (transfer)
//! queued/offered -> abandoned | expired | returned_to_ai | async_followup
//! ```
//! Every step is checked by [`HandoffState::transition`]; an illegal step is an error, never a
//! silent change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a conversation stands between the AI and the humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HandoffState {
    /// The AI is handling the conversation.
    AiActive,
    /// The policy decided to escalate; routing has not placed it yet.
    HandoffRequested,
    /// Waiting in a queue for an agent.
    Queued,
    /// Offered to one agent, who has not accepted yet.
    Offered,
    /// An agent owns the conversation; the AI may not reply.
    Assigned,
    /// An agent resolved it, with a disposition.
    Resolved,
    /// The customer cancelled the handoff, or the agent handed it back: the AI is in charge again.
    ReturnedToAi,
    /// The customer left while waiting.
    Abandoned,
    /// Nobody took it in time.
    Expired,
    /// The customer chose an email follow-up, callback or meeting instead of waiting.
    AsyncFollowup,
}

/// An illegal step of the state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot go from `{from}` to `{to}`: from `{from}` the allowed next states are {allowed}")]
pub struct TransitionError {
    /// The current state.
    pub from: HandoffState,
    /// The requested state.
    pub to: HandoffState,
    /// The states reachable from `from`, for the message.
    pub allowed: String,
}

impl HandoffState {
    /// Every state.
    pub const ALL: &'static [HandoffState] = &[
        HandoffState::AiActive,
        HandoffState::HandoffRequested,
        HandoffState::Queued,
        HandoffState::Offered,
        HandoffState::Assigned,
        HandoffState::Resolved,
        HandoffState::ReturnedToAi,
        HandoffState::Abandoned,
        HandoffState::Expired,
        HandoffState::AsyncFollowup,
    ];

    /// The state as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffState::AiActive => "ai_active",
            HandoffState::HandoffRequested => "handoff_requested",
            HandoffState::Queued => "queued",
            HandoffState::Offered => "offered",
            HandoffState::Assigned => "assigned",
            HandoffState::Resolved => "resolved",
            HandoffState::ReturnedToAi => "returned_to_ai",
            HandoffState::Abandoned => "abandoned",
            HandoffState::Expired => "expired",
            HandoffState::AsyncFollowup => "async_followup",
        }
    }

    /// Parses a state from its wire name.
    pub fn parse(name: &str) -> Option<HandoffState> {
        HandoffState::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == name)
    }

    /// The states this one may move to.
    pub fn next_states(self) -> &'static [HandoffState] {
        use HandoffState::*;
        match self {
            // A conversation the AI owns (again) can escalate; after a resolution the customer
            // may come back with something new.
            AiActive | ReturnedToAi | Resolved => &[HandoffRequested],
            HandoffRequested => &[Queued, AsyncFollowup, ReturnedToAi],
            // Claiming from the queue (pull) goes straight to assigned; pushing goes via offered.
            Queued => &[
                Offered,
                Assigned,
                Abandoned,
                Expired,
                ReturnedToAi,
                AsyncFollowup,
            ],
            Offered => &[Assigned, Queued, Abandoned, Expired, ReturnedToAi],
            // A transfer puts the conversation back in a queue.
            Assigned => &[Resolved, ReturnedToAi, Queued],
            Abandoned | Expired | AsyncFollowup => &[HandoffRequested],
        }
    }

    /// Moves to `to` if the machine allows it.
    ///
    /// # Errors
    /// [`TransitionError`] naming the allowed next states when the step is illegal.
    pub fn transition(self, to: HandoffState) -> Result<HandoffState, TransitionError> {
        if self.next_states().contains(&to) {
            Ok(to)
        } else {
            Err(TransitionError {
                from: self,
                to,
                allowed: self
                    .next_states()
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    /// Whether a human is in charge or about to be: the handoff is under way.
    pub fn in_handoff(self) -> bool {
        matches!(
            self,
            HandoffState::HandoffRequested
                | HandoffState::Queued
                | HandoffState::Offered
                | HandoffState::Assigned
        )
    }

    /// Whether the AI may reply to the customer: false while a human owns the conversation.
    pub fn ai_may_reply(self) -> bool {
        self != HandoffState::Assigned
    }

    /// Whether the customer is waiting for a human (counts toward queue position).
    pub fn is_waiting(self) -> bool {
        matches!(self, HandoffState::Queued | HandoffState::Offered)
    }
}

impl fmt::Display for HandoffState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_happy_path_is_legal() {
        let mut s = HandoffState::AiActive;
        for next in [
            HandoffState::HandoffRequested,
            HandoffState::Queued,
            HandoffState::Offered,
            HandoffState::Assigned,
            HandoffState::Resolved,
        ] {
            s = s.transition(next).expect("legal step");
        }
        assert_eq!(s, HandoffState::Resolved);
    }

    #[test]
    fn an_illegal_step_is_an_error_that_lists_the_way_out() {
        let err = HandoffState::AiActive
            .transition(HandoffState::Assigned)
            .expect_err("ai_active cannot jump to assigned");
        assert_eq!(
            err.to_string(),
            "cannot go from `ai_active` to `assigned`: from `ai_active` the allowed next states are `handoff_requested`"
        );
    }

    #[test]
    fn names_round_trip() {
        for s in HandoffState::ALL {
            assert_eq!(HandoffState::parse(s.as_str()), Some(*s));
        }
    }

    proptest! {
        /// Any sequence of requested steps leaves the machine in a state reached only by legal
        /// steps, and a rejected step never changes the state.
        #[test]
        fn random_walks_take_only_legal_steps(steps in proptest::collection::vec(0usize..10, 0..60)) {
            let mut s = HandoffState::AiActive;
            for i in steps {
                let to = HandoffState::ALL[i];
                match s.transition(to) {
                    Ok(next) => {
                        prop_assert!(s.next_states().contains(&next));
                        s = next;
                    }
                    Err(e) => {
                        prop_assert!(!s.next_states().contains(&to));
                        prop_assert_eq!(e.from, s);
                    }
                }
            }
            prop_assert!(s.ai_may_reply() || s == HandoffState::Assigned);
        }
    }
}
