//! Voiceprints: sealed speaker embeddings per customer, and the fraud
//! watchlist. The store keeps bytes; `waihu-voiceprint` owns what they mean.
use chrono::{DateTime, Utc};
use waihu_core::{CustomerId, Event, EventKind};

use crate::events::insert_events;
use crate::{ts, Store, StoreError};

const ENROL_TABLE: &str = "voiceprints";
const WATCH_TABLE: &str = "voice_watchlist";
const SIGHT_TABLE: &str = "voice_sightings";
const COLUMN: &str = "embedding";

/// A voice heard on a live call, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// The number's blind index (never the number).
    pub phone_idx: String,
    pub customer: Option<CustomerId>,
    pub embedding: Vec<u8>,
}

/// One watchlisted voice, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEntry {
    pub id: i64,
    pub label: String,
    pub embedding: Vec<u8>,
    /// How many different numbers the voice has been heard on.
    pub numbers: i64,
}

fn event(
    customer: Option<CustomerId>,
    now: DateTime<Utc>,
    action: &str,
    score: Option<f32>,
    detail: Option<String>,
) -> Event {
    Event {
        at: now,
        customer,
        campaign: None,
        call: None,
        kind: EventKind::Voiceprint {
            action: action.into(),
            score,
            detail,
        },
    }
}

