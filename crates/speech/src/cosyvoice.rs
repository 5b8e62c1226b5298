//! CosyVoice (FunAudioLLM/CosyVoice) over its FastAPI server,
//! `runtime/python/fastapi/server.py`: one endpoint per inference mode, form
//! fields in, raw 16-bit little-endian PCM at the model's sample rate out,
//! streamed as the model produces it (`StreamingResponse` with no media type,
//! so usually no Content-Type at all). The server does not say its rate:
//! 22050 Hz for the CosyVoice-300M family (SFT, Instruct), 24000 Hz for
//! CosyVoice2 and Fun-CosyVoice3, so the rate is configuration.
//!
//! | mode        | endpoint               | fields                                        | models      |
//! |-------------|------------------------|-----------------------------------------------|-------------|
//! | `sft`       | `/inference_sft`       | `tts_text`, `spk_id`                          | 300M-SFT    |
//! | `instruct`  | `/inference_instruct`  | `tts_text`, `spk_id`, `instruct_text`         | 300M-Instruct |
//! | `zero-shot` | `/inference_zero_shot` | `tts_text`, `prompt_text`, file `prompt_wav`  | 2, 3        |
//! | `instruct2` | `/inference_instruct2` | `tts_text`, `instruct_text`, file `prompt_wav`| 2, 3        |
//!
//! Styles: the instruct modes speak the style's [`Mood`] as an instruction
//! ("用开心、热情的语气…<|endofprompt|>"), as the model's own control; `sft`
//! and `zero-shot` have no style control in this API and speak every style
//! the same (the cache still keys by style, so nothing is mixed up).
use std::path::PathBuf;

use waihu_audio::script::Lang;
use waihu_audio::style::Style;
use waihu_audio::wav::Pcm;

use crate::remote_tts::{
    client, parse_endpoint, stream_audio, AudioRequest, Mood, RemoteTimeouts, SampleFormat,
};
use crate::tts::{PcmPieces, TtsEngine, TtsError};

const ENGINE: &str = "CosyVoice";

/// Which of the server's inference endpoints to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CosyVoiceMode {
    /// `/inference_sft`: a built-in speaker of an SFT model (`--voice 中文女`).
    #[default]
    Sft,
    /// `/inference_instruct`: a built-in speaker plus a style instruction.
    Instruct,
    /// `/inference_zero_shot`: the voice of a prompt recording and its transcript.
    ZeroShot,
    /// `/inference_instruct2`: the voice of a prompt recording plus a style instruction.
    Instruct2,
}

impl CosyVoiceMode {
    pub fn path(self) -> &'static str {
        match self {
            CosyVoiceMode::Sft => "inference_sft",
            CosyVoiceMode::Instruct => "inference_instruct",
            CosyVoiceMode::ZeroShot => "inference_zero_shot",
            CosyVoiceMode::Instruct2 => "inference_instruct2",
        }
    }

    /// The rate of the models that serve this mode (see the module docs).
    pub fn default_rate(self) -> u32 {
        match self {
            CosyVoiceMode::Sft | CosyVoiceMode::Instruct => 22050,
            CosyVoiceMode::ZeroShot | CosyVoiceMode::Instruct2 => 24000,
        }
    }

    fn uses_speaker(self) -> bool {
        matches!(self, CosyVoiceMode::Sft | CosyVoiceMode::Instruct)
    }

    fn instructed(self) -> bool {
        matches!(self, CosyVoiceMode::Instruct | CosyVoiceMode::Instruct2)
    }
}

/// How to reach and drive a CosyVoice server.
#[derive(Debug, Clone, PartialEq)]
pub struct CosyVoiceConfig {
    /// Server root, e.g. `http://10.0.0.5:50000`.
    pub endpoint: String,
    pub mode: CosyVoiceMode,
    /// `spk_id` for `sft` and `instruct` (e.g. `中文女`, `英文男`).
    pub voice: String,
    /// The voice recording for `zero-shot` and `instruct2` (WAV, the server
    /// resamples it to 16 kHz).
    pub prompt_wav: Option<PathBuf>,
    /// What is said in `prompt_wav` (`zero-shot`).
    pub prompt_text: Option<String>,
    /// The model's output rate; `None` takes [`CosyVoiceMode::default_rate`].
    pub sample_rate: Option<u32>,
    /// Put before every instruction: Fun-CosyVoice3 wants
    /// `You are a helpful assistant. `, the older models nothing.
    pub instruct_prefix: String,
    pub timeouts: RemoteTimeouts,
}

impl CosyVoiceConfig {
    pub fn new(endpoint: &str) -> Self {
        CosyVoiceConfig {
            endpoint: endpoint.to_string(),
            mode: CosyVoiceMode::Sft,
            voice: "中文女".to_string(),
            prompt_wav: None,
            prompt_text: None,
            sample_rate: None,
            instruct_prefix: String::new(),
            timeouts: RemoteTimeouts::default(),
        }
    }
}

/// The instruction for a mood, in Mandarin (the models follow Mandarin and
/// English instructions alike), ending with the models' prompt terminator.
pub fn instruct_text(prefix: &str, mood: Mood) -> String {
    let body = match mood {
        Mood::Neutral => "用自然、平稳的语气说这句话",
        Mood::Happy => "用开心、热情的语气，语速稍快地说这句话",
        Mood::Urgent => "用急切、严肃的语气，语速较快地说这句话",
        Mood::Apologetic => "用抱歉、诚恳的语气，语速稍慢地说这句话",
        Mood::Calm => "用平静、温和的语气，语速较慢地说这句话",
    };
    format!("{prefix}{body}<|endofprompt|>")
}

