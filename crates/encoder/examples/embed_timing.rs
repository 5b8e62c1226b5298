//! `cargo run --release -p waihu-encoder --example embed_timing -- N`: embeds a
//! sentence N times (run under `time` to see CPU time per utterance).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let enc = waihu_encoder::Encoder::load(&waihu_encoder::default_model_path())?;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            enc.embed("我想把预约改到下周五上午可以吗", waihu_encoder::Kind::Query),
        );
    }
    eprintln!(
        "{:.2} ms wall per utterance",
        t.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64
    );
    Ok(())
}
