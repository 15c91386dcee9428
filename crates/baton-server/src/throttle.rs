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

/// Rate limits of the public widget API, which anyone may call (GCRA, the `governor` crate):
/// conversations started per address, and messages per address and per conversation.
pub struct WidgetLimits {
    starts: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    messages_per_address: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    messages_per_conversation: governor::DefaultKeyedRateLimiter<String>,
}

/// Conversations one address may start: a burst of this many, then
/// [`STARTS_PER_MINUTE`] a minute.
pub const STARTS_BURST: u32 = 10;
/// See [`STARTS_BURST`].
pub const STARTS_PER_MINUTE: u32 = 30;
/// Messages one conversation may send: a burst of this many, then one a second.
pub const MESSAGES_BURST: u32 = 10;
/// Messages one address may send a minute (many customers can share an address), in bursts
/// of a quarter of it.
pub const ADDRESS_MESSAGES_PER_MINUTE: u32 = 600;

impl Default for WidgetLimits {
    fn default() -> Self {
        use governor::{Quota, RateLimiter};
        use std::num::NonZeroU32;
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            starts: RateLimiter::keyed(
                Quota::per_minute(n(STARTS_PER_MINUTE)).allow_burst(n(STARTS_BURST)),
            ),
            messages_per_address: RateLimiter::keyed(
                Quota::per_minute(n(ADDRESS_MESSAGES_PER_MINUTE))
                    .allow_burst(n(ADDRESS_MESSAGES_PER_MINUTE / 4)),
            ),
            messages_per_conversation: RateLimiter::keyed(
                Quota::per_second(n(1)).allow_burst(n(MESSAGES_BURST)),
            ),
        }
    }
}

/// Request rates per caller, per second (0: not limited); each may burst to
/// [`BURST_SECONDS`] seconds' worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Each signed-in person (their session's account).
    pub per_session: u32,
    /// Each API key; bots carry the whole traffic, so none by default.
    pub per_key: u32,
    /// Each address, for calls without valid credentials (key and password guessing).
    pub per_anonymous_address: u32,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            per_session: 20,
            per_key: 0,
            per_anonymous_address: 10,
        }
    }
}

/// How many seconds of its rate a caller may spend at once.
pub const BURST_SECONDS: u32 = 5;

/// The request limits of callers of the API, by [`Rates`].
pub struct CallerLimits {
    sessions: Option<governor::DefaultKeyedRateLimiter<String>>,
    keys: Option<governor::DefaultKeyedRateLimiter<String>>,
    anonymous: Option<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
}

fn keyed<K: Clone + std::hash::Hash + Eq>(
    per_second: u32,
) -> Option<governor::DefaultKeyedRateLimiter<K>> {
    let rate = std::num::NonZeroU32::new(per_second)?;
    let burst = std::num::NonZeroU32::new(per_second.saturating_mul(BURST_SECONDS)).unwrap_or(rate);
    Some(governor::RateLimiter::keyed(
        governor::Quota::per_second(rate).allow_burst(burst),
    ))
}

impl CallerLimits {
    /// Limits at `rates`.
    pub fn new(rates: Rates) -> Self {
        CallerLimits {
            sessions: keyed(rates.per_session),
            keys: keyed(rates.per_key),
            anonymous: keyed(rates.per_anonymous_address),
        }
    }

    /// A call by the person signed in as `account`.
    ///
    /// # Errors
    /// The seconds to wait.
    pub fn session(&self, account: &str) -> Result<(), u64> {
        self.sessions
            .as_ref()
            .map_or(Ok(()), |l| check(l, &account.to_owned()))
    }

    /// A call with the API key whose digest is `key`.
    ///
    /// # Errors
    /// The seconds to wait.
    pub fn key(&self, key: &str) -> Result<(), u64> {
        self.keys
            .as_ref()
            .map_or(Ok(()), |l| check(l, &key.to_owned()))
    }

    /// A call without valid credentials from `address` (none known: not limited).
    ///
    /// # Errors
    /// The seconds to wait.
    pub fn anonymous(&self, address: Option<std::net::IpAddr>) -> Result<(), u64> {
        match (&self.anonymous, address) {
            (Some(l), Some(a)) => check(l, &a),
            _ => Ok(()),
        }
    }
}

/// Keys a limiter remembers before it forgets those back at full allowance.
const LIMITER_KEYS: usize = 100_000;

/// Whether `key` may go ahead under `limiter`; else the seconds to wait (at least 1).
fn check<K: Clone + std::hash::Hash + Eq>(
    limiter: &governor::DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), u64> {
    use governor::clock::{Clock, DefaultClock};
    if limiter.len() > LIMITER_KEYS {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        not_until
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1)
    })
}

impl WidgetLimits {
    /// A conversation start from `address` (none known: not limited).
    ///
    /// # Errors
    /// The seconds to wait.
    pub fn start(&self, address: Option<std::net::IpAddr>) -> Result<(), u64> {
        address.map_or(Ok(()), |a| check(&self.starts, &a))
    }

    /// A message of conversation `conversation` from `address`.
    ///
    /// # Errors
    /// The seconds to wait.
    pub fn message(
        &self,
        address: Option<std::net::IpAddr>,
        conversation: &str,
    ) -> Result<(), u64> {
        if let Some(a) = address {
            check(&self.messages_per_address, &a)?;
        }
        check(&self.messages_per_conversation, &conversation.to_owned())
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
    fn widget_starts_and_messages_are_limited() {
        let limits = WidgetLimits::default();
        let here = Some([10, 0, 0, 7].into());
        let started = (0..1_000).filter(|_| limits.start(here).is_ok()).count();
        assert_eq!(started, STARTS_BURST as usize, "a burst, then the rate");
        assert!(limits.start(here).is_err_and(|wait| wait >= 1));
        assert!(
            limits.start(Some([10, 0, 0, 8].into())).is_ok(),
            "per address"
        );
        assert!(limits.start(None).is_ok(), "no address known: not limited");
        let sent = (0..100)
            .filter(|_| limits.message(here, "c1").is_ok())
            .count();
        assert_eq!(sent, MESSAGES_BURST as usize);
        assert!(limits.message(here, "c2").is_ok(), "per conversation");
    }

    #[test]
    fn callers_are_limited_by_their_own_rate_and_a_zero_rate_is_none() {
        let limits = CallerLimits::new(Rates {
            per_session: 2,
            per_key: 0,
            per_anonymous_address: 1,
        });
        let burst = (2 * BURST_SECONDS) as usize;
        assert_eq!(
            (0..100).filter(|_| limits.session("ana").is_ok()).count(),
            burst
        );
        assert!(limits.session("bo").is_ok(), "per account");
        assert_eq!(
            (0..1_000).filter(|_| limits.key("k").is_ok()).count(),
            1_000
        );
        let here = Some([10, 0, 0, 9].into());
        assert_eq!(
            (0..100).filter(|_| limits.anonymous(here).is_ok()).count(),
            BURST_SECONDS as usize
        );
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
