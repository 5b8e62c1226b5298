//! Voiceprint operations over the store: audio in, a decision (and its
//! event) out. The embeddings go to the store as bytes and come back opened
//! only in memory; nothing here prints or exports them.
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::CustomerId;
use waihu_store::Store;

use crate::decide::{self, Verification};
use crate::encoder::Encoder;
use crate::{Embedding, VoiceprintError};

/// Audio to embed: 16-bit mono PCM at `rate`.
#[derive(Debug, Clone, Copy)]
pub struct Audio<'a> {
    pub samples: &'a [i16],
    pub rate: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    pub customer: i64,
    /// Embeddings the customer's enrolment now holds.
    pub enrolments: i64,
    pub embed_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub customer: i64,
    #[serde(flatten)]
    pub result: Verification,
    pub embed_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchHit {
    pub id: i64,
    pub label: String,
    pub score: f32,
    /// The voice had not been heard on this number before.
    pub new_number: bool,
    /// Different numbers the voice has now been heard on.
    pub numbers: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchCheck {
    /// A watchlisted voice: end the call or hand it to a human.
    pub alert: bool,
    pub hit: Option<WatchHit>,
    pub threshold: f32,
    pub embed_ms: f64,
}

fn embed(enc: &Encoder, audio: Audio) -> Result<(Embedding, f64), VoiceprintError> {
    let t0 = Instant::now();
    let e = enc.embed_pcm(audio.samples, audio.rate)?;
    Ok((e, t0.elapsed().as_secs_f64() * 1000.0))
}

/// Add a recording of the customer (with their consent) to their enrolment.
pub async fn enroll(
    store: &Store,
    enc: &Encoder,
    customer: CustomerId,
    audio: Audio<'_>,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Enrolled, VoiceprintError> {
    let (e, embed_ms) = embed(enc, audio)?;
    let enrolments = store
        .voiceprint_enroll(customer, &e.to_bytes(), source, now)
        .await?;
    Ok(Enrolled {
        customer: customer.0,
        enrolments,
        embed_ms,
    })
}

/// Is this the enrolled customer? Logged as a `voiceprint` event.
pub async fn verify(
    store: &Store,
    enc: &Encoder,
    customer: CustomerId,
    audio: Audio<'_>,
    threshold: f32,
    now: DateTime<Utc>,
) -> Result<Verified, VoiceprintError> {
    let (probe, embed_ms) = embed(enc, audio)?;
    let result = verify_embedding(store, customer, &probe, threshold, now).await?;
    Ok(Verified {
        customer: customer.0,
        result,
        embed_ms,
    })
}

/// [`verify`] of a probe already embedded (a live call embeds once for the
/// verification and the watchlist).
pub async fn verify_embedding(
    store: &Store,
    customer: CustomerId,
    probe: &Embedding,
    threshold: f32,
    now: DateTime<Utc>,
) -> Result<Verification, VoiceprintError> {
    let enrolled: Vec<Embedding> = store
        .voiceprints(customer)
        .await?
        .iter()
        .map(|b| Embedding::from_bytes(b))
        .collect::<Result<_, _>>()?;
    let result = decide::verify(&enrolled, probe, threshold);
    store
        .voiceprint_verified(customer, result.score, result.verdict.as_str(), now)
        .await?;
    Ok(result)
}

/// Flag a voice (a recording of a fraud call), optionally with its number.
pub async fn watch_add(
    store: &Store,
    enc: &Encoder,
    label: &str,
    audio: Audio<'_>,
    e164: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, VoiceprintError> {
    let (e, _) = embed(enc, audio)?;
    Ok(store.watch_add(label, &e.to_bytes(), e164, now).await?)
}

/// Check a caller's voice against the watchlist; a hit is an alert, logged
/// with whether the number is new for that voice.
pub async fn watch_check(
    store: &Store,
    enc: &Encoder,
    audio: Audio<'_>,
    e164: Option<&str>,
    threshold: f32,
    now: DateTime<Utc>,
) -> Result<WatchCheck, VoiceprintError> {
    let (probe, embed_ms) = embed(enc, audio)?;
    let hit = watch_check_embedding(store, &probe, e164, threshold, now).await?;
    Ok(WatchCheck {
        alert: hit.is_some(),
        hit,
        threshold,
        embed_ms,
    })
}

/// [`watch_check`] of a probe already embedded: the hit, if any (logged).
pub async fn watch_check_embedding(
    store: &Store,
    probe: &Embedding,
    e164: Option<&str>,
    threshold: f32,
    now: DateTime<Utc>,
) -> Result<Option<WatchHit>, VoiceprintError> {
    let list = store.watchlist().await?;
    let embeddings: Vec<Embedding> = list
        .iter()
        .map(|w| Embedding::from_bytes(&w.embedding))
        .collect::<Result<_, _>>()?;
    Ok(match decide::watch_match(&embeddings, probe, threshold) {
        None => None,
        Some((i, score)) => {
            let w = &list[i];
            let new_number = store.watch_alert(w.id, &w.label, e164, score, now).await?;
            Some(WatchHit {
                id: w.id,
                label: w.label.clone(),
                score,
                new_number,
                numbers: w.numbers + i64::from(new_number),
            })
        }
    })
}

/// A voice heard on many numbers: see [`crowd_check_embedding`].
#[derive(Debug, Clone, Serialize)]
pub struct Crowd {
    /// Different numbers the voice has been heard on within the window,
    /// this one included.
    pub numbers: usize,
    /// The highest cosine to the voice on another number.
    pub score: f32,
    /// `numbers` reached `min_numbers`: logged as a `crowd_alert`.
    pub alert: bool,
}

/// The voice of a live call against the voices heard on other numbers in
/// the last `days` days (older ones are purged); then remembered itself. One
/// voice answering for `min_numbers` or more numbers is an alert though no
/// operator flagged it.
#[allow(clippy::too_many_arguments)]
pub async fn crowd_check_embedding(
    store: &Store,
    probe: &Embedding,
    e164: &str,
    customer: Option<CustomerId>,
    threshold: f32,
    min_numbers: usize,
    days: i64,
    now: DateTime<Utc>,
) -> Result<Crowd, VoiceprintError> {
    let seen = store
        .voice_sightings(now - chrono::Duration::days(days.max(1)))
        .await?;
    let opened: Vec<(String, Embedding)> = seen
        .into_iter()
        .map(|s| Ok((s.phone_idx, Embedding::from_bytes(&s.embedding)?)))
        .collect::<Result<_, VoiceprintError>>()?;
    let this = store.phone_index(e164);
    let (numbers, score) = decide::crowd(
        opened.iter().map(|(k, e)| (k.as_str(), e)),
        &this,
        probe,
        threshold,
    );
    let alert = min_numbers > 1 && numbers >= min_numbers;
    if alert {
        store
            .voice_crowd_alert(customer, numbers, score, now)
            .await?;
    }
    store
        .voice_sighting_add(customer, e164, &probe.to_bytes(), now)
        .await?;
    Ok(Crowd {
        numbers,
        score,
        alert,
    })
}

/// Erase a customer's voiceprints (the customer asked, or consent ended).
pub async fn erase(
    store: &Store,
    customer: CustomerId,
    now: DateTime<Utc>,
) -> Result<u64, VoiceprintError> {
    Ok(store.voiceprint_erase(customer, now).await?)
}
