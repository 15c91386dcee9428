//! Erlang C: the M/M/c queue that contact-centre staffing is planned with, and the waiting-time
//! distribution Baton quotes from.
//!
//! Model (A. K. Erlang, 1917; the standard workforce-management formulas): Poisson arrivals at
//! rate `λ`, exponential handle times with mean `1/μ`, `c` identical agents, first come first
//! served, nobody abandons. The offered load is `a = λ/μ` Erlangs and the occupancy `ρ = a/c`,
//! which must be below 1 for the queue to be stable.
//!
//! - probability of waiting `C(c, a) = c·B / (c - a·(1 - B))`, with `B` Erlang B computed by the
//!   recursion `B(0) = 1`, `B(k) = a·B(k-1) / (k + a·B(k-1))` (stable for thousands of agents,
//!   no factorials);
//! - mean wait (speed of answer) `W = C / (cμ - λ)`;
//! - service level `P(wait <= t) = 1 - C·exp(-(cμ - λ)·t)`.
//!
//! A customer who finds every agent busy with `k - 1` customers ahead waits for `k` departures,
//! each after an exponential time with rate `cμ`: an Erlang (gamma) distribution with shape `k`
//! and rate `cμ`. [`erlang_quantile`] gives its quantiles, from which quotes are made.

/// Steady-state figures of an M/M/c queue, all times in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErlangC {
    /// Probability that an arriving customer waits at all.
    pub probability_of_waiting: f64,
    /// Mean wait over all customers, those served at once included.
    pub mean_wait_seconds: f64,
    /// Share of agents' time spent handling, `a / c`.
    pub occupancy: f64,
}

impl ErlangC {
    /// Erlang C for `agents` agents, `arrivals_per_second` and `mean_handle_seconds`.
    ///
    /// Returns `None` when the queue is unstable (occupancy 1 or more) or an input is not a
    /// positive finite number.
    pub fn new(agents: u32, arrivals_per_second: f64, mean_handle_seconds: f64) -> Option<ErlangC> {
        let c = f64::from(agents);
        let a = arrivals_per_second * mean_handle_seconds;
        if agents == 0 || !(a.is_finite() && a > 0.0) || a >= c || mean_handle_seconds <= 0.0 {
            return None;
        }
        let mut b = 1.0;
        for k in 1..=agents {
            b = a * b / (f64::from(k) + a * b);
        }
        let p_wait = c * b / (c - a * (1.0 - b));
        Some(ErlangC {
            probability_of_waiting: p_wait,
            mean_wait_seconds: p_wait * mean_handle_seconds / (c - a),
            occupancy: a / c,
        })
    }

    /// Share of customers answered within `seconds`.
    pub fn service_level(&self, seconds: f64, agents: u32, mean_handle_seconds: f64) -> f64 {
        let c = f64::from(agents);
        let drain = (c - self.occupancy * c) / mean_handle_seconds;
        1.0 - self.probability_of_waiting * (-drain * seconds.max(0.0)).exp()
    }
}

/// Shapes above this use the Wilson-Hilferty approximation instead of the exact CDF.
const EXACT_SHAPE_MAX: u64 = 24;

/// The `p`-quantile (0 < p < 1) of an Erlang distribution with integer `shape` k >= 1 and `rate`
/// per second: the time within which `k` exponential departures at that rate have happened with
/// probability `p`.
///
/// Up to shape 24, by bisection on the closed-form CDF `F(t) = 1 - Σ_{n<k} e^{-rt} (rt)^n / n!`.
/// Above, by the Wilson-Hilferty cube-root normal approximation of the gamma distribution
/// (Wilson and Hilferty, 1931): `k (1 - 1/(9k) + z_p / sqrt(9k))^3 / r`, within 0.1% of the
/// exact quantile from shape 24 on, at a constant cost however long the queue. Returns 0 for
/// `shape` 0 and infinity for a rate that is not positive.
pub fn erlang_quantile(shape: u64, rate: f64, p: f64) -> f64 {
    if shape == 0 {
        return 0.0;
    }
    if !(rate > 0.0 && rate.is_finite()) {
        return f64::INFINITY;
    }
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    if shape > EXACT_SHAPE_MAX {
        wilson_hilferty(shape, rate, p)
    } else {
        exact_quantile(shape, rate, p)
    }
}

fn wilson_hilferty(shape: u64, rate: f64, p: f64) -> f64 {
    let k = shape as f64;
    let z = normal_quantile(p);
    let c = 1.0 / (9.0 * k);
    k * (1.0 - c + z * c.sqrt()).max(0.0).powi(3) / rate
}