/// A CosyVoice FastAPI server as a [`TtsEngine`].
pub struct CosyVoiceTts {
    cfg: CosyVoiceConfig,
    url: String,
    rate: u32,
    prompt_wav: Vec<u8>,
    client: reqwest::Client,
    id: String,
}

fn config_error(url: &str, m: String) -> TtsError {
    crate::remote_tts::config_error(ENGINE, url, m)
}

impl CosyVoiceTts {
    /// Checks the configuration and reads the prompt recording; connects
    /// only when it first speaks.
    pub fn new(cfg: CosyVoiceConfig) -> Result<Self, TtsError> {
        let base = parse_endpoint(ENGINE, &cfg.endpoint)?;
        let url = format!(
            "{}/{}",
            base.as_str().trim_end_matches('/'),
            cfg.mode.path()
        );
        let rate = cfg.sample_rate.unwrap_or(cfg.mode.default_rate());
        if !(8000..=48000).contains(&rate) {
            return Err(config_error(
                &url,
                format!("sample rate {rate} Hz is outside 8000..=48000"),
            ));
        }
        if cfg.mode.uses_speaker() && cfg.voice.trim().is_empty() {
            return Err(config_error(
                &url,
                "this mode needs a speaker id (--voice, e.g. 中文女)".to_string(),
            ));
        }
        let prompt_wav = if cfg.mode.uses_speaker() {
            Vec::new()
        } else {
            let path = cfg.prompt_wav.as_ref().ok_or_else(|| {
                config_error(
                    &url,
                    "this mode needs a prompt recording (--prompt-wav FILE.wav)".to_string(),
                )
            })?;
            std::fs::read(path).map_err(|e| {
                config_error(&url, format!("cannot read prompt {}: {e}", path.display()))
            })?
        };
        if cfg.mode == CosyVoiceMode::ZeroShot
            && cfg
                .prompt_text
                .as_deref()
                .is_none_or(|t| t.trim().is_empty())
        {
            return Err(config_error(
                &url,
                "zero-shot needs the prompt's transcript (--prompt-text)".to_string(),
            ));
        }
        let client = client(&cfg.timeouts).map_err(|m| config_error(&url, m))?;
        let voice = if cfg.mode.uses_speaker() {
            cfg.voice.clone()
        } else {
            use sha2::Digest;
            let h = sha2::Sha256::digest(&prompt_wav);
            let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "prompt {hex} {}",
                cfg.prompt_text.as_deref().unwrap_or_default()
            )
        };
        let id = format!(
            "cosyvoice {url} {voice} {rate} Hz {}",
            cfg.instruct_prefix.trim()
        );
        Ok(CosyVoiceTts {
            cfg,
            url,
            rate,
            prompt_wav,
            client,
            id,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    fn request(&self, text: &str, style: &Style) -> reqwest::RequestBuilder {
        let mode = self.cfg.mode;
        let instruct = instruct_text(&self.cfg.instruct_prefix, Mood::of(style));
        let req = self.client.post(&self.url);
        match mode {
            CosyVoiceMode::Sft => {
                req.form(&[("tts_text", text), ("spk_id", self.cfg.voice.as_str())])
            }
            CosyVoiceMode::Instruct => req.form(&[
                ("tts_text", text),
                ("spk_id", self.cfg.voice.as_str()),
                ("instruct_text", instruct.as_str()),
            ]),
            CosyVoiceMode::ZeroShot | CosyVoiceMode::Instruct2 => {
                let mut form = reqwest::multipart::Form::new().text("tts_text", text.to_string());
                form = if mode.instructed() {
                    form.text("instruct_text", instruct)
                } else {
                    form.text(
                        "prompt_text",
                        self.cfg.prompt_text.clone().unwrap_or_default(),
                    )
                };
                // As the project's client.py sends it.
                let part = reqwest::multipart::Part::bytes(self.prompt_wav.clone())
                    .file_name("prompt_wav")
                    .mime_str("application/octet-stream")
                    .unwrap_or_else(|_| reqwest::multipart::Part::bytes(self.prompt_wav.clone()));
                req.multipart(form.part("prompt_wav", part))
            }
        }
    }
}

impl TtsEngine for CosyVoiceTts {
    fn id(&self) -> &str {
        &self.id
    }

    fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError> {
        let rate = self.rate;
        let pieces = self.synthesize_stream(text, lang, style)?;
        let mut samples = Vec::new();
        for p in pieces {
            samples.extend_from_slice(&p?.samples);
        }
        Ok(Pcm { rate, samples })
    }

    fn synthesize_stream(
        &self,
        text: &str,
        _lang: Lang,
        style: &Style,
    ) -> Result<PcmPieces, TtsError> {
        let audio = stream_audio(AudioRequest {
            engine: ENGINE,
            url: self.url.clone(),
            request: self.request(text, style),
            format: SampleFormat::S16Le,
            rate: self.rate,
            timeouts: self.cfg.timeouts,
            accept: crate::remote_tts::is_audio,
        })?;
        Ok(Box::new(audio))
    }
}
