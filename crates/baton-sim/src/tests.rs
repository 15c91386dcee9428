use super::*;

fn mmc(agents: u32, per_hour: f64, seconds: f64, seed: u64) -> Scenario {
    parse(
        &format!(
            "seed: {seed}\nduration_seconds: {seconds}\nqueues:\n  - {{name: support, sla_seconds: 20}}\nagents:\n  - {{count: {agents}, skills: [support], capacity: 1}}\narrivals:\n  - {{queue: support, per_hour: {per_hour}}}\nhandle_time: {{distribution: exponential, mean_seconds: 60}}\n"
        ),
        "mmc.yaml",
    )
    .expect("valid scenario")
}

/// The acceptance check of the routing engine: on M/M/c the simulation, driving the real
/// dispatcher, agrees with Erlang C from 50% to 95% occupancy: mean wait within 5%, service
/// level within 2 points; and quotes are exceeded for at most 10% of customers.
#[test]
fn simulation_agrees_with_erlang_c_from_half_to_95_percent_occupancy() {
    // 10 agents, 60 s handle time: 600 per hour is 100% occupancy.
    for (occupancy, arrivals) in [
        (0.5, 400_000.0),
        (0.7, 400_000.0),
        (0.85, 600_000.0),
        (0.95, 1_500_000.0),
    ] {
        let per_hour = 600.0 * occupancy;
        let seconds = arrivals / per_hour * 3600.0;
        let report = simulate(&mmc(10, per_hour, seconds, 11));
        let q = &report.queues["support"];
        let e = q.erlang_c.expect("M/M/c has an Erlang C answer");
        assert!((e.occupancy - occupancy).abs() < 1e-9);
        let wait_error = (q.mean_wait_seconds - e.mean_wait_seconds).abs() / e.mean_wait_seconds;
        assert!(
            wait_error <= 0.05,
            "occupancy {occupancy}: simulated mean wait {:.3} s against Erlang C {:.3} s ({:.1}% off)",
            q.mean_wait_seconds,
            e.mean_wait_seconds,
            wait_error * 100.0
        );
        assert!(
            (q.service_level - e.service_level).abs() <= 0.02,
            "occupancy {occupancy}: service level {:.4} against Erlang C {:.4}",
            q.service_level,
            e.service_level
        );
        assert!(
            (q.occupancy - occupancy).abs() < 0.02,
            "occupancy {occupancy}: measured {:.3}",
            q.occupancy
        );
        assert!(
            q.quote_exceeded_share <= 0.10,
            "occupancy {occupancy}: {:.1}% waited longer than quoted",
            q.quote_exceeded_share * 100.0
        );
        assert_eq!(q.answered, q.offered);
    }
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_another() {
    let a = simulate(&mmc(3, 150.0, 20_000.0, 1));
    let b = simulate(&mmc(3, 150.0, 20_000.0, 1));
    let c = simulate(&mmc(3, 150.0, 20_000.0, 2));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn impatient_customers_abandon_and_shifts_staff_the_queue() {
    let text = "seed: 3
duration_seconds: 36000
queues:
  - {name: sales, sla_seconds: 30}
  - {name: support, sla_seconds: 60, skills: [support]}
agents:
  - {count: 2, name: day, skills: [support], shifts: [{start_seconds: 0, end_seconds: 18000}]}
  - {count: 1, name: late, skills: [support, sales], shifts: [{start_seconds: 18000, end_seconds: 40000}]}
arrivals:
  - {queue: support, per_hour: 100}
  - {queue: sales, per_hour: 20, priority: 10, handle_time: {distribution: fixed, seconds: 30}}
handle_time: {distribution: lognormal, mean_seconds: 70, sd_seconds: 40}
patience: {distribution: exponential, mean_seconds: 120}
";
    let report = simulate(&parse(text, "t.yaml").expect("valid"));
    let support = &report.queues["support"];
    let sales = &report.queues["sales"];
    // Sales has nobody before the late shift: its early customers abandon.
    assert!(sales.abandoned > 0, "{sales:?}");
    // One agent for 100 an hour at 70 s (about 2 Erlangs) after 18000 s: many give up.
    assert!(support.abandoned > support.offered / 10, "{support:?}");
    for q in [support, sales] {
        assert_eq!(q.answered + q.abandoned + q.unserved, q.offered);
        assert!(q.service_level > 0.0 && q.service_level < 1.0);
        assert!(q.occupancy > 0.0 && q.occupancy <= 1.0, "{q:?}");
        assert!(q.erlang_c.is_none());
    }
}

#[test]
fn samplers_have_the_means_they_are_given() {
    for d in [
        Distribution::Exponential { mean_seconds: 60.0 },
        Distribution::Lognormal {
            mean_seconds: 60.0,
            sd_seconds: 30.0,
        },
        Distribution::Fixed { seconds: 60.0 },
    ] {
        let m = draw_mean(d, 200_000, 5);
        assert!((m - 60.0).abs() < 0.6, "{d:?}: {m}");
    }
}

#[test]
fn bad_scenarios_say_where_and_how_to_fix() {
    let base = "duration_seconds: 100\nqueues: [{name: q}]\nagents: [{count: 1}]\narrivals: [{queue: q, per_hour: 10}]\nhandle_time: {distribution: exponential, mean_seconds: 60}\n";
    assert!(parse(base, "s.yaml").is_ok());
    let e = parse(&base.replace("queue: q,", "queue: nope,"), "s.yaml").expect_err("queue");
    assert_eq!((e.line, e.path.as_str()), (4, "arrivals[0].queue"));
    assert!(e.hint.contains("q"), "{e}");
    let e = parse(&base.replace("per_hour: 10", "per_hour: 0"), "s.yaml").expect_err("rate");
    assert_eq!(e.path, "arrivals[0].per_hour");
    let e = parse(
        &base.replace("mean_seconds: 60", "mean_seconds: -1"),
        "s.yaml",
    )
    .expect_err("mean");
    assert_eq!(e.path, "handle_time");
    let e = parse(&base.replace("count: 1", "count: 1, colour: red"), "s.yaml")
        .expect_err("unknown key");
    assert!(e.message.contains("colour"), "{e}");
    assert_eq!(e.line, 3);
    let e = parse(
        &base.replace("distribution: exponential", "distribution: gamma"),
        "s.yaml",
    )
    .expect_err("distribution");
    assert!(e.message.contains("gamma"), "{e}");
    assert!(e.to_string().starts_with("s.yaml:"), "{e}");
}