impl Store {
    /// Seals `embedding` into row `id` of `table` (inserted with an empty
    /// `embedding_ct`: the row id is part of the sealing context).
    async fn seal_embedding(
        &self,
        tx: &mut sqlx::SqliteConnection,
        table: &'static str,
        id: i64,
        context: &str,
        embedding: &[u8],
    ) -> Result<(), StoreError> {
        let ct = self.vault.seal_bytes(table, COLUMN, context, embedding);
        sqlx::query(&format!("UPDATE {table} SET embedding_ct = ? WHERE id = ?"))
            .bind(ct)
            .bind(id)
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Add one embedding (sealed) to a customer's enrolment; returns how many
    /// the customer now has. Logged as a `voiceprint` event (`enrolled`).
    pub async fn voiceprint_enroll(
        &self,
        customer: CustomerId,
        embedding: &[u8],
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id = ?")
            .bind(customer.0)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::Invalid(format!(
                "没有这个客户 / no customer with id {}",
                customer.0
            )));
        }
        // The row id is part of the sealing context, so insert, then seal.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO voiceprints (customer_id, embedding_ct, source, created_at) VALUES (?, x'', ?, ?) RETURNING id",
        )
        .bind(customer.0)
        .bind(source)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        self.seal_embedding(
            &mut tx,
            ENROL_TABLE,
            id,
            &format!("{}/{id}", customer.0),
            embedding,
        )
        .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM voiceprints WHERE customer_id = ?")
            .bind(customer.0)
            .fetch_one(&mut *tx)
            .await?;
        insert_events(
            &mut tx,
            &self.audit,
            &[event(
                Some(customer),
                now,
                "enrolled",
                None,
                Some(source.into()),
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(n)
    }

    /// A customer's enrolled embeddings, opened (oldest first).
    pub async fn voiceprints(&self, customer: CustomerId) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, embedding_ct FROM voiceprints WHERE customer_id = ? ORDER BY id",
        )
        .bind(customer.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, ct)| {
                Ok(self.vault.open_bytes(
                    ENROL_TABLE,
                    COLUMN,
                    &format!("{}/{id}", customer.0),
                    &ct,
                )?)
            })
            .collect()
    }

    /// Erase a customer's voiceprints; returns how many were removed. Logged
    /// (`erased`) when there were any.
    pub async fn voiceprint_erase(
        &self,
        customer: CustomerId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query("DELETE FROM voiceprints WHERE customer_id = ?")
            .bind(customer.0)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            + sqlx::query("DELETE FROM voice_sightings WHERE customer_id = ?")
                .bind(customer.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n > 0 {
            insert_events(
                &mut tx,
                &self.audit,
                &[event(Some(customer), now, "erased", None, None)],
            )
            .await?;
        }
        self.commit(tx).await?;
        Ok(n)
    }

    /// Record a verification decision (the score and verdict, never the voice).
    pub async fn voiceprint_verified(
        &self,
        customer: CustomerId,
        score: f32,
        verdict: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.append_events(&[event(
            Some(customer),
            now,
            "verified",
            Some(score),
            Some(verdict.into()),
        )])
        .await
    }

    /// The blind index of a normalised number (what sightings and the
    /// watchlist's numbers are keyed by).
    pub fn phone_index(&self, e164: &str) -> String {
        self.vault.blind_index(e164)
    }

    /// Voices heard since `since` (sealed rows opened); rows older than
    /// `since` are deleted first: the retention window.
    pub async fn voice_sightings(&self, since: DateTime<Utc>) -> Result<Vec<Sighting>, StoreError> {
        sqlx::query("DELETE FROM voice_sightings WHERE seen_at < ?")
            .bind(ts(since))
            .execute(&self.pool)
            .await?;
        let rows: Vec<(i64, Option<i64>, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, customer_id, phone_idx, embedding_ct FROM voice_sightings ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, customer, phone_idx, ct)| {
                Ok(Sighting {
                    embedding: self
                        .vault
                        .open_bytes(SIGHT_TABLE, COLUMN, &id.to_string(), &ct)?,
                    phone_idx,
                    customer: customer.map(CustomerId),
                })
            })
            .collect()
    }

    /// Remember a voice heard on `e164` (sealed), for [`Store::voice_sightings`].
    pub async fn voice_sighting_add(
        &self,
        customer: Option<CustomerId>,
        e164: &str,
        embedding: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO voice_sightings (customer_id, phone_idx, embedding_ct, seen_at) VALUES (?, ?, x'', ?) RETURNING id",
        )
        .bind(customer.map(|c| c.0))
        .bind(self.vault.blind_index(e164))
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        self.seal_embedding(&mut tx, SIGHT_TABLE, id, &id.to_string(), embedding)
            .await?;
        self.commit(tx).await
    }

    /// One voice heard on `numbers` different numbers: log a `crowd_alert`.
    pub async fn voice_crowd_alert(
        &self,
        customer: Option<CustomerId>,
        numbers: usize,
        score: f32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.append_events(&[event(
            customer,
            now,
            "crowd_alert",
            Some(score),
            Some(format!("heard on {numbers} numbers")),
        )])
        .await
    }

    /// Put a voice on the watchlist, optionally with the number it was heard
    /// on. Returns the entry's id.
    pub async fn watch_add(
        &self,
        label: &str,
        embedding: &[u8],
        e164: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO voice_watchlist (label, embedding_ct, added_at) VALUES (?, x'', ?) RETURNING id",
        )
        .bind(label)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        self.seal_embedding(&mut tx, WATCH_TABLE, id, &id.to_string(), embedding)
            .await?;
        if let Some(phone) = e164 {
            sqlx::query("INSERT INTO voice_watch_numbers (watch_id, phone_idx, first_seen) VALUES (?, ?, ?)")
                .bind(id)
                .bind(self.vault.blind_index(phone))
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
        }
        insert_events(
            &mut tx,
            &self.audit,
            &[event(None, now, "watch_added", None, Some(label.into()))],
        )
        .await?;
        self.commit(tx).await?;
        Ok(id)
    }

    /// Every watchlisted voice, opened.
    pub async fn watchlist(&self) -> Result<Vec<WatchEntry>, StoreError> {
        let rows: Vec<(i64, String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT w.id, w.label, w.embedding_ct, (SELECT COUNT(*) FROM voice_watch_numbers n WHERE n.watch_id = w.id) FROM voice_watchlist w ORDER BY w.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, label, ct, numbers)| {
                let embedding = self
                    .vault
                    .open_bytes(WATCH_TABLE, COLUMN, &id.to_string(), &ct)?;
                Ok(WatchEntry {
                    id,
                    label,
                    embedding,
                    numbers,
                })
            })
            .collect()
    }

    /// A watchlisted voice was heard on `e164`: remember the number and log a
    /// `watch_alert` event. Returns whether the number is new for this voice.
    pub async fn watch_alert(
        &self,
        watch_id: i64,
        label: &str,
        e164: Option<&str>,
        score: f32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut new_number = false;
        let mut customer = None;
        if let Some(phone) = e164 {
            let idx = self.vault.blind_index(phone);
            new_number = sqlx::query(
                "INSERT INTO voice_watch_numbers (watch_id, phone_idx, first_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(watch_id)
            .bind(&idx)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            customer = sqlx::query_scalar::<_, i64>("SELECT id FROM customers WHERE phone_idx = ?")
                .bind(&idx)
                .fetch_optional(&mut *tx)
                .await?
                .map(CustomerId);
        }
        insert_events(
            &mut tx,
            &self.audit,
            &[event(
                customer,
                now,
                "watch_alert",
                Some(score),
                Some(label.into()),
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(new_number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_privacy::MasterKey;

    async fn store(dir: &std::path::Path) -> Store {
        Store::open_with_key(dir, &MasterKey::from_bytes([7u8; 32]))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn enrolments_are_sealed_erasable_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let now = Utc::now();
        sqlx::query("INSERT INTO customers (id, phone_idx, phone_ct, region, tz, tz_source, attrs, created_at, updated_at) VALUES (1, 'i', x'00', 'CN', 'Asia/Shanghai', 'region', '{}', ?, ?)")
            .bind(ts(now)).bind(ts(now)).execute(&s.pool).await.unwrap();
        let emb = vec![42u8; 1024];
        assert_eq!(
            s.voiceprint_enroll(CustomerId(1), &emb, "call:1", now)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.voiceprint_enroll(CustomerId(1), &emb, "call:2", now)
                .await
                .unwrap(),
            2
        );
        assert!(s
            .voiceprint_enroll(CustomerId(9), &emb, "x", now)
            .await
            .is_err());
        assert_eq!(
            s.voiceprints(CustomerId(1)).await.unwrap(),
            vec![emb.clone(), emb.clone()]
        );
        // Sealed at rest: the bytes are not in the row.
        let ct: Vec<u8> = sqlx::query_scalar("SELECT embedding_ct FROM voiceprints LIMIT 1")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert!(!ct.windows(16).any(|w| w == [42u8; 16]));
        // Moving a sealed embedding to another customer's row fails to open.
        sqlx::query("INSERT INTO customers (id, phone_idx, phone_ct, region, tz, tz_source, attrs, created_at, updated_at) VALUES (2, 'j', x'00', 'CN', 'Asia/Shanghai', 'region', '{}', ?, ?)")
            .bind(ts(now)).bind(ts(now)).execute(&s.pool).await.unwrap();
        sqlx::query("UPDATE voiceprints SET customer_id = 2 WHERE id = 1")
            .execute(&s.pool)
            .await
            .unwrap();
        assert!(s.voiceprints(CustomerId(2)).await.is_err());
        sqlx::query("UPDATE voiceprints SET customer_id = 1 WHERE id = 1")
            .execute(&s.pool)
            .await
            .unwrap();
        assert_eq!(s.voiceprint_erase(CustomerId(1), now).await.unwrap(), 2);
        assert!(s.voiceprints(CustomerId(1)).await.unwrap().is_empty());
        let types: Vec<String> =
            sqlx::query_scalar("SELECT body FROM events WHERE type = 'voiceprint' ORDER BY id")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        assert_eq!(types.len(), 3, "{types:?}");
        assert!(types[2].contains("erased"));
    }

    #[tokio::test]
    async fn a_watched_voice_on_a_new_number_is_new_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let now = Utc::now();
        let id = s
            .watch_add("case-17", &[1u8; 1024], Some("+8613800000001"), now)
            .await
            .unwrap();
        let list = s.watchlist().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].label.as_str(), list[0].numbers), ("case-17", 1));
        assert_eq!(list[0].embedding, vec![1u8; 1024]);
        assert!(!s
            .watch_alert(id, "case-17", Some("+8613800000001"), 0.9, now)
            .await
            .unwrap());
        assert!(s
            .watch_alert(id, "case-17", Some("+8613800000002"), 0.9, now)
            .await
            .unwrap());
        assert!(!s
            .watch_alert(id, "case-17", Some("+8613800000002"), 0.9, now)
            .await
            .unwrap());
        assert_eq!(s.watchlist().await.unwrap()[0].numbers, 2);
    }

    #[tokio::test]
    async fn sightings_are_sealed_kept_for_their_window_and_erased_with_the_customer() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let now = Utc::now();
        sqlx::query("INSERT INTO customers (id, phone_idx, phone_ct, region, tz, tz_source, attrs, created_at, updated_at) VALUES (1, 'i', x'00', 'CN', 'Asia/Shanghai', 'region', '{}', ?, ?)")
            .bind(ts(now)).bind(ts(now)).execute(&s.pool).await.unwrap();
        let old = now - chrono::Duration::days(40);
        s.voice_sighting_add(None, "+8613800000001", &[5u8; 1024], old)
            .await
            .unwrap();
        s.voice_sighting_add(Some(CustomerId(1)), "+8613800000002", &[6u8; 1024], now)
            .await
            .unwrap();
        s.voice_sighting_add(None, "+8613800000003", &[7u8; 1024], now)
            .await
            .unwrap();
        // Sealed at rest, keyed by the number's blind index only.
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT phone_idx, embedding_ct FROM voice_sightings")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        for (idx, ct) in &rows {
            assert!(!idx.contains("13800000"));
            assert!(!ct
                .windows(16)
                .any(|w| w.iter().all(|&b| (5..=7).contains(&b))));
        }
        // The 40-day-old one is past a 30-day window and deleted.
        let seen = s
            .voice_sightings(now - chrono::Duration::days(30))
            .await
            .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].embedding, vec![6u8; 1024]);
        assert_eq!(seen[0].customer, Some(CustomerId(1)));
        assert_eq!(seen[0].phone_idx, s.phone_index("+8613800000002"));
        // Erasing the customer's voiceprints takes their sightings too.
        assert_eq!(s.voiceprint_erase(CustomerId(1), now).await.unwrap(), 1);
        let seen = s.voice_sightings(old).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].embedding, vec![7u8; 1024]);
        s.voice_crowd_alert(None, 3, 0.95, now).await.unwrap();
        let body: String = sqlx::query_scalar(
            "SELECT body FROM events WHERE type = 'voiceprint' ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap();
        assert!(
            body.contains("crowd_alert") && body.contains("3 numbers"),
            "{body}"
        );
    }
}
