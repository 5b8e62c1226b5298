//! Speech: TTS and ASR traits, espeak-ng TTS, embedded Whisper ASR, remote ASR adapters, VAD and endpointing.
