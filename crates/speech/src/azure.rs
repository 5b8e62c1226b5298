//! Azure AI Speech text to speech over its REST API:
//! `POST https://{region}.tts.speech.microsoft.com/cognitiveservices/v1`
//! with an SSML body (`Content-Type: application/ssml+xml`), the resource key
//! in `Ocp-Apim-Subscription-Key`, the audio format in
//! `X-Microsoft-OutputFormat` and a `User-Agent`; the 200 response body is
//! the audio, sent chunked as it is synthesised. Raw formats only (no WAV or
//! MP3 container to parse): 16-bit PCM at 8/16/24/48 kHz or 8 kHz μ-law.
//!
//! Styles go to the voice's own controls: `<prosody rate pitch range>` as
//! relative percentages from the style's numbers, and
//! `<mstts:express-as style=...>` from its [`Mood`] (a voice that lacks the
//! style speaks its default style, as the service documents).
use waihu_audio::script::Lang;
use waihu_audio::style::Style;
use waihu_audio::wav::Pcm;

use crate::remote_tts::{
    client, parse_endpoint, stream_audio, AudioRequest, Mood, RemoteTimeouts, SampleFormat,
};
use crate::tts::{PcmPieces, TtsEngine, TtsError};

const ENGINE: &str = "Azure";
/// Environment variable holding the key unless configured otherwise.
pub const DEFAULT_KEY_ENV: &str = "AZURE_SPEECH_KEY";

/// `X-Microsoft-OutputFormat` values this adapter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AzureFormat {
    Pcm8k,
    #[default]
    Pcm16k,
    Pcm24k,
    Pcm48k,
    /// 8 kHz μ-law: half the bytes of 8 kHz PCM, what a G.711 call carries anyway.
    Ulaw8k,
}

impl AzureFormat {
    pub fn header(self) -> &'static str {
        match self {
            AzureFormat::Pcm8k => "raw-8khz-16bit-mono-pcm",
            AzureFormat::Pcm16k => "raw-16khz-16bit-mono-pcm",
            AzureFormat::Pcm24k => "raw-24khz-16bit-mono-pcm",
            AzureFormat::Pcm48k => "raw-48khz-16bit-mono-pcm",
            AzureFormat::Ulaw8k => "raw-8khz-8bit-mono-mulaw",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AzureFormat::Pcm8k,
            AzureFormat::Pcm16k,
            AzureFormat::Pcm24k,
            AzureFormat::Pcm48k,
            AzureFormat::Ulaw8k,
        ]
        .into_iter()
        .find(|f| f.header() == s)
    }

    pub fn rate(self) -> u32 {
        match self {
            AzureFormat::Pcm8k | AzureFormat::Ulaw8k => 8000,
            AzureFormat::Pcm16k => 16000,
            AzureFormat::Pcm24k => 24000,
            AzureFormat::Pcm48k => 48000,
        }
    }

    pub fn sample_format(self) -> SampleFormat {
        match self {
            AzureFormat::Ulaw8k => SampleFormat::Ulaw,
            _ => SampleFormat::S16Le,
        }
    }
}

/// How to reach Azure and which voices speak.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureConfig {
    /// e.g. `eastasia`; gives `https://{region}.tts.speech.microsoft.com/cognitiveservices/v1`.
    pub region: Option<String>,
    /// The full synthesis URL instead of a region (sovereign clouds, a
    /// private endpoint, a test server).
    pub endpoint: Option<String>,
    pub zh_voice: String,
    pub en_voice: String,
    /// The environment variable holding the resource key: keys are never
    /// written in configuration or on command lines.
    pub key_env: String,
    pub format: AzureFormat,
    pub timeouts: RemoteTimeouts,
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            region: None,
            endpoint: None,
            zh_voice: "zh-CN-XiaoxiaoNeural".to_string(),
            en_voice: "en-US-JennyNeural".to_string(),
            key_env: DEFAULT_KEY_ENV.to_string(),
            format: AzureFormat::default(),
            timeouts: RemoteTimeouts::default(),
        }
    }
}

