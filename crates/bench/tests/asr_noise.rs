//! `waihu bench asr-noise` at its smallest, as CI runs it: four utterances per
//! language spoken by the neural voices, clean and at 10 dB SNR through the
//! line model, decoded by every installed model that knows the language,
//! greedy and with a beam of 3, with and without the vocabulary prompt. The
//! full set and the faster-whisper baseline are the on-demand bench's.
//!
//! Needs the speech models and voices (scripts/setup.sh).
#[test]
fn every_setup_is_scored_on_the_same_clips() {
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(waihu_testkit::models_dir(), home.path().join("models")).unwrap();
    let json = home.path().join("rows.json");
    let args = waihu_bench::asr_noise::Args {
        limit: Some(4),
        lang: vec!["zh".into(), "en".into()],
        snr: vec!["clean".into(), "10".into()],
        beams: vec![1, 3],
        models: vec!["whisper-tiny.en".into(), "whisper-base".into()],
        compare_vocab: true,
        no_baseline: true,
        verbose: true,
        json: Some(json.clone()),
    };
    waihu_bench::asr_noise::run(home.path(), &args).unwrap();
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // zh: base only (tiny.en is English-only); en: both. 3 setups × 2 conditions each.
    assert_eq!(rows.len(), (1 + 2) * 3 * 2, "{rows:#?}");
    for r in &rows {
        assert_eq!(r["n"], 4, "{r}");
        assert!(r["units"].as_u64().unwrap() > 0, "{r}");
        assert!(r["fw_error_rate"].is_null());
    }
    // On clean speech every setup reads most of it: measured 0.05–0.09 per row on
    // this subset, once 0.46 (Piper samples noise, so each fresh synthesis differs,
    // and one utterance of four can loop). A broken beam, prompt or scoring reads
    // every utterance as noise (≥ 0.8).
    let clean: Vec<f64> = rows
        .iter()
        .filter(|r| r["condition"] == "clean")
        .map(|r| r["error_rate"].as_f64().unwrap())
        .collect();
    assert!(clean.iter().all(|&e| e <= 0.8), "{clean:?}");
    let mean = clean.iter().sum::<f64>() / clean.len() as f64;
    assert!(mean <= 0.3, "mean clean error {mean:.2}: {clean:?}");
    // The same audio went to each setup of a language: the rows' unit counts agree.
    for lang in ["zh", "en"] {
        let units: Vec<u64> = rows
            .iter()
            .filter(|r| r["lang"] == lang && r["condition"] == "clean")
            .map(|r| r["units"].as_u64().unwrap())
            .collect();
        assert!(units.windows(2).all(|w| w[0] == w[1]), "{lang}: {units:?}");
    }
}
