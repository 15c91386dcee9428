//! Event fan-out: every stored event, in sequence order, to whoever follows it, without
//! polling. A follower of all events wakes for each; a follower of one conversation wakes only
//! for that conversation's events; an idle follower costs nothing between events.

use baton_domain::ConversationId;
use baton_store::EventRecord;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;

/// Events a slow follower may fall behind by before it re-reads from the store.
const CAPACITY: usize = 1024;

/// Which events a follower of every conversation gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every event.
    #[default]
    All,
    /// Events of the handoff: everything but the turn events of conversations the AI handles
    /// on its own. What an agent's console follows: routine AI traffic does not wake it. (A
    /// stream that catches up from the store after a reconnect may still see such turns.)
    Handoff,
}

/// The node's event bus.
#[derive(Debug)]
pub struct Bus {
    all: broadcast::Sender<Arc<EventRecord>>,
    handoff: broadcast::Sender<Arc<EventRecord>>,
    by_conversation: Mutex<HashMap<ConversationId, broadcast::Sender<Arc<EventRecord>>>>,
    last: AtomicI64,
    closed: tokio::sync::watch::Sender<bool>,
}

impl Bus {
    /// A bus whose last published event is `last` (0 for none).
    pub(crate) fn new(last: i64) -> Self {
        Self {
            all: broadcast::channel(CAPACITY).0,
            handoff: broadcast::channel(CAPACITY).0,
            by_conversation: Mutex::new(HashMap::new()),
            last: AtomicI64::new(last),
            closed: tokio::sync::watch::channel(false).0,
        }
    }

    /// Publishes stored events, in sequence order; the turn events of `quiet` conversations
    /// (left with the AI alone) are not for [`Scope::Handoff`].
    pub(crate) fn publish(&self, events: &[baton_store::EventRecord], quiet: &[ConversationId]) {
        if events.is_empty() {
            return;
        }
        let mut subscribed = self
            .by_conversation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for e in events {
            let e = Arc::new(e.clone());
            self.last.fetch_max(e.id, Ordering::AcqRel);
            if self.all.receiver_count() > 0 {
                let _ = self.all.send(e.clone());
            }
            let routine =
                e.kind == baton_store::EventKind::Turn && quiet.contains(&e.conversation_id);
            if self.handoff.receiver_count() > 0 && !routine {
                let _ = self.handoff.send(e.clone());
            }
            let gone = match subscribed.get(&e.conversation_id) {
                Some(tx) => tx.send(e.clone()).is_err(),
                None => false,
            };
            if gone {
                subscribed.remove(&e.conversation_id);
            }
        }
    }

    /// The sequence number of the newest event published (or stored before start).
    pub fn last_id(&self) -> i64 {
        self.last.load(Ordering::Acquire)
    }

    /// Follows one conversation's events, or every conversation's in `scope`.
    pub fn subscribe(
        &self,
        conversation: Option<&ConversationId>,
        scope: Scope,
    ) -> broadcast::Receiver<Arc<EventRecord>> {
        match conversation {
            None if scope == Scope::Handoff => self.handoff.subscribe(),
            None => self.all.subscribe(),
            Some(id) => {
                let mut subscribed = self
                    .by_conversation
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                subscribed.retain(|_, tx| tx.receiver_count() > 0);
                subscribed
                    .entry(id.clone())
                    .or_insert_with(|| broadcast::channel(64).0)
                    .subscribe()
            }
        }
    }

    /// Resolves when the node shuts down: event streams end then.
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Ends every event stream.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }
}
