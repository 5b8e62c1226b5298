//! A live campaign end to end through the real binary: `waihu run` places SIP
//! calls on loopback to virtual callees with known personas, the voice bot
//! holds each conversation (VAD → Whisper → NLU → dialog → espeak-ng), and the
//! stored outcomes, transcripts, do-not-call entries and event log must match
//! what each persona did. Needs espeak-ng and the Whisper tiny.en model
//! (scripts/setup.sh installs both).
use waihu_sim::{Persona, Population};

mod common;
use common::{assert_whisper_tiny_en, import_orders, repo, run_live, waihu};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_campaign_outcomes_match_the_personas() {
    assert_whisper_tiny_en();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let people = [
        ("+12125550101", Persona::Cooperative, "Mr. Stone"),
        ("+12125550102", Persona::DoNotCall, "Ms. Hill"),
        ("+12125550103", Persona::BusyCallback, "Mr. Reed"),
        ("+12125550104", Persona::Busy, "Ms. Ford"),
        ("+12125550105", Persona::Voicemail, "Mr. Lane"),
        ("+12125550106", Persona::Cancels, "Ms. Cole"),
    ];
    import_orders(
        d,
        &people
            .iter()
            .map(|(phone, _, name)| (*phone, *name))
            .collect::<Vec<_>>(),
    );

    let map: Vec<(&str, Persona)> = people
        .iter()
        .map(|(p, persona, _)| (*p, *persona))
        .collect();
    let pop = Population::new(3).with_map(map).always_answer();
    let sim = common::english_callees(pop, |_| {}).await;

    // A Wednesday morning in New York, so the calling window is open whatever the real time.
    let campaign = repo().join("examples/campaign-demo.en.yaml");
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let v = run_live(
        d,
        &campaign,
        &script,
        &sim.addr.to_string(),
        &[
            "--var",
            "shop=BestBuy Online",
            "--concurrency",
            "6",
            "--hours",
            "8",
        ],
    )
    .await;
    let calls = v["summary"]["calls"].as_array().unwrap().clone();
    let by_phone = |p: &str| -> Vec<serde_json::Value> {
        calls.iter().filter(|c| c["phone"] == p).cloned().collect()
    };
    let first = |p: &str| {
        by_phone(p)
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("no call to {p}: {v}"))
    };
    let c = first("+12125550101");
    assert_eq!(c["outcome"], "answered", "{c}");
    assert_eq!(c["business"], "confirmed", "{c}");
    let c = first("+12125550102");
    assert_eq!(c["business"], "do_not_call", "{c}");
    assert_eq!(
        by_phone("+12125550102").len(),
        1,
        "a do-not-call number is never dialled again"
    );
    let c = first("+12125550103");
    assert_eq!(c["business"], "callback", "{c}");
    let busy = by_phone("+12125550104");
    assert_eq!(busy[0]["outcome"], "busy", "{busy:?}");
    assert!(
        busy.len() >= 2,
        "busy is retried after 10 min of campaign clock: {busy:?}"
    );
    assert_eq!(first("+12125550105")["outcome"], "voicemail");
    assert_eq!(first("+12125550106")["business"], "cancelled");

    // The number the callee asked not to be called again is on the list.
    let dnc = waihu(d, &["dnc", "check", "+12125550102"]);
    assert!(dnc.contains("DO NOT CALL"), "{dnc}");
    // Latency was measured on answered calls' turns.
    assert!(
        v["latency"]["turns"].as_u64().unwrap() >= 4,
        "{}",
        v["latency"]
    );
    // The independent checker passes on the stored event log.
    let camp_file = d.join("campaign.yaml");
    std::fs::write(
        &camp_file,
        std::fs::read_to_string(repo().join("examples/campaign-demo.en.yaml"))
            .unwrap()
            .replacen("id: 1 ", &format!("id: {} ", v["campaign"]), 1),
    )
    .unwrap();
    let check = waihu(
        d,
        &[
            "compliance",
            "check",
            "--campaign",
            camp_file.to_str().unwrap(),
        ],
    );
    assert!(check.contains("PASS"), "{check}");
    // The scored share against the callees' own log.
    let attempts: Vec<(String, waihu_core::CallOutcome, Option<String>)> = calls
        .iter()
        .map(|c| {
            (
                c["phone"].as_str().unwrap().to_string(),
                serde_json::from_value(c["outcome"].clone()).unwrap(),
                c["business"].as_str().map(String::from),
            )
        })
        .collect();
    let score = waihu_sim::score(&attempts, &sim.logs());
    assert!(score.share() >= 0.8, "{score}");
    // Every answered call stored its media quality; the callees' RTCP reached us on the
    // longer calls (the first report goes out 2.5 s after the answer).
    let store = waihu_store::Store::open(d).await.unwrap();
    let stored = store.calls_list(None, 200, None).await.unwrap();
    let mut with_rtcp = 0;
    for c in stored
        .iter()
        .filter(|c| c.outcome.as_deref() == Some("answered"))
    {
        let detail = store.call_detail(&c.call_id).await.unwrap().unwrap();
        let q = detail
            .quality
            .unwrap_or_else(|| panic!("no quality for {}", c.call_id.as_str()));
        assert!(q.packets_sent > 0 && q.packets_received > 0, "{q:?}");
        if q.rtcp_received > 0 && q.peer_lost.is_some() && q.rtt_ms.is_some() {
            with_rtcp += 1;
        }
    }
    assert!(with_rtcp >= 1, "no answered call carried the callee's RTCP");
    sim.shutdown().await;
}
