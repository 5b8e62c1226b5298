//! Text to speech: the engine trait, the espeak-ng engine, and the
//! synthesiser that splits a prompt, styles it, resamples it to the call's
//! rate and hands it out as 20 ms frames, one sentence at a time.
//!
//! Licence decision: waihu is Apache-2.0. libespeak-ng is GPL-3.0+, and
//! linking it would make the `waihu` binary GPL. So the espeak-ng engine runs
//! the `espeak-ng` *program* as a separate process (`--stdout` WAV) and never
//! links the library. The cost is one process start per sentence (~5-20 ms),
//! paid once per sentence and hidden by streaming and the cache.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::cache::{CacheKey, TtsCache};
use waihu_audio::resample::{resample_i16, Resampler};
use waihu_audio::script::{chunks, Chunk, Lang, LangChoice};
use waihu_audio::style::{espeak_params, Style};
use waihu_audio::wav::{parse_wav, Pcm, WavError};

/// Frame length of all audio handed to the media path.
pub const FRAME_MS: u32 = 20;

/// 20 ms of mono 16-bit PCM. The last frame of a prompt is padded with silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcmFrame {
    pub rate: u32,
    pub samples: Vec<i16>,
}

pub fn frame_len(rate: u32) -> usize {
    (rate * FRAME_MS / 1000) as usize
}

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error(
        "无法启动 {program} / cannot run {program}: {err} (install it: apt-get install espeak-ng)"
    )]
    Spawn {
        program: String,
        err: std::io::Error,
    },
    #[error("{program} 失败 / {program} failed ({status}) on {text:?}: {stderr}")]
    Failed {
        program: String,
        status: String,
        text: String,
        stderr: String,
    },
    #[error("{program} 输出无效 / {program} wrote invalid audio: {err}")]
    Audio { program: String, err: WavError },
    #[error(transparent)]
    Style(#[from] waihu_audio::style::StyleError),
    #[error("不支持的采样率 / unsupported output rate {0} Hz (8000 or 16000)")]
    Rate(u32),
    #[error("语音缓存错误 / TTS cache error: {0}")]
    Cache(String),
    #[error(transparent)]
    Piper(#[from] crate::piper::PiperError),
    #[error(transparent)]
    ZhVoice(#[from] crate::zhvoice::ZhVoiceError),
    #[error(transparent)]
    Remote(#[from] crate::remote_tts::RemoteError),
    #[error("{engine} 采样率在句中改变 / sample rate changed mid-sentence ({from} Hz to {to} Hz)")]
    RateChanged { engine: String, from: u32, to: u32 },
}

/// Audio of one sentence in pieces at the engine's native rate, handed out
/// as the engine produces them (e.g. as a server's response body arrives).
pub type PcmPieces = Box<dyn Iterator<Item = Result<Pcm, TtsError>> + Send>;

/// A TTS engine: one piece of text in one language and style to audio at
/// the engine's native rate. Splitting, resampling, framing and caching are
/// done by [`Synthesizer`], the same for every engine.
pub trait TtsEngine: Send + Sync {
    /// Identifies the engine, its version and voices; part of every cache key,
    /// so changing it invalidates cached audio.
    fn id(&self) -> &str;
    fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError>;

    /// The same audio in pieces, the first as early as the engine can: the
    /// remote adapters yield each body chunk as it arrives. Engines that make
    /// a sentence in one go keep this default of one piece.
    fn synthesize_stream(
        &self,
        text: &str,
        lang: Lang,
        style: &Style,
    ) -> Result<PcmPieces, TtsError> {
        let pcm = self.synthesize(text, lang, style)?;
        Ok(Box::new(std::iter::once(Ok(pcm))))
    }
}

/// espeak-ng run as a subprocess (see the module docs for why not linked).
#[derive(Debug, Clone)]
pub struct EspeakTts {
    pub program: PathBuf,
    /// `cmn-latn-pinyin`: Debian's `cmn` and `zh` voices read many characters
    /// as pinyin with English tone digits ("nin two hao three"); this one
    /// reads Hanzi (and digits) correctly, and takes Hanzi directly.
    pub zh_voice: String,
    pub en_voice: String,
    id: String,
}

impl Default for EspeakTts {
    fn default() -> Self {
        EspeakTts::new("espeak-ng", "cmn-latn-pinyin", "en-us")
    }
}

impl EspeakTts {
    pub fn new(program: impl Into<PathBuf>, zh_voice: &str, en_voice: &str) -> Self {
        let program = program.into();
        let version = Command::new(&program)
            .arg("--version")
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .nth(3)
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        let id = format!("espeak-ng {version} {zh_voice} {en_voice}");
        EspeakTts {
            program,
            zh_voice: zh_voice.to_string(),
            en_voice: en_voice.to_string(),
            id,
        }
    }

    /// Whether the program runs at all (for tests and `waihu doctor`-style checks).
    pub fn available(&self) -> bool {
        Command::new(&self.program)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl TtsEngine for EspeakTts {
    fn id(&self) -> &str {
        &self.id
    }

    fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError> {
        let p = espeak_params(style);
        let voice = match lang {
            Lang::Zh => &self.zh_voice,
            Lang::En => &self.en_voice,
        };
        let program = self.program.display().to_string();
        let mut cmd = Command::new(&self.program);
        cmd.args([
            "-b",
            "1",
            "--stdout",
            "-v",
            voice,
            "-s",
            &p.wpm.to_string(),
            "-p",
            &p.pitch.to_string(),
        ]);
        // Text goes through stdin, never argv: prompt text may start with `-`.
        let input = if (style.range - 1.0).abs() > 1e-3 {
            // The CLI has no pitch-range flag; SSML prosody carries it.
            cmd.arg("-m");
            let pct = ((style.range - 1.0) * 100.0).round() as i32;
            format!(
                "<speak><prosody range=\"{pct:+}%\">{}</prosody></speak>",
                xml_escape(text)
            )
        } else {
            // A leading `<` would otherwise still be taken for markup by some voices.
            text.to_string()
        };
        cmd.arg("--stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|err| TtsError::Spawn {
            program: program.clone(),
            err,
        })?;
        let out = feed_and_wait(child, input.as_bytes()).map_err(|err| TtsError::Spawn {
            program: program.clone(),
            err,
        })?;
        if !out.status.success() {
            return Err(TtsError::Failed {
                program,
                status: out.status.to_string(),
                text: text.chars().take(80).collect(),
                stderr: String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .chars()
                    .take(400)
                    .collect(),
            });
        }
        parse_wav(&out.stdout).map_err(|err| TtsError::Audio { program, err })
    }
}

/// One engine per language: e.g. the neural Piper voice for English and
/// espeak-ng for Mandarin. Its id names both, so changing either
/// invalidates cached audio.
pub struct ByLang {
    zh: Arc<dyn TtsEngine>,
    en: Arc<dyn TtsEngine>,
    id: String,
}

impl ByLang {
    pub fn new(zh: Arc<dyn TtsEngine>, en: Arc<dyn TtsEngine>) -> Self {
        let id = format!("zh: {} / en: {}", zh.id(), en.id());
        ByLang { zh, en, id }
    }
}

impl TtsEngine for ByLang {
    fn id(&self) -> &str {
        &self.id
    }

    fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError> {
        match lang {
            Lang::Zh => self.zh.synthesize(text, lang, style),
            Lang::En => self.en.synthesize(text, lang, style),
        }
    }

    fn synthesize_stream(
        &self,
        text: &str,
        lang: Lang,
        style: &Style,
    ) -> Result<PcmPieces, TtsError> {
        match lang {
            Lang::Zh => self.zh.synthesize_stream(text, lang, style),
            Lang::En => self.en.synthesize_stream(text, lang, style),
        }
    }
}

/// Everything a prompt needs besides its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Voice {
    pub style: Style,
    pub lang: LangChoice,
    /// Output rate: 8000 (G.711 calls) or 16000 (wideband).
    pub rate: u32,
}

/// Splits, synthesises, resamples, caches and frames prompts for any engine.
#[derive(Clone)]
pub struct Synthesizer {
    engine: Arc<dyn TtsEngine>,
    cache: Option<Arc<TtsCache>>,
}

impl Synthesizer {
    pub fn new(engine: Arc<dyn TtsEngine>) -> Self {
        Synthesizer {
            engine,
            cache: None,
        }
    }

    pub fn with_cache(mut self, cache: Arc<TtsCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub fn cache(&self) -> Option<&Arc<TtsCache>> {
        self.cache.as_ref()
    }

    /// A lazy stream of 20 ms frames: each sentence is synthesised only when
    /// the frames before it have been taken, so the first frame is ready after
    /// the first sentence, not the whole prompt. Drive it from a blocking
    /// thread (it runs a subprocess per uncached sentence).
    pub fn stream(&self, text: &str, voice: Voice) -> Result<FrameStream, TtsError> {
        if voice.rate != 8000 && voice.rate != 16000 {
            return Err(TtsError::Rate(voice.rate));
        }
        let mut pending = chunks(text, voice.lang);
        pending.reverse();
        Ok(FrameStream {
            synth: self.clone(),
            voice,
            pending,
            active: None,
            buf: Vec::new(),
            pos: 0,
            done: false,
        })
    }

    /// The whole prompt as one signal at `voice.rate` (frames concatenated).
    pub fn synthesize_all(&self, text: &str, voice: Voice) -> Result<Vec<i16>, TtsError> {
        let mut out = Vec::new();
        for f in self.stream(text, voice)? {
            out.extend_from_slice(&f?.samples);
        }
        Ok(out)
    }

    /// Audio of one chunk at the output rate, from the cache when possible.
    pub fn chunk_audio(&self, chunk: &Chunk, voice: &Voice) -> Result<Arc<[i16]>, TtsError> {
        let key = CacheKey::new(self.engine.id(), chunk, &voice.style, voice.rate);
        if let Some(cache) = &self.cache {
            if let Some(hit) = cache.get(&key) {
                return Ok(hit);
            }
        }
        let pcm = self
            .engine
            .synthesize(&chunk.text, chunk.lang, &voice.style)?;
        let audio: Arc<[i16]> = resample_i16(&pcm.samples, pcm.rate, voice.rate).into();
        if let Some(cache) = &self.cache {
            cache.put(&key, audio.clone()).map_err(TtsError::Cache)?;
        }
        Ok(audio)
    }
}

/// Frames of one prompt, produced sentence by sentence. See [`Synthesizer::stream`].
pub struct FrameStream {
    synth: Synthesizer,
    voice: Voice,
    /// Chunks still to synthesise, last first.
    pending: Vec<Chunk>,
    /// The sentence whose audio is arriving.
    active: Option<Arriving>,
    buf: Vec<i16>,
    pos: usize,
    done: bool,
}

/// One uncached sentence's audio, resampled piece by piece as the engine
/// yields it, and kept whole for the cache.
struct Arriving {
    pieces: PcmPieces,
    resampler: Option<(u32, Resampler)>,
    whole: Vec<i16>,
    key: CacheKey,
}

fn to_i16(v: Vec<f32>) -> impl Iterator<Item = i16> {
    v.into_iter()
        .map(|x| x.round().clamp(-32768.0, 32767.0) as i16)
}

impl FrameStream {
    /// Chunks not yet synthesised.
    pub fn remaining_chunks(&self) -> usize {
        self.pending.len()
    }

    fn push_audio(&mut self, audio: &[i16]) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(audio);
    }

    /// Takes the next piece of the arriving sentence into `buf`; at its end,
    /// flushes the resampler and caches the sentence.
    fn pull_piece(&mut self) -> Result<(), TtsError> {
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        let rate = self.voice.rate;
        let mut out = Vec::new();
        match a.pieces.next() {
            Some(Ok(pcm)) => {
                let (from, r) = a
                    .resampler
                    .get_or_insert_with(|| (pcm.rate, Resampler::new(pcm.rate, rate)));
                if *from != pcm.rate {
                    return Err(TtsError::RateChanged {
                        engine: self.synth.engine.id().to_string(),
                        from: *from,
                        to: pcm.rate,
                    });
                }
                if r.is_identity() {
                    out = pcm.samples;
                } else {
                    let input: Vec<f32> = pcm.samples.iter().map(|&v| v as f32).collect();
                    out.extend(to_i16(r.process(&input)));
                }
                a.whole.extend_from_slice(&out);
            }
            Some(Err(e)) => return Err(e),
            None => {
                if let Some((_, r)) = a.resampler.as_mut() {
                    out.extend(to_i16(r.flush()));
                }
                let Some(mut a) = self.active.take() else {
                    return Ok(());
                };
                a.whole.extend_from_slice(&out);
                if let Some(cache) = &self.synth.cache {
                    cache.put(&a.key, a.whole.into()).map_err(TtsError::Cache)?;
                }
            }
        }
        self.push_audio(&out);
        Ok(())
    }
}

impl Iterator for FrameStream {
    type Item = Result<PcmFrame, TtsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let n = frame_len(self.voice.rate);
        loop {
            if self.buf.len() - self.pos >= n {
                let samples = self.buf[self.pos..self.pos + n].to_vec();
                self.pos += n;
                return Some(Ok(PcmFrame {
                    rate: self.voice.rate,
                    samples,
                }));
            }
            if self.done {
                return None;
            }
            if self.active.is_some() {
                if let Err(e) = self.pull_piece() {
                    self.done = true;
                    self.active = None;
                    return Some(Err(e));
                }
                continue;
            }
            match self.pending.pop() {
                Some(chunk) => {
                    let engine = &self.synth.engine;
                    let key =
                        CacheKey::new(engine.id(), &chunk, &self.voice.style, self.voice.rate);
                    if let Some(hit) = self.synth.cache.as_ref().and_then(|c| c.get(&key)) {
                        self.push_audio(&hit);
                        continue;
                    }
                    match engine.synthesize_stream(&chunk.text, chunk.lang, &self.voice.style) {
                        Ok(pieces) => {
                            self.active = Some(Arriving {
                                pieces,
                                resampler: None,
                                whole: Vec::new(),
                                key,
                            })
                        }
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                None => {
                    self.done = true;
                    if self.buf.len() > self.pos {
                        let mut samples = self.buf[self.pos..].to_vec();
                        samples.resize(n, 0);
                        self.pos = self.buf.len();
                        return Some(Ok(PcmFrame {
                            rate: self.voice.rate,
                            samples,
                        }));
                    }
                    return None;
                }
            }
        }
    }
}

/// Writes `input` to a spawned program's stdin and waits for its output. The
/// input is written from a second thread so a long text cannot deadlock against
/// a full stdout pipe.
pub(crate) fn feed_and_wait(
    mut child: std::process::Child,
    input: &[u8],
) -> std::io::Result<std::process::Output> {
    let mut stdin = child.stdin.take();
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(mut w) = stdin.take() {
                let _ = w.write_all(input);
            }
        });
        child.wait_with_output()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use waihu_audio::goertzel::goertzel_power;
    use waihu_audio::style::StyleBook;

    /// A stand-in engine: a tone per character, so tests of framing and
    /// caching do not depend on espeak-ng and can count engine calls.
    struct ToneEngine {
        calls: AtomicUsize,
    }

    impl TtsEngine for ToneEngine {
        fn id(&self) -> &str {
            "tone"
        }
        fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let f = if lang == Lang::Zh { 500.0 } else { 1000.0 } * style.pitch;
            let n = text.chars().count() * 2205; // 100 ms per character at 22050 Hz
            let samples = (0..n)
                .map(|i| {
                    (8000.0 * (2.0 * std::f32::consts::PI * f * i as f32 / 22050.0).sin()) as i16
                })
                .collect();
            Ok(Pcm {
                rate: 22050,
                samples,
            })
        }
    }

    fn voice(rate: u32) -> Voice {
        Voice {
            style: Style::NEUTRAL,
            lang: LangChoice::Auto,
            rate,
        }
    }

    #[test]
    fn frames_are_20ms_and_cover_the_prompt() {
        let eng = Arc::new(ToneEngine {
            calls: AtomicUsize::new(0),
        });
        let s = Synthesizer::new(eng.clone());
        let frames: Vec<PcmFrame> = s
            .stream("你好。ok", voice(8000))
            .unwrap()
            .map(|f| f.unwrap())
            .collect();
        assert!(frames
            .iter()
            .all(|f| f.samples.len() == 160 && f.rate == 8000));
        // 3 + 2 characters = 500 ms = 25 frames.
        assert_eq!(frames.len(), 25);
        assert_eq!(eng.calls.load(Ordering::SeqCst), 2);
        // The Mandarin part carries 500 Hz, the English part 1000 Hz.
        let zh: Vec<f32> = frames[2].samples.iter().map(|&v| v as f32).collect();
        assert!(goertzel_power(&zh, 8000, 500.0) > 100.0 * goertzel_power(&zh, 8000, 1000.0));
        let en: Vec<f32> = frames[20].samples.iter().map(|&v| v as f32).collect();
        assert!(goertzel_power(&en, 8000, 1000.0) > 100.0 * goertzel_power(&en, 8000, 500.0));
    }

    #[test]
    fn stream_is_lazy_per_sentence() {
        let eng = Arc::new(ToneEngine {
            calls: AtomicUsize::new(0),
        });
        let s = Synthesizer::new(eng.clone());
        let mut st = s.stream("第一句。第二句。第三句。", voice(16000)).unwrap();
        assert!(st.next().unwrap().is_ok());
        assert_eq!(eng.calls.load(Ordering::SeqCst), 1);
        assert_eq!(st.remaining_chunks(), 2);
    }

    #[test]
    fn cache_hits_skip_the_engine() {
        let eng = Arc::new(ToneEngine {
            calls: AtomicUsize::new(0),
        });
        let cache = Arc::new(TtsCache::in_memory(1 << 20));
        let s = Synthesizer::new(eng.clone()).with_cache(cache.clone());
        let a = s
            .synthesize_all("您好。请问是王先生吗？", voice(8000))
            .unwrap();
        assert_eq!(eng.calls.load(Ordering::SeqCst), 2);
        // Same static first sentence, different second: one engine call.
        let b = s
            .synthesize_all("您好。请问是李女士吗？", voice(8000))
            .unwrap();
        assert_eq!(eng.calls.load(Ordering::SeqCst), 3);
        assert_eq!(a[..1600], b[..1600]);
        // A different style or rate is a different entry.
        let happy = Voice {
            style: StyleBook::default().get("happy").unwrap(),
            ..voice(8000)
        };
        s.synthesize_all("您好。", happy).unwrap();
        s.synthesize_all("您好。", voice(16000)).unwrap();
        assert_eq!(eng.calls.load(Ordering::SeqCst), 5);
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn rejects_unsupported_rates() {
        let s = Synthesizer::new(Arc::new(ToneEngine {
            calls: AtomicUsize::new(0),
        }));
        assert!(matches!(
            s.stream("hi", voice(11025)),
            Err(TtsError::Rate(11025))
        ));
    }
}