fn exact_quantile(shape: u64, rate: f64, p: f64) -> f64 {
    let k = shape as f64;
    // The mean is k/r and the standard deviation sqrt(k)/r; the quantile lies well within
    // mean + 10 sd for any p used here.
    let (mut lo, mut hi) = (0.0, (k + 10.0 * k.sqrt() + 10.0) / rate);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if erlang_cdf(shape, rate * mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-6 * hi.max(1e-9) {
            break;
        }
    }
    hi
}

/// The standard normal's `p`-quantile (0 < p < 1), by P. J. Acklam's rational approximation
/// (relative error below 1.2e-9), in constant time.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// CDF of the Erlang distribution with `shape` at `x = rate * t`.
fn erlang_cdf(shape: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    // Σ_{n<k} e^{-x} x^n / n!, each term from the last: term_n = term_{n-1} * x / n.
    let mut log_term = -x;
    let mut tail = log_term.exp();
    for n in 1..shape {
        log_term += x.ln() - (n as f64).ln();
        tail += log_term.exp();
    }
    (1.0 - tail).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_published_staffing_tables() {
        // The textbook call-centre example: 100 calls in 30 minutes, 180 s handle time, so
        // 10 Erlangs; with 11 agents P(wait) = 68.21% and the mean wait 122.8 s; with 12 agents
        // 44.94% and 40.4 s (as tabulated by Erlang C calculators).
        let e = ErlangC::new(11, 100.0 / 1800.0, 180.0).expect("stable");
        assert!((e.probability_of_waiting - 0.682).abs() < 0.001, "{e:?}");
        assert!((e.mean_wait_seconds - 122.8).abs() < 0.1, "{e:?}");
        let e = ErlangC::new(12, 100.0 / 1800.0, 180.0).expect("stable");
        assert!((e.probability_of_waiting - 0.449).abs() < 0.001, "{e:?}");
        assert!((e.mean_wait_seconds - 40.4).abs() < 0.1, "{e:?}");
        // One agent is M/M/1: P(wait) = ρ and W = ρ/(μ - λ).
        let e = ErlangC::new(1, 0.5, 1.0).expect("stable");
        assert!((e.probability_of_waiting - 0.5).abs() < 1e-12);
        assert!((e.mean_wait_seconds - 1.0).abs() < 1e-12);
        assert!((e.service_level(0.0, 1, 1.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn unstable_or_nonsense_loads_have_no_answer() {
        assert!(ErlangC::new(10, 10.0, 1.0).is_none());
        assert!(ErlangC::new(0, 1.0, 1.0).is_none());
        assert!(ErlangC::new(3, f64::NAN, 1.0).is_none());
        assert!(ErlangC::new(3, 1.0, 0.0).is_none());
        // Thousands of agents do not overflow.
        let e = ErlangC::new(5000, 4900.0, 1.0).expect("stable");
        assert!(e.probability_of_waiting > 0.0 && e.probability_of_waiting < 1.0);
    }

    #[test]
    fn erlang_quantiles_match_the_exponential_and_the_mean() {
        // Shape 1 is exponential: the median is ln 2 / rate.
        let q = erlang_quantile(1, 2.0, 0.5);
        assert!((q - std::f64::consts::LN_2 / 2.0).abs() < 1e-5, "{q}");
        // The 90th percentile of an exponential is ln 10 / rate.
        let q = erlang_quantile(1, 1.0, 0.9);
        assert!((q - 10f64.ln()).abs() < 1e-5, "{q}");
        // Large shapes concentrate near the mean k/r (within about 1.28 sd at p = 0.9).
        let q = erlang_quantile(10_000, 1.0, 0.9);
        assert!((q - (10_000.0 + 1.2816 * 100.0)).abs() < 2.0, "{q}");
        // Where the approximation takes over it is within 0.1% of the exact quantile.
        for shape in [EXACT_SHAPE_MAX + 1, 50, 200] {
            for p in [0.5, 0.9, 0.99] {
                let exact = exact_quantile(shape, 0.5, p);
                let approx = wilson_hilferty(shape, 0.5, p);
                assert!(
                    (exact - approx).abs() / exact < 0.001,
                    "{shape}, {p}: {exact} vs {approx}"
                );
            }
        }
        assert!((normal_quantile(0.9) - 1.281_551_6).abs() < 1e-6);
        assert!((normal_quantile(0.999) - 3.090_232_3).abs() < 1e-6);
        assert!((normal_quantile(0.01) + 2.326_347_9).abs() < 1e-6);
        assert!(normal_quantile(0.5).abs() < 1e-12);
        assert_eq!(erlang_quantile(0, 1.0, 0.9), 0.0);
        assert!(erlang_quantile(3, 0.0, 0.9).is_infinite());
    }
}
