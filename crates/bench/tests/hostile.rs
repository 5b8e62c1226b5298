//! Short versions of `waihu bench flood` and `waihu bench soak`, so the commands an operator
//! runs for hours stay working: the figures themselves are for the benchmarks, these check
//! that the runs happen and that nothing is lost.
use waihu_bench::{flood, soak};

#[test]
fn flood_bench_runs_its_three_rows_and_the_guarded_calls_lose_nothing() {
    let rows = flood::measure(&flood::Args {
        rate: 5_000,
        calls: 2,
        call_seconds: 3,
        json: false,
    })
    .unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.run).collect();
    assert_eq!(
        names,
        ["no flood (baseline)", "flood, guard on", "flood, guard off"]
    );
    let (calm, guarded, open) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(calm.flood_per_s, 0.0);
    for r in [calm, guarded] {
        assert_eq!((r.calls_ok, r.lost), (2, 0), "{r:?}");
    }
    assert!(guarded.flood_per_s > 1_000.0, "{guarded:?}");
    // The guard's whole point, in the run's own figures.
    assert!(
        guarded.peak_transactions * 10 < open.peak_transactions,
        "{guarded:?} vs {open:?}"
    );
    assert!(guarded.answered_per_flood_datagram < 0.05, "{guarded:?}");
}

#[test]
fn soak_bench_samples_and_replaces_calls_without_loss() {
    let mut seen = 0;
    let r = soak::measure(
        &soak::Args {
            calls: 20,
            minutes: 0.4,
            call_seconds: 5,
            sample_seconds: 2,
            json: false,
        },
        &mut |_, _| seen += 1,
    )
    .unwrap();
    assert!(seen >= 10 && r.samples.len() == seen, "{seen} samples");
    // 20 calls up for 24 s, 5 s each: about 80 calls set up and torn down.
    assert!(r.calls_done >= 60, "{r:?}");
    assert_eq!((r.calls_failed, r.lost), (0, 0), "{r:?}");
    assert!(r.received > 20 * 50 * 15, "{r:?}");
    assert!(r.rss_mb_per_min.is_finite() && r.fds_per_min.is_finite());
    assert!(r.samples.iter().all(|s| s.fds > 0 && s.rss_mb > 0.0));
}

#[test]
fn slope_is_the_least_squares_line() {
    assert_eq!(soak::slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
    assert_eq!(soak::slope(&[(0.0, 7.0)]), 0.0);
    assert!((soak::slope(&[(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 1.0)]) - 0.2).abs() < 1e-12);
}

/// A short `waihu bench console`: every console request answers on both directories.
#[test]
fn console_bench_times_every_request_on_both_sizes() {
    let r = waihu_bench::console::measure(
        &waihu_bench::console::Args {
            customers: 3_000,
            calls: 2_000,
            runs: 1,
            dir: None,
            json: false,
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(r.rows.len(), 11, "{r:?}");
    for row in &r.rows {
        assert!(
            row.small_ms > 0.0 && row.large_ms > 0.0 && row.bytes > 0,
            "{row:?}"
        );
    }
}

/// `waihu bench cluster` smoke: two node counts against a PostgreSQL started here; every
/// contact dialled exactly once (the bench checks it), figures positive.
#[test]
fn cluster_bench_smoke() {
    if !waihu_testkit::have_peer_at(
        "postgres",
        &waihu_testkit::postgres::bin("postgres").unwrap_or_default(),
    ) {
        return;
    }
    let r = waihu_bench::cluster::measure(&waihu_bench::cluster::Args {
        contacts: 300,
        nodes: vec![1, 2],
        workers: 2,
        url: None,
        report_calls: 3000,
        json: false,
    })
    .unwrap();
    assert_eq!(r.runs.len(), 2);
    let rep = r.report.expect("the report part ran");
    assert!(rep.agree && rep.calls == 3000 && rep.rollup_p50_ms > 0.0);
    assert!(r.runs.iter().all(|n| n.dials == 300 && n.dials_per_s > 0.0));
    assert!(r.sqlite_dials_per_s > 0.0 && r.enqueue_per_s > 0.0);
}