/// A voice name as Azure spells them (`zh-CN-XiaoxiaoNeural`,
/// `zh-CN-Xiaoxiao:DragonHDFlashLatestNeural`, custom voice names): letters,
/// digits and `-_:.`, at most 100 characters. Anything else could not be a
/// voice and would have to be escaped into the SSML.
pub fn valid_voice_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

/// Text as XML character data and attribute value: the five markup
/// characters escaped, and characters XML 1.0 forbids dropped.
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `express-as` style for a mood, or none for neutral.
pub fn express_style(mood: Mood, lang: Lang) -> Option<&'static str> {
    match mood {
        Mood::Neutral => None,
        Mood::Happy => Some("cheerful"),
        Mood::Urgent => Some("serious"),
        Mood::Apologetic => Some(match lang {
            Lang::Zh => "sorry",
            Lang::En => "empathetic",
        }),
        Mood::Calm => Some("calm"),
    }
}

fn percent(x: f32) -> String {
    format!("{:+}%", ((x - 1.0) * 100.0).round() as i32)
}

/// The request body: one voice, the style's prosody, the mood's
/// `express-as`, and the text escaped. `voice` must pass [`valid_voice_name`].
pub fn build_ssml(voice: &str, lang: Lang, style: &Style, text: &str) -> String {
    let locale = voice_locale(voice).unwrap_or(match lang {
        Lang::Zh => "zh-CN",
        Lang::En => "en-US",
    });
    let mut prosody = format!(
        "<prosody rate=\"{}\" pitch=\"{}\"",
        percent(style.speed),
        percent(style.pitch)
    );
    if (style.range - 1.0).abs() > 1e-3 {
        prosody.push_str(&format!(" range=\"{}\"", percent(style.range)));
    }
    prosody.push('>');
    let inner = format!("{prosody}{}</prosody>", xml_text(text));
    let inner = match express_style(Mood::of(style), lang) {
        Some(s) => format!("<mstts:express-as style=\"{s}\">{inner}</mstts:express-as>"),
        None => inner,
    };
    format!(
        "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" \
         xmlns:mstts=\"https://www.w3.org/2001/mstts\" xml:lang=\"{locale}\">\
         <voice name=\"{}\">{inner}</voice></speak>",
        xml_text(voice)
    )
}

/// `zh-CN` from `zh-CN-XiaoxiaoNeural`.
fn voice_locale(voice: &str) -> Option<&str> {
    let mut parts = voice.splitn(3, '-');
    let (l, r) = (parts.next()?, parts.next()?);
    parts.next()?;
    let ok = (2..=3).contains(&l.len())
        && l.chars().all(|c| c.is_ascii_lowercase())
        && (2..=4).contains(&r.len())
        && r.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then(|| &voice[..l.len() + 1 + r.len()])
}

/// Azure text to speech as a [`TtsEngine`].
pub struct AzureTts {
    cfg: AzureConfig,
    url: String,
    key: String,
    client: reqwest::Client,
    id: String,
}

fn config_error(url: &str, m: String) -> TtsError {
    crate::remote_tts::config_error(ENGINE, url, m)
}

