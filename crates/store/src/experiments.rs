//! Learning experiments: the variant each call's bandit chose and the reward
//! it earned. The bandits restore from these counts when a campaign restarts,
//! and the A/B report reads them.
use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::CampaignId;

use crate::{ts, Store, StoreError};

/// A bandit's choice for one call.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmChoice {
    pub state: String,
    pub segment: String,
    pub variant: String,
    /// `sample`, `explore` or `winner`.
    pub pick: String,
}

/// Observed counts of one variant of one experiment (campaign × script ×
/// state × segment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArmCounts {
    pub campaign: i64,
    pub script: String,
    pub state: String,
    pub segment: String,
    pub variant: String,
    /// Calls dialled with this variant chosen.
    pub chosen: u64,
    /// Calls that reached the state and ended (observations).
    pub trials: u64,
    pub successes: u64,
}

/// campaign, script, state, segment, variant, chosen, trials, successes
type CountRow = (i64, String, String, String, String, i64, i64, i64);

impl Store {
    /// Store the choices made for a call as it is dialled (idempotent).
    pub async fn experiment_chosen(
        &self,
        call_id: &str,
        campaign: CampaignId,
        script: &str,
        choices: &[ArmChoice],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if choices.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for c in choices {
            sqlx::query(
                "INSERT INTO experiment_arms (call_id, campaign, script, state, segment, variant, pick, chosen_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(call_id)
            .bind(campaign.0)
            .bind(script)
            .bind(&c.state)
            .bind(&c.segment)
            .bind(&c.variant)
            .bind(&c.pick)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Store a finished call's rewards: `(state, success)` for each bandit
    /// state it reached; the call's other choices are marked unreached.
    pub async fn experiment_rewarded(
        &self,
        call_id: &str,
        rewards: &[(String, bool)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE experiment_arms SET reached = 0 WHERE call_id = ? AND reached IS NULL")
            .bind(call_id)
            .execute(&mut *tx)
            .await?;
        for (state, ok) in rewards {
            sqlx::query(
                "UPDATE experiment_arms SET reached = 1, reward = ? WHERE call_id = ? AND state = ?",
            )
            .bind(i64::from(*ok))
            .bind(call_id)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Counts per experiment and variant, of one campaign or all.
    pub async fn experiment_counts(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<ArmCounts>, StoreError> {
        let rows: Vec<CountRow> = sqlx::query_as(
            "SELECT campaign, script, state, segment, variant, COUNT(*), \
                    COALESCE(SUM(reached = 1), 0), COALESCE(SUM(reached = 1 AND reward = 1), 0) \
             FROM experiment_arms WHERE (?1 IS NULL OR campaign = ?1) \
             GROUP BY campaign, script, state, segment, variant \
             ORDER BY campaign, script, state, segment, variant",
        )
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(campaign, script, state, segment, variant, chosen, trials, successes)| {
                    ArmCounts {
                        campaign,
                        script,
                        state,
                        segment,
                        variant,
                        chosen: chosen.max(0) as u64,
                        trials: trials.max(0) as u64,
                        successes: successes.max(0) as u64,
                    }
                },
            )
            .collect())
    }
}
