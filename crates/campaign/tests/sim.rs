//! The simulator end to end, audited by the independent checker.
use waihu_campaign::config::Policy;
use waihu_campaign::{simulate, Campaign, SimConfig, EXAMPLE_CAMPAIGN};
use waihu_compliance::{CampaignRules, Checker};

fn run(
    policy: Policy,
    agents: Option<u32>,
    customers: usize,
    days: u32,
) -> (
    waihu_campaign::SimReport,
    waihu_compliance::ComplianceReport,
) {
    let text = waihu_campaign::sim::scale_scenario(EXAMPLE_CAMPAIGN, 12).unwrap();
    let campaign = Campaign::from_yaml(&text).unwrap();
    let mut checker = Checker::new(vec![CampaignRules::from_yaml("scenario", &text).unwrap()]);
    let cfg = SimConfig {
        customers,
        days,
        seed: 7,
        policy,
        agents,
        start: None,
        explain: 0,
    };
    let r = simulate(&campaign, &cfg, &mut |e| checker.feed(e));
    (r, checker.finish())
}

#[test]
fn small_runs_have_zero_violations_and_plausible_numbers() {
    for policy in [Policy::BestTime, Policy::Fifo] {
        let (r, c) = run(policy, None, 3000, 4);
        assert!(c.ok(), "{policy:?}: {}", waihu_compliance::render_text(&c));
        assert_eq!(c.attempts, r.attempts);
        assert!(r.attempts > 3000, "{r:?}");
        assert!(r.connects > 500 && r.reached <= r.connects, "{r:?}");
        assert!(
            r.invalid_attempts > 0 && r.invalid_attempts < r.attempts / 10,
            "{r:?}"
        );
        assert!(r.callback_dials > 0, "{r:?}");
        assert!(r.messages_sent > 0, "{r:?}");
        assert!(r.dnc_added > 0, "{r:?}");
    }
}

#[test]
fn predictive_run_keeps_abandon_rate_under_three_percent() {
    let (r, c) = run(Policy::BestTime, Some(10), 2000, 2);
    assert!(c.ok(), "{}", waihu_compliance::render_text(&c));
    assert!(r.connects > 300, "{r:?}");
    assert!(r.abandon_rate <= 0.03, "{r:?}");
    assert_eq!(c.campaigns[0].abandoned, r.abandoned);
}
