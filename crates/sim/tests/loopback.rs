//! The simulator over real SIP/RTP on loopback: a real UAC (the engine's
//! `place_call_with`, with a small scripted bot as its agent) calls virtual
//! callees of each telephony behaviour and a conversing one, all at once on
//! one simulator, and checks what goes over the wire.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waihu_core::CallOutcome;
use waihu_engine::agent::{CallAgent, Control};
use waihu_engine::call::{place_call_with, CallOptions, CallReport, Progress};
use waihu_engine::sip::SipEndpoint;
use waihu_sim::agent::{frame_rms, FRAME};
use waihu_sim::{
    callee_synthesizer, Decision, Persona, Population, SimCallLog, SimHandle, SimOptions, SimServer,
};
use waihu_speech::{EspeakTts, Lang, LangChoice, Style, Synthesizer, TtsCache, Voice};

const VOICED: f32 = 300.0;

/// What the test bot heard, frame by frame (20 ms each, from the answer).
#[derive(Debug, Default, Clone)]
struct Heard {
    voiced: Vec<bool>,
    /// Energy at 1 kHz relative to the frame's energy (Goertzel), per frame.
    tone: Vec<f32>,
    /// Frame index where each of our prompts started and ended.
    prompts: Vec<(usize, usize)>,
}

/// A minimal bot: plays its prompts one after the other, each after the callee
/// has answered the previous one (speech, then 700 ms of silence) or after a
/// timeout, and hangs up `hang_after` frames after the last prompt unless the
/// callee hangs up first. Prompts never stop for barge-in.
struct TestBot {
    prompts: Vec<Arc<[i16]>>,
    next: usize,
    playing: Option<(Arc<[i16]>, usize)>,
    frame: usize,
    /// Callee speech since the last prompt ended: (first voiced, last voiced).
    reply: Option<(usize, usize)>,
    prompt_end: usize,
    hang_after: usize,
    wait_reply: usize,
    heard: Arc<Mutex<Heard>>,
}

impl TestBot {
    fn new(prompts: Vec<Arc<[i16]>>, hang_after: usize, heard: Arc<Mutex<Heard>>) -> TestBot {
        TestBot {
            prompts,
            next: 0,
            playing: None,
            frame: 0,
            reply: None,
            prompt_end: 0,
            hang_after,
            wait_reply: 400,
            heard,
        }
    }
}

fn tone_ratio(frame: &[i16], hz: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * hz / 8000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    let mut energy = 0.0f32;
    for &x in frame {
        let x = x as f32;
        let s = x + c * s1 - s2;
        s2 = s1;
        s1 = s;
        energy += x * x;
    }
    let p = s1 * s1 + s2 * s2 - c * s1 * s2;
    if energy <= 0.0 {
        0.0
    } else {
        2.0 * p / (frame.len() as f32 * energy)
    }
}

impl CallAgent for TestBot {
    fn on_frame(&mut self, _now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        let f = self.frame;
        self.frame += 1;
        let voiced = frame_rms(heard) >= VOICED;
        if let Ok(mut h) = self.heard.lock() {
            h.voiced.push(voiced);
            h.tone.push(tone_ratio(heard, 1000.0));
        }
        if let Some((audio, pos)) = self.playing.take() {
            let end = (pos + FRAME).min(audio.len());
            say[..end - pos].copy_from_slice(&audio[pos..end]);
            if end < audio.len() {
                self.playing = Some((audio, end));
            } else {
                self.prompt_end = f;
                self.reply = None;
                if let Ok(mut h) = self.heard.lock() {
                    if let Some(p) = h.prompts.last_mut() {
                        p.1 = f;
                    }
                }
            }
            return Control::Continue;
        }
        if voiced {
            let r = self.reply.get_or_insert((f, f));
            r.1 = f;
        }
        let replied = self.reply.is_some_and(|(_, last)| f - last >= 35);
        let first = self.next == 0;
        if self.next < self.prompts.len()
            && (first || replied || f - self.prompt_end >= self.wait_reply)
        {
            let p = self.prompts[self.next].clone();
            self.next += 1;
            if let Ok(mut h) = self.heard.lock() {
                h.prompts.push((f, f));
            }
            self.playing = Some((p, 0));
            return Control::Continue;
        }
        if self.next >= self.prompts.len() && f - self.prompt_end >= self.hang_after {
            return Control::Hangup("test bot done".into());
        }
        Control::Continue
    }
}

