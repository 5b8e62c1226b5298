//! Measures the simulator: pre-synthesis time, the callee lines' lengths and
//! longest inner pauses (against a bot's end-of-speech silence), then N
//! concurrent conversations over loopback SIP/RTP against scripted UAC bots,
//! with reply delays and the process's CPU time.
//!
//! cargo run --release -p waihu-sim --example sim_load -- [CALLS] [en|zh]
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waihu_engine::agent::{CallAgent, Control};
use waihu_engine::call::{place_call_with, CallOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_sim::agent::{frame_rms, FRAME};
use waihu_sim::{callee_synthesizer, Persona, Population, SimOptions, SimServer, Voices};
use waihu_speech::{EspeakTts, Lang, LangChoice, Style, Synthesizer, TtsCache, Voice};

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

struct Bot {
    prompts: Vec<Arc<[i16]>>,
    next: usize,
    playing: Option<(Arc<[i16]>, usize)>,
    f: usize,
    prompt_end: usize,
    reply: Option<(usize, usize)>,
    delays: Arc<Mutex<Vec<f64>>>,
}

impl CallAgent for Bot {
    fn on_frame(&mut self, _now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        let f = self.f;
        self.f += 1;
        if let Some((a, pos)) = self.playing.take() {
            let end = (pos + FRAME).min(a.len());
            say[..end - pos].copy_from_slice(&a[pos..end]);
            if end < a.len() {
                self.playing = Some((a, end));
            } else {
                self.prompt_end = f;
                self.reply = None;
            }
            return Control::Continue;
        }
        if frame_rms(heard) >= 300.0 {
            let r = self.reply.get_or_insert_with(|| {
                if let Ok(mut d) = self.delays.lock() {
                    d.push((f - self.prompt_end) as f64 * 0.02);
                }
                (f, f)
            });
            r.1 = f;
        }
        let replied = self.reply.is_some_and(|(_, last)| f - last >= 35);
        if self.next < self.prompts.len()
            && (self.next == 0 || replied || f - self.prompt_end > 500)
        {
            self.playing = Some((self.prompts[self.next].clone(), 0));
            self.next += 1;
            return Control::Continue;
        }
        if self.next >= self.prompts.len() && f - self.prompt_end > 500 {
            return Control::Hangup("bot done".into());
        }
        Control::Continue
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let lang = match args.next().as_deref() {
        Some("zh") => Lang::Zh,
        _ => Lang::En,
    };

    // 1. Lines: pre-synthesis (uncached) and inner pauses.
    let synth = callee_synthesizer(None);
    let t0 = Instant::now();
    let voices = Voices::prepare(&synth, lang).expect("espeak-ng");
    println!(
        "pre-synthesis ({lang:?}): {} lines, {:.1} s of audio, {:.2} s (uncached, 2 threads); wall {:.2} s",
        voices.stats.lines,
        voices.stats.audio_s,
        voices.stats.seconds,
        t0.elapsed().as_secs_f64()
    );
    let mut worst = (0usize, String::new());
    for p in Persona::ALL.into_iter().filter(|p| p.converses()) {
        for seed in 0..8 {
            for l in voices.lines_for(p, seed) {
                let fr: Vec<bool> = l
                    .audio
                    .chunks(FRAME)
                    .map(|c| frame_rms(c) >= 300.0)
                    .collect();
                let first = fr.iter().position(|&v| v).unwrap_or(0);
                let last = fr.iter().rposition(|&v| v).unwrap_or(0);
                let mut run = 0;
                let mut max = 0;
                for &v in &fr[first..=last] {
                    run = if v { 0 } else { run + 1 };
                    max = max.max(run);
                }
                if max > worst.0 {
                    worst = (max, l.text.clone());
                }
            }
        }
    }
    println!(
        "longest pause inside a callee line: {} ms ({:?})",
        worst.0 * 20,
        worst.1
    );

    // 2. N concurrent conversations.
    let pop = Population::new(1)
        .always_answer()
        .with_fixed(Persona::Cooperative);
    let mut opts = SimOptions::new(lang);
    opts.max_concurrent = calls + 8;
    let cache = Arc::new(TtsCache::in_memory(64 << 20));
    let sim = SimServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        pop,
        callee_synthesizer(Some(cache)),
        opts,
    )
    .await
    .expect("sim");
    let bot = Synthesizer::new(Arc::new(EspeakTts::default()));
    let v = Voice {
        style: Style::NEUTRAL,
        lang: LangChoice::Auto,
        rate: 8000,
    };
    let texts: [&str; 4] = match lang {
        Lang::En => [
            "Hello, is this Mr. Smith? May I confirm your delivery?",
            "Your address is 100 Main Street. Is that correct?",
            "Will someone be home tomorrow morning?",
            "Shall I text you a coupon?",
        ],
        Lang::Zh => [
            "您好，请问是张先生吗？现在方便确认一下配送信息吗？",
            "收货地址是世纪大道100号，对吗？",
            "明天上午家里有人收货吗？",
            "给您发一张优惠券好吗？",
        ],
    };
    let prompts: Vec<Arc<[i16]>> = texts
        .iter()
        .map(|t| bot.synthesize_all(t, v).expect("espeak").into())
        .collect();
    let ep = Arc::new(
        SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), "bot", None)
            .await
            .expect("uac"),
    );
    let delays = Arc::new(Mutex::new(Vec::new()));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..calls {
        let ep = ep.clone();
        let agent = Bot {
            prompts: prompts.clone(),
            next: 0,
            playing: None,
            f: 0,
            prompt_end: 0,
            reply: None,
            delays: delays.clone(),
        };
        let mut o = CallOptions::new(format!("sip:+1555{i:07}@{}", sim.addr));
        o.media.max_duration = Duration::from_secs(90);
        tasks.push(tokio::spawn(async move {
            place_call_with(&ep, o, Box::new(agent), &mut |_| {}).await
        }));
    }
    let mut answered = 0;
    for t in tasks {
        if let Ok(Ok(r)) = t.await {
            answered += (r.outcome == waihu_core::CallOutcome::Answered) as usize;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let logs = sim.wait_for_logs(calls, Duration::from_secs(10)).await;
    let lines: usize = logs.iter().map(|l| l.lines_said.len()).sum();
    let mut d = delays.lock().map(|d| d.clone()).unwrap_or_default();
    println!(
        "{calls} concurrent calls: {answered} answered, {} logged, {lines} callee lines said ({:.1}/call); wall {wall:.1} s",
        logs.len(),
        lines as f64 / calls.max(1) as f64,
    );
    println!(
        "reply delay after the bot's last sample: p50 {:.2} s, p95 {:.2} s, max {:.2} s ({} replies)",
        pct(&mut d, 0.5),
        pct(&mut d, 0.95),
        pct(&mut d, 1.0),
        d.len()
    );
    println!(
        "CPU (simulator + UAC bots in this process): {cpu:.1} s over {wall:.1} s = {:.0}% of one core, {:.1} ms per call-second",
        cpu / wall * 100.0,
        cpu * 1000.0 / (calls as f64 * wall)
    );
    sim.shutdown().await;
}
