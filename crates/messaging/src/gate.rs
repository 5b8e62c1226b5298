//! The message gate over the store's outbox: [`decide`] (sans-IO, in
//! `waihu_campaign::message_gate`, where the simulator uses it too) applied to each message
//! right before it is claimed for sending; each admitted message is logged as
//! `message_submitted` for the independent checker.
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use waihu_store::{OutMessage, Store, StoreError};

pub use waihu_campaign::message_gate::*;

/// The gate over the store's outbox, with the rules of each campaign read once from the
/// campaign file the store keeps.
pub struct Gate {
    /// Rules for messages that belong to no campaign.
    no_campaign: MessageRules,
    by_campaign: HashMap<i64, MessageRules>,
}

impl Gate {
    pub fn new(no_campaign: MessageRules) -> Gate {
        Gate {
            no_campaign,
            by_campaign: HashMap::new(),
        }
    }

    async fn rules(&mut self, store: &Store, m: &OutMessage) -> Result<MessageRules, StoreError> {
        let Some(c) = m.campaign else {
            return Ok(self.no_campaign.clone());
        };
        if let Some(r) = self.by_campaign.get(&c.0) {
            return Ok(r.clone());
        }
        let r = match store.campaign_get(c).await? {
            Some(row) => match MessageRules::from_campaign_yaml(&row.name, &row.spec) {
                Ok(r) => r,
                Err(e) => {
                    // The campaign loader validated the file; a spec that no longer reads
                    // gets the defaults, which are the strictest common rules.
                    tracing::warn!(%e, "campaign message rules unreadable: defaults apply");
                    MessageRules::default()
                }
            },
            None => MessageRules::default(),
        };
        self.by_campaign.insert(c.0, r.clone());
        Ok(r)
    }

    /// Decides for one due message and acts on it: claims it (logging `message_submitted`)
    /// and returns true, or defers or suppresses it and returns false.
    pub async fn admit(
        &mut self,
        store: &Store,
        m: &OutMessage,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let rules = self.rules(store, m).await?;
        let tz: Tz =
            m.tz.as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or(rules.timezone);
        let earlier = store
            .message_claims_to(&m.phone_idx, now - Duration::days(8), m.id)
            .await?;
        match decide(&rules, tz, now, m.created_at, &earlier) {
            Decision::Send => {
                let local = now.with_timezone(&tz).to_rfc3339();
                store.message_claim_gated(m, tz.name(), &local, now).await
            }
            Decision::Defer { until, reason } => {
                tracing::info!(message = m.id, %until, %reason, "message deferred");
                store
                    .message_defer(m.id, until, &format!("deferred: {reason}"))
                    .await?;
                Ok(false)
            }
            Decision::Suppress { reason } => {
                tracing::info!(message = m.id, %reason, "message suppressed");
                store.message_suppress(m.id, &reason, now).await?;
                Ok(false)
            }
        }
    }
}
