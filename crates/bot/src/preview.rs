//! Prompt previews (试听): a state's prompt as a callee would hear it — its
//! variants rendered with the caller's values (the script's examples for the
//! rest), spoken in the state's style by the bot's voice at the phone's 8 kHz.
//! The console plays them beside the script editor; nothing here dials.
use std::collections::BTreeMap;

use base64::Engine as _;
use waihu_dialog::{Language, Program};
use waihu_speech::Voice;
pub use waihu_speech::{StyleBook, Synthesizer};

/// The rate previews are spoken at: what a G.711 call carries.
pub const PREVIEW_RATE: u32 = 8000;

/// Why a state's prompt cannot be previewed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreviewError {
    #[error("no state '{0}' in the script / 话术中没有这个状态 (states: {1})")]
    NoSuchState(String, String),
    #[error("state '{0}' is a router: it says nothing / 路由状态没有话术")]
    Router(String),
    #[error("style '{style}' of state '{state}': {message}")]
    Style {
        state: String,
        style: String,
        message: String,
    },
    #[error("synthesis failed / 语音合成失败: {0}")]
    Tts(String),
}

/// One prompt variant of a state, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptText {
    pub variant: String,
    pub text: String,
}

/// A state's prompt variants rendered with `vars` (by name; missing customer
/// variables take the script's examples, optional ones their defaults, and
/// entities heard during a call are left out, as the bot says them when none
/// was heard), and the style they are spoken in.
pub fn state_prompts(
    prog: &Program,
    state: &str,
    vars: &BTreeMap<String, String>,
) -> Result<(String, Vec<PromptText>), PreviewError> {
    let st = prog
        .states
        .iter()
        .find(|s| s.name == state)
        .ok_or_else(|| {
            let names: Vec<&str> = prog.states.iter().map(|s| s.name.as_str()).collect();
            PreviewError::NoSuchState(state.to_string(), names.join(", "))
        })?;
    if st.is_router() {
        return Err(PreviewError::Router(state.to_string()));
    }
    let mut values: Vec<Option<&str>> = vec![None; prog.vars.len()];
    for (slot, _, example) in prog.required.iter().chain(&prog.optional) {
        if let Some(v) = values.get_mut(*slot) {
            *v = Some(example.as_str());
        }
    }
    for (name, value) in vars {
        if let Some(v) = prog.slot(name).and_then(|s| values.get_mut(s)) {
            *v = Some(value.as_str());
        }
    }
    let prompts = st
        .variants
        .iter()
        .map(|v| PromptText {
            variant: v.id.clone(),
            text: v
                .text
                .render(|slot| values.get(slot).copied().flatten())
                .trim()
                .to_string(),
        })
        .collect();
    let style = st.style.clone().unwrap_or_else(|| prog.style.clone());
    Ok((style, prompts))
}

/// Speaks `text` in `style` (a name in `styles`) at [`PREVIEW_RATE`].
pub fn speak(
    synth: &Synthesizer,
    styles: &StyleBook,
    lang: Language,
    state: &str,
    style: &str,
    text: &str,
) -> Result<Vec<i16>, PreviewError> {
    let st = styles.get(style).map_err(|e| PreviewError::Style {
        state: state.to_string(),
        style: style.to_string(),
        message: e.to_string(),
    })?;
    let voice = Voice {
        style: st,
        lang: crate::lang_choice(lang),
        rate: PREVIEW_RATE,
    };
    synth
        .synthesize_all(text, voice)
        .map_err(|e| PreviewError::Tts(e.to_string()))
}

/// 16-bit mono WAV as a `data:audio/wav;base64,` URL (what an `<audio>` element plays).
pub fn wav_data_url(rate: u32, samples: &[i16]) -> Result<String, PreviewError> {
    let wav = waihu_audio::wav::wav_bytes(rate, samples)
        .map_err(|e| PreviewError::Tts(format!("encoding WAV: {e}")))?;
    Ok(format!(
        "data:audio/wav;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(wav)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"
name: preview
language: zh
style: neutral
variables:
  name: 王先生
optional:
  shop: 优选商城
states:
  opening:
    style: happy
    variants:
      - id: a
        say: "{{name}}您好，我是{{shop}}的客服。"
      - id: b
        say: "您好{{name}}，这里是{{shop}}。"
    expect:
      intents: [affirm, deny]
    on:
      - intent: affirm
        goto: route
      - intent: deny
        goto: done
  route:
    on:
      - goto: done
  done:
    style: calm
    enter:
      - outcome: confirmed
    say: "好的，再见。"
    end: confirmed
"#;

    #[test]
    fn prompts_render_with_examples_and_given_values() {
        let prog = match waihu_dialog::load_str(SCRIPT, "preview.yaml") {
            Ok(p) => p,
            // The fixture must follow the script format; say where it does not.
            Err(e) => panic!("{e:?}"),
        };
        let none = BTreeMap::new();
        let (style, p) = state_prompts(&prog, "opening", &none).unwrap();
        assert_eq!(style, "happy");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].text, "王先生您好，我是优选商城的客服。");
        let vars = BTreeMap::from([("name".to_string(), "李女士".to_string())]);
        let (_, p) = state_prompts(&prog, "opening", &vars).unwrap();
        assert_eq!(p[1].variant, "b");
        assert_eq!(p[1].text, "您好李女士，这里是优选商城。");
        let (style, p) = state_prompts(&prog, "done", &none).unwrap();
        assert_eq!(
            (style.as_str(), p[0].text.as_str()),
            ("calm", "好的，再见。")
        );
        assert_eq!(
            state_prompts(&prog, "route", &none).unwrap_err(),
            PreviewError::Router("route".into())
        );
        // The data URL holds a WAV the audio crate reads back.
        let url = wav_data_url(8000, &[0, 1000, -1000, 32767]).unwrap();
        let b64 = url.strip_prefix("data:audio/wav;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let pcm = waihu_audio::wav::parse_wav(&bytes).unwrap();
        assert_eq!((pcm.rate, pcm.samples), (8000, vec![0, 1000, -1000, 32767]));
        assert!(matches!(
            state_prompts(&prog, "nowhere", &none),
            Err(PreviewError::NoSuchState(s, names)) if s == "nowhere" && names.contains("opening")
        ));
    }
}