impl AzureTts {
    /// Checks the configuration and reads the key from `cfg.key_env`.
    pub fn new(cfg: AzureConfig) -> Result<Self, TtsError> {
        let url = match (&cfg.endpoint, &cfg.region) {
            (Some(e), _) => e.clone(),
            (None, Some(r)) => {
                if r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(config_error(
                        r,
                        format!("region {r:?} is not a region name like eastasia"),
                    ));
                }
                format!("https://{r}.tts.speech.microsoft.com/cognitiveservices/v1")
            }
            (None, None) => {
                return Err(config_error(
                    "",
                    "needs a region (--region eastasia) or an endpoint URL".to_string(),
                ))
            }
        };
        let url = parse_endpoint(ENGINE, &url)?.to_string();
        for v in [&cfg.zh_voice, &cfg.en_voice] {
            if !valid_voice_name(v) {
                return Err(config_error(
                    &url,
                    format!("{v:?} is not a voice name (like zh-CN-XiaoxiaoNeural)"),
                ));
            }
        }
        let key = std::env::var(&cfg.key_env)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                config_error(
                    &url,
                    format!(
                        "no key: set the environment variable {} to the Speech resource key",
                        cfg.key_env
                    ),
                )
            })?;
        if !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(config_error(
                &url,
                format!(
                    "the key in {} has characters a key cannot have",
                    cfg.key_env
                ),
            ));
        }
        let client = client(&cfg.timeouts).map_err(|m| config_error(&url, m))?;
        let id = format!(
            "azure {url} {} {} {}",
            cfg.zh_voice,
            cfg.en_voice,
            cfg.format.header()
        );
        Ok(AzureTts {
            cfg,
            url,
            key,
            client,
            id,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl TtsEngine for AzureTts {
    fn id(&self) -> &str {
        &self.id
    }

    fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError> {
        let rate = self.cfg.format.rate();
        let mut samples = Vec::new();
        for p in self.synthesize_stream(text, lang, style)? {
            samples.extend_from_slice(&p?.samples);
        }
        Ok(Pcm { rate, samples })
    }

    fn synthesize_stream(
        &self,
        text: &str,
        lang: Lang,
        style: &Style,
    ) -> Result<PcmPieces, TtsError> {
        let voice = match lang {
            Lang::Zh => &self.cfg.zh_voice,
            Lang::En => &self.cfg.en_voice,
        };
        let request = self
            .client
            .post(&self.url)
            .header("Ocp-Apim-Subscription-Key", &self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/ssml+xml")
            .header("X-Microsoft-OutputFormat", self.cfg.format.header())
            .header(
                reqwest::header::USER_AGENT,
                concat!("waihu/", env!("CARGO_PKG_VERSION")),
            )
            .body(build_ssml(voice, lang, style, text));
        let audio = stream_audio(AudioRequest {
            engine: ENGINE,
            url: self.url.clone(),
            request,
            format: self.cfg.format.sample_format(),
            rate: self.cfg.format.rate(),
            timeouts: self.cfg.timeouts,
            accept: crate::remote_tts::is_audio,
        })?;
        Ok(Box::new(audio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_names_and_locales() {
        assert!(valid_voice_name("zh-CN-XiaoxiaoNeural"));
        assert!(valid_voice_name("zh-CN-Xiaoxiao:DragonHDFlashLatestNeural"));
        assert!(!valid_voice_name("zh-CN-Xiao\"xiao"));
        assert!(!valid_voice_name(""));
        assert_eq!(voice_locale("zh-CN-XiaoxiaoNeural"), Some("zh-CN"));
        assert_eq!(voice_locale("MyCustomVoice"), None);
    }

    #[test]
    fn styles_become_prosody_and_express_as() {
        let happy = Style {
            pitch: 1.2,
            speed: 1.1,
            range: 1.0,
        };
        let s = build_ssml("zh-CN-XiaoxiaoNeural", Lang::Zh, &happy, "您好 <b>&");
        assert!(s.contains("<mstts:express-as style=\"cheerful\">"), "{s}");
        assert!(s.contains("<prosody rate=\"+10%\" pitch=\"+20%\">"), "{s}");
        assert!(s.contains("您好 &lt;b&gt;&amp;"), "{s}");
        let n = build_ssml("en-US-JennyNeural", Lang::En, &Style::NEUTRAL, "hi");
        assert!(!n.contains("express-as"), "{n}");
        assert!(n.contains("xml:lang=\"en-US\""), "{n}");
    }
}
