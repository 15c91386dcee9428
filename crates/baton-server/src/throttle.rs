//! Sign-in throttling: a growing wait after repeated failures, per account and per address.
//!
//! The OWASP Authentication and Credential Stuffing cheat sheets: after a few failures, each
//! further attempt for the same account (or from the same address) waits, the wait doubling
//! with every failure up to a cap, so guessing runs at a few tries a minute while the right
//! password still works once the wait is over. An attempt that must wait is held (at most
//! [`HOLD_MAX_MS`]) and then taken if its wait is over, else refused with 429 and
//! `Retry-After`, before any password hash is computed: a client that retries at once is
//! slowed to the pace of the waits, and a held attempt costs the server nothing but a timer.

use baton_route::Millis;
use std::collections::HashMap;
use std::sync::Mutex;

/// Failures an account is allowed before the first wait.
pub const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Failures an address is allowed before the first wait: more, since a team behind one
/// address (an office's NAT) shares it.
pub const ADDRESS_FREE_FAILURES: u32 = 20;
/// A key's failures are forgotten this long (ms, 15 minutes) after its last one.
pub const FORGET_AFTER_MS: Millis = 15 * 60 * 1_000;
/// The first wait, ms; it doubles with each further failure.
pub const FIRST_WAIT_MS: Millis = 1_000;
/// The longest an attempt is held before it is taken or refused, ms.
pub const HOLD_MAX_MS: Millis = 2_000;
/// The longest wait, ms (15 minutes).
pub const MAX_WAIT_MS: Millis = 15 * 60 * 1_000;
/// Entries remembered at most; beyond it, those not waiting are forgotten.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    until: Millis,
    last: Millis,
}

/// What a sign-in attempt is counted under: its account, and its address when known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The account (agent id) signed in to.
    Account(String),
    /// The client's address.
    Address(std::net::IpAddr),
}

impl Key {
    fn free(&self) -> u32 {
        match self {
            Key::Account(_) => ACCOUNT_FREE_FAILURES,
            Key::Address(_) => ADDRESS_FREE_FAILURES,
        }
    }
}

/// The failures of each account and address.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<Key, Failures>>,
}

impl Throttle {
    /// How long (ms) an attempt under `keys` must still wait at `now`; 0 when it may go ahead.
    pub fn wait(&self, keys: &[Key], now: Millis) -> Millis {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter()
            .filter_map(|k| failures.get(k))
            .map(|f| f.until - now)
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// Records a failed attempt under `keys` at `now`.
    pub fn failed(&self, keys: &[Key], now: Millis) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, f| f.until > now || now - f.last < FORGET_AFTER_MS);
        }
        for k in keys {
            let f = failures.entry(k.clone()).or_default();
            if now - f.last >= FORGET_AFTER_MS {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= k.free() {
                let doublings = (f.count - k.free()).min(20);
                f.until = now + (FIRST_WAIT_MS << doublings).min(MAX_WAIT_MS);
            }
        }
    }

    /// A successful attempt: its keys start afresh.
    pub fn succeeded(&self, keys: &[Key]) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in keys {
            failures.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Millis = 1_000_000_000;

    #[test]
    fn waits_grow_after_the_free_failures_and_a_success_clears_them() {
        let t = Throttle::default();
        let keys = [Key::Account("ana".into())];
        for _ in 0..ACCOUNT_FREE_FAILURES - 1 {
            t.failed(&keys, START);
        }
        assert_eq!(t.wait(&keys, START), 0);
        t.failed(&keys, START);
        assert_eq!(t.wait(&keys, START), FIRST_WAIT_MS);
        t.failed(&keys, START);
        assert_eq!(t.wait(&keys, START), 2 * FIRST_WAIT_MS);
        assert_eq!(
            t.wait(&keys, START + 2 * FIRST_WAIT_MS),
            0,
            "the wait runs out"
        );
        for _ in 0..40 {
            t.failed(&keys, START);
        }
        assert_eq!(t.wait(&keys, START), MAX_WAIT_MS);
        let bob = [Key::Account("bob".into())];
        assert_eq!(t.wait(&bob, START), 0, "others unaffected");
        t.succeeded(&keys);
        assert_eq!(t.wait(&keys, START), 0);
    }

    #[test]
    fn an_address_gets_more_room_and_old_failures_are_forgotten() {
        let t = Throttle::default();
        let office = [Key::Address([10, 0, 0, 1].into())];
        for _ in 0..ACCOUNT_FREE_FAILURES {
            t.failed(&office, START);
        }
        assert_eq!(
            t.wait(&office, START),
            0,
            "a shared address is not an account"
        );
        for _ in ACCOUNT_FREE_FAILURES..ADDRESS_FREE_FAILURES {
            t.failed(&office, START);
        }
        assert_eq!(t.wait(&office, START), FIRST_WAIT_MS);
        // A quarter of an hour after the last failure the count starts again.
        let later = START + FORGET_AFTER_MS;
        t.failed(&office, later);
        assert_eq!(t.wait(&office, later), 0);
    }
}
