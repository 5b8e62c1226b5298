//! Call analysis on live calls: `waihu run` dials virtual callees on loopback
//! (real SIP and RTP through the engine, the dialer and the bot) where some
//! numbers are answered by a voicemail box with a beep, by a carrier saying the
//! number does not exist (空号, with SIT tones first) or is suspended (停机),
//! or ring out to a 关机 announcement in early media; one is a person. Each
//! call must be stored with the right outcome (the `attempt_ended` events),
//! analysed (`call_analysed`), and retried or not per the campaign's `retry:`
//! table: voicemail, powered_off and suspended once more, invalid_number
//! never. The bot leaves the script's voicemail message after the beep.
//!
//! The 停机 carrier plays its own recording, in Mandarin, which the English
//! ASR cannot understand: the operator gave waihu the same recording
//! (`announcements:` in the campaign), and its audio fingerprint names it. The
//! recording is tagged with the trunk whose carrier plays it; a second carrier's
//! recording of the same audio (under another state) is tagged with another trunk
//! and must not be tried on these calls.
//!
//! Needs espeak-ng and the Whisper tiny.en model (scripts/setup.sh installs both).
use std::collections::BTreeMap;

use waihu_sim::{callee_synthesizer, Persona, Population};

mod common;
use common::{assert_whisper_tiny_en, import_orders, json_lines, repo, run_live, waihu};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_and_carrier_announcements_are_stored_and_retried_per_policy() {
    assert_whisper_tiny_en();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // (phone, persona, stored outcome, attempts the campaign's retry table allows)
    let people = [
        ("+12125550201", Persona::Voicemail, "voicemail", 2),
        ("+12125550202", Persona::Vacant, "invalid_number", 1),
        ("+12125550203", Persona::Suspended, "suspended", 2),
        ("+12125550204", Persona::PoweredOff, "powered_off", 2),
        ("+12125550205", Persona::NotInterested, "answered", 1),
    ];
    let names: Vec<String> = (0..people.len()).map(|i| format!("Customer {i}")).collect();
    import_orders(
        d,
        &people
            .iter()
            .zip(&names)
            .map(|((phone, ..), name)| (*phone, name.as_str()))
            .collect::<Vec<_>>(),
    );
    let pop = Population::new(5)
        .with_map(
            people
                .iter()
                .map(|(p, persona, ..)| (*p, *persona))
                .collect::<Vec<(&str, Persona)>>(),
        )
        .always_answer();
    // The carrier's own 停机 recording, as an operator would capture it.
    let recording: Vec<i16> = callee_synthesizer(None)
        .synthesize_all(
            "对不起，您拨打的电话已停机，请缴清话费后再拨。",
            waihu_speech::Voice {
                style: waihu_speech::Style::NEUTRAL,
                lang: waihu_speech::LangChoice::Zh,
                rate: 8000,
            },
        )
        .expect("espeak-ng speaks Mandarin");
    waihu_audio::wav::write_wav(&d.join("carrier-suspended.wav"), 8000, &recording).unwrap();
    let sim = common::english_callees(pop, |opts| {
        opts.carrier_recordings
            .insert(Persona::Suspended, recording.into());
        opts.voicemail_ring = (
            std::time::Duration::from_millis(300),
            std::time::Duration::from_millis(600),
        );
    })
    .await;

    // The demo campaign's retry table: voicemail after 3 h (max 1), powered_off
    // after 2 h (max 1), suspended after 4 h (max 1), invalid_number stop. The
    // campaign clock skips idle time.
    let campaign = d.join("campaign.yaml");
    std::fs::write(
        &campaign,
        format!(
            "{}announcements:\n  - {{kind: suspended, file: carrier-suspended.wav, name: carrier 停机, trunk: loopback}}\n  - {{kind: vacant, file: carrier-suspended.wav, name: other carrier 空号, trunk: elsewhere}}\n",
            std::fs::read_to_string(repo().join("examples/campaign-demo.en.yaml")).unwrap()
        ),
    )
    .unwrap();
    // Two named trunks: the calls go out on `loopback` (the campaign planner's
    // trunk); `elsewhere` leads nowhere. Each carrier's recording is tried only on
    // its own trunk's calls: were the other one's tried too, the same audio filed
    // under two states would name neither, and 停机 would not be stored.
    let trunks = d.join("trunks.yaml");
    std::fs::write(
        &trunks,
        format!(
            "trunks:\n  - {{name: loopback, proxy: '{}', channels: 20, cps: 50}}\n  - {{name: elsewhere, proxy: '127.0.0.1:9', channels: 1, cps: 1}}\n",
            sim.addr
        ),
    )
    .unwrap();
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let v = run_live(
        d,
        &campaign,
        &script,
        "",
        &[
            "--var",
            "shop=BestBuy Online",
            "--trunks",
            trunks.to_str().unwrap(),
            "--concurrency",
            "5",
            "--hours",
            "8",
        ],
    )
    .await;
    let calls = v["summary"]["calls"].as_array().unwrap().clone();
    let phone_of: BTreeMap<String, String> = calls
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap().to_string(),
                c["phone"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    // What the store holds: every attempt's outcome and analysis.
    let ended = json_lines(&waihu(
        d,
        &[
            "events",
            "list",
            "--type",
            "attempt_ended",
            "--limit",
            "100",
            "--json",
        ],
    ));
    let analysed = json_lines(&waihu(
        d,
        &[
            "events",
            "list",
            "--type",
            "call_analysed",
            "--limit",
            "100",
            "--json",
        ],
    ));
    let stored = |phone: &str| -> Vec<String> {
        ended
            .iter()
            .filter(|e| {
                phone_of
                    .get(e["call"].as_str().unwrap_or(""))
                    .map(String::as_str)
                    == Some(phone)
            })
            .map(|e| e["kind"]["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    let analysis = |phone: &str| -> Vec<serde_json::Value> {
        analysed
            .iter()
            .filter(|e| {
                phone_of
                    .get(e["call"].as_str().unwrap_or(""))
                    .map(String::as_str)
                    == Some(phone)
            })
            .map(|e| e["kind"].clone())
            .collect()
    };

    let mut right = 0;
    let mut total = 0;
    let mut decided: Vec<u64> = Vec::new();
    let mut report = Vec::new();
    for (phone, persona, want, attempts) in people {
        let got = stored(phone);
        total += got.len();
        right += got.iter().filter(|o| *o == want).count();
        let an = analysis(phone);
        decided.extend(
            an.iter()
                .filter_map(|a| a["decided_ms"].as_u64())
                .filter(|&ms| ms > 0),
        );
        let heard: Vec<&serde_json::Value> = calls
            .iter()
            .filter(|c| c["phone"] == phone)
            .map(|c| &c["announcement"])
            .collect();
        report.push(format!(
            "{persona}: stored {got:?}, analysis {an:?}, announcement heard {heard:?}"
        ));
        assert_eq!(
            got.len(),
            attempts,
            "{persona}: attempts per the retry table\n{}",
            report.join("\n")
        );
    }
    let report = report.join("\n");
    decided.sort_unstable();
    eprintln!(
        "live AMD: {right}/{total} outcomes right; first decision p50 {} ms, p95 {} ms over {} answered calls\n{report}",
        percentile(&decided, 0.5),
        percentile(&decided, 0.95),
        decided.len()
    );
    for (phone, persona, want, _) in people {
        assert!(
            stored(phone).iter().all(|o| o == want),
            "{persona}: every attempt stored as {want}\n{report}"
        );
    }
    // The announcements were told apart, not just called dead.
    let kind = |phone: &str| {
        analysis(phone)[0]["announcement"]
            .as_str()
            .map(String::from)
    };
    assert_eq!(kind("+12125550202").as_deref(), Some("vacant"), "{report}");
    assert_eq!(
        kind("+12125550203").as_deref(),
        Some("suspended"),
        "{report}"
    );
    // ... the 停机 one by its recording, within seconds of answer, each time.
    for a in analysis("+12125550203") {
        assert_eq!(a["reason"], "fingerprint", "{report}");
        assert!(
            a["final_ms"].as_u64().is_some_and(|ms| ms <= 3000),
            "{report}"
        );
    }
    // The voicemail box heard the script's message after its beep, each time.
    for a in analysis("+12125550201") {
        assert_eq!(a["verdict"], "machine", "{report}");
        assert_eq!(a["message_left"], true, "{report}");
        assert!(a["beep_end_ms"].as_u64().is_some(), "{report}");
    }
    let logs = sim.logs();
    let vm: Vec<_> = logs
        .iter()
        .filter(|l| l.persona == Persona::Voicemail)
        .collect();
    // The bot hung up after its message (the box did not give up waiting for one).
    assert!(
        vm.iter()
            .all(|l| l.callee_hangup.is_none() && l.bot_speech_s >= 2.0),
        "{vm:?}"
    );
    // The person was not taken for a machine.
    let human = analysis("+12125550205");
    assert!(
        human
            .iter()
            .all(|a| a["verdict"] != "machine" && a["verdict"] != "announcement"),
        "{report}"
    );
    sim.shutdown().await;
}