fn bot_synth() -> Synthesizer {
    Synthesizer::new(Arc::new(EspeakTts::default()))
}

fn say(synth: &Synthesizer, text: &str) -> Arc<[i16]> {
    let v = Voice {
        style: Style::NEUTRAL,
        lang: LangChoice::En,
        rate: 8000,
    };
    synth.synthesize_all(text, v).expect("espeak-ng").into()
}

async fn call(
    ep: &SipEndpoint,
    sim: &SimHandle,
    number: &str,
    ring_timeout: Duration,
    bot: TestBot,
) -> (CallReport, Vec<Progress>) {
    let mut opts = CallOptions::new(format!("sip:{number}@{}", sim.addr));
    opts.ring_timeout = ring_timeout;
    opts.media.max_duration = Duration::from_secs(45);
    let mut progress = Vec::new();
    let report = place_call_with(ep, opts, Box::new(bot), &mut |p| progress.push(p.clone()))
        .await
        .expect("call placed");
    (report, progress)
}

fn log_for(logs: &[SimCallLog], number: &str) -> SimCallLog {
    logs.iter()
        .find(|l| l.to == number)
        .cloned()
        .unwrap_or_else(|| panic!("no simulator log for {number}: {logs:#?}"))
}

/// Runs of voiced frames: (start, end exclusive).
fn runs(v: &[bool], from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &x) in v.iter().enumerate().take(to.min(v.len())).skip(from) {
        match (x, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, to.min(v.len())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_callees_over_loopback_sip() {
    assert!(
        EspeakTts::default().available(),
        "espeak-ng is required (apt-get install espeak-ng)"
    );
    let numbers = [
        ("+15550000001", Persona::Busy),
        ("+15550000002", Persona::PoweredOff),
        ("+15550000003", Persona::NoAnswer),
        ("+15550000004", Persona::Voicemail),
        ("+15550000005", Persona::Cooperative),
        ("+15550000006", Persona::Interrupter),
    ];
    // Anything else dialled would be a cooperative callee that always picks up.
    let pop = Population::new(11)
        .always_answer()
        .with_fixed(Persona::Cooperative)
        .with_map(numbers);
    let mut opts = SimOptions::new(Lang::En);
    opts.ring = (Duration::from_millis(200), Duration::from_millis(400));
    opts.voicemail_ring = (Duration::from_millis(200), Duration::from_millis(400));
    let cache = Arc::new(TtsCache::in_memory(64 << 20));
    let sim = SimServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        pop,
        callee_synthesizer(Some(cache)),
        opts,
    )
    .await
    .expect("simulator starts");
    assert!(sim.prepare.lines >= 40, "{:?}", sim.prepare);
    assert_eq!(
        sim.truth("+15550000005").business.as_deref(),
        Some("confirmed")
    );

    let synth = bot_synth();
    let short = [
        "Hello, is this Mr. Smith?",
        "Your address is 100 Main Street. Is that correct?",
        "Will someone be home tomorrow morning?",
        "Shall I text you a coupon?",
        "Thank you, goodbye.",
    ];
    let prompts: Vec<Arc<[i16]>> = short.iter().map(|t| say(&synth, t)).collect();
    let long = say(
        &synth,
        "Hello, this is BestBuy Online calling about your order of an air purifier, order number D D 2026. May I take one minute to confirm the delivery details with you today?",
    );
    let ep = SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), "bot", None)
        .await
        .expect("UAC endpoint");
    let ep = &ep;
    let sim_ref = &sim;

    let h_coop = Arc::new(Mutex::new(Heard::default()));
    let h_int = Arc::new(Mutex::new(Heard::default()));
    let h_vm = Arc::new(Mutex::new(Heard::default()));
    let t0 = Instant::now();
    let (busy, off, noans, vm, coop, int) = tokio::join!(
        call(
            ep,
            sim_ref,
            numbers[0].0,
            Duration::from_secs(10),
            TestBot::new(vec![], 50, Default::default())
        ),
        call(
            ep,
            sim_ref,
            numbers[1].0,
            Duration::from_secs(20),
            TestBot::new(vec![], 50, Default::default())
        ),
        call(
            ep,
            sim_ref,
            numbers[2].0,
            Duration::from_millis(1500),
            TestBot::new(vec![], 50, Default::default())
        ),
        // Voicemail: the bot says nothing and hangs up 8 s after answer.
        call(
            ep,
            sim_ref,
            numbers[3].0,
            Duration::from_secs(10),
            TestBot::new(vec![], 400, h_vm.clone())
        ),
        // Cooperative: four questions and a goodbye; then the bot stays silent
        // until the callee hangs up (the bot would give up after 12 s).
        call(
            ep,
            sim_ref,
            numbers[4].0,
            Duration::from_secs(10),
            TestBot::new(prompts.clone(), 600, h_coop.clone())
        ),
        // Interrupter: one long prompt that does not stop when talked over.
        call(
            ep,
            sim_ref,
            numbers[5].0,
            Duration::from_secs(10),
            TestBot::new(vec![long.clone()], 150, h_int.clone())
        ),
    );
    let elapsed = t0.elapsed();
    let logs = sim.wait_for_logs(6, Duration::from_secs(5)).await;
    assert_eq!(logs.len(), 6, "{logs:#?}");

    // Busy: 486 without answer.
    let (r, _) = busy;
    assert_eq!(r.outcome, CallOutcome::Busy, "{r:?}");
    assert_eq!(r.sip_status, Some(486));
    assert_eq!(log_for(&logs, numbers[0].0).decision, Decision::Busy);

    // Powered off: the carrier announcement arrives as early media, then 480.
    let (r, progress) = off;
    assert!(r.setup_ms.is_none(), "never answered: {r:?}");
    assert!(progress.contains(&Progress::EarlyMedia), "{progress:?}");
    assert!(r.early_media && r.early_audio_s >= 2.0, "{r:?}");
    assert_eq!(r.sip_status, Some(480), "{r:?}");
    let l = log_for(&logs, numbers[1].0);
    assert_eq!(l.decision, Decision::PoweredOff);
    assert_eq!(l.expected_outcome, CallOutcome::PoweredOff);

    // No answer: rings until our 1.5 s ring timeout cancels.
    let (r, progress) = noans;
    assert_eq!(r.outcome, CallOutcome::NoAnswer, "{r:?}");
    assert!(progress.contains(&Progress::Ringing));
    assert!(r.reason.contains("ring timeout"), "{r:?}");
    assert_eq!(log_for(&logs, numbers[2].0).decision, Decision::NoAnswer);

    // Voicemail: answered; a spoken greeting, then the 1 kHz beep.
    let (r, _) = vm;
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
    let h = h_vm.lock().unwrap().clone();
    let speech = runs(&h.voiced, 0, h.voiced.len());
    let beep_frames: Vec<usize> = (0..h.tone.len())
        .filter(|&i| h.voiced[i] && h.tone[i] > 0.8)
        .collect();
    assert!(
        beep_frames.len() >= 20,
        "beep frames: {}",
        beep_frames.len()
    );
    let first_beep = beep_frames[0];
    let greeting_voiced = h.voiced[..first_beep].iter().filter(|&&v| v).count();
    assert!(
        greeting_voiced >= 100,
        "greeting voiced frames: {greeting_voiced}, runs {speech:?}"
    );
    // Speech is not a pure tone.
    let tonal_speech = (0..first_beep)
        .filter(|&i| h.voiced[i] && h.tone[i] > 0.8)
        .count();
    assert!(tonal_speech * 10 < greeting_voiced, "{tonal_speech}");
    let l = log_for(&logs, numbers[3].0);
    assert_eq!(l.decision, Decision::Voicemail);
    assert_eq!(l.expected_outcome, CallOutcome::Voicemail);

    // Cooperative: a reply within ~1 s of each prompt's end, speech-like, and
    // it hangs up by itself once its lines are said and we are silent.
    let (r, progress) = coop;
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
    let h = h_coop.lock().unwrap().clone();
    assert_eq!(h.prompts.len(), 5, "{:?}", h.prompts);
    for (k, &(start, end)) in h.prompts.iter().enumerate().take(4) {
        // Nothing from the callee while we talk.
        let over = h.voiced[start..end].iter().filter(|&&v| v).count();
        assert!(
            over <= 2,
            "prompt {k}: callee voiced {over} frames over the prompt"
        );
        let next = h.prompts.get(k + 1).map_or(h.voiced.len(), |p| p.0);
        let replies = runs(&h.voiced, end, next);
        let first = replies
            .first()
            .unwrap_or_else(|| panic!("prompt {k}: no reply"));
        let delay_ms = (first.0 - end) * 20;
        eprintln!("prompt {k}: reply {delay_ms} ms after the prompt's last sample");
        assert!(
            (500..=1600).contains(&delay_ms),
            "prompt {k}: reply after {delay_ms} ms"
        );
        let voiced: usize = replies.iter().map(|(a, b)| b - a).sum();
        let span = replies.last().unwrap().1 - first.0;
        // espeak speech: ≥ 0.6 s voiced, with pauses between words (not a tone).
        assert!(voiced >= 30, "prompt {k}: {voiced} voiced frames");
        assert!(replies.len() >= 2 || span < 60, "prompt {k}: {replies:?}");
    }
    assert!(
        progress.contains(&Progress::PeerHungUp),
        "the callee hangs up after its lines: {progress:?} {r:?}"
    );
    // After the goodbye: the last line once more (a person answering a prompt
    // they did not expect), then 3 s of silence and it hangs up.
    let last_end = h.prompts[4].1;
    let hung_s = h.voiced.len().saturating_sub(last_end) as f64 * 0.02;
    assert!(hung_s < 9.0, "hung up {hung_s} s after the goodbye");
    let l = log_for(&logs, numbers[4].0);
    assert_eq!(l.lines_said.len(), 5, "{l:#?}");
    assert_eq!(l.lines_said[3], l.lines_said[4], "{l:#?}");
    assert_eq!(l.bot_prompts_heard, 5, "{l:#?}");
    assert!(l.callee_hangup.is_some(), "{l:#?}");
    assert_eq!(l.expected_business.as_deref(), Some("confirmed"));

    // Interrupter: talks while the prompt is still playing, about a second in.
    let (r, _) = int;
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
    let h = h_int.lock().unwrap().clone();
    let (start, end) = h.prompts[0];
    assert!(end - start > 200, "long prompt: {} frames", end - start);
    let barge = runs(&h.voiced, start, end);
    let first = barge
        .first()
        .expect("the interrupter spoke during the prompt");
    let into_ms = (first.0 - start) * 20;
    assert!(
        (800..=1800).contains(&into_ms),
        "barged in {into_ms} ms into the prompt"
    );
    let l = log_for(&logs, numbers[5].0);
    assert!(l.barge_ins >= 1, "{l:#?}");

    eprintln!(
        "prepared {} lines in {:.2} s; six concurrent calls took {:.1} s",
        sim.prepare.lines,
        sim.prepare.seconds,
        elapsed.as_secs_f64()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_limit_are_refused_with_503() {
    let pop = Population::new(5).with_fixed(Persona::Busy);
    let mut opts = SimOptions::new(Lang::En);
    opts.max_concurrent = 1;
    opts.busy_after = (Duration::from_millis(1500), Duration::from_millis(1500));
    // A campaign's virtual clock stamps the logs (and would drive the answer draw).
    use chrono::TimeZone;
    let virtual_now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 15, 0, 0)
        .unwrap();
    opts.clock = Arc::new(move || virtual_now);
    let sim = SimServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        pop,
        callee_synthesizer(Some(Arc::new(TtsCache::in_memory(64 << 20)))),
        opts,
    )
    .await
    .expect("simulator starts");
    let ep = SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), "bot", None)
        .await
        .expect("UAC endpoint");
    let first = call(
        &ep,
        &sim,
        "+15550000101",
        Duration::from_secs(5),
        TestBot::new(vec![], 50, Default::default()),
    );
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        call(
            &ep,
            &sim,
            "+15550000102",
            Duration::from_secs(5),
            TestBot::new(vec![], 50, Default::default()),
        )
        .await
    };
    let ((a, _), (b, _)) = tokio::join!(first, second);
    assert_eq!(a.outcome, CallOutcome::Busy, "{a:?}");
    assert_eq!(b.sip_status, Some(503), "{b:?}");
    assert_eq!(b.outcome, CallOutcome::Congestion);
    let logs = sim.wait_for_logs(2, Duration::from_secs(3)).await;
    let l = log_for(&logs, "+15550000102");
    assert_eq!(l.decision, Decision::Overloaded);
    assert_eq!(l.expected_outcome, CallOutcome::Congestion);
    assert_eq!(log_for(&logs, "+15550000101").decision, Decision::Busy);
    assert!(logs
        .iter()
        .all(|l| l.started == virtual_now && l.ended == virtual_now));
}
