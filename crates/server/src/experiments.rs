//! Learning experiments in the API: per campaign, script state and segment,
//! each prompt variant's calls, successes, posterior success rate, posterior
//! probability of being best and uplift against the first variant (the
//! control) with a 95% interval. JSON or CSV (one row per variant).
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use rand09::rngs::StdRng;
use rand09::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use waihu_core::CampaignId;
use waihu_learn::{Arm, ArmReport};
use waihu_store::{Store, StoreError};

use crate::api::{file_response, Format, Q};
use crate::auth::Caller;
use crate::auth::{Need, Role};
use crate::error::ApiError;
use crate::{AppState, Routes};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "GET",
        "/api/experiments",
        Need::Min(Role::Analyst),
        get(list),
    )
}

/// One experiment: a bandit state of a script, for one campaign segment.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub campaign_id: i64,
    pub script: String,
    pub state: String,
    pub segment: String,
    /// Calls dialled with a variant chosen / calls that reached the state.
    pub chosen: u64,
    pub trials: u64,
    /// The variant most likely best so far.
    pub leader: String,
    pub variants: Vec<VariantReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub variant: String,
    pub chosen: u64,
    #[serde(flatten)]
    pub stats: ArmReport,
}

/// The A/B report of every experiment (of one campaign). The Monte Carlo
/// behind `prob_best` is seeded by the experiment, so a report reads the
/// same twice over the same data.
pub async fn report(
    store: &Store,
    campaign: Option<CampaignId>,
) -> Result<Vec<Experiment>, StoreError> {
    let counts = store.experiment_counts(campaign).await?;
    let mut out: Vec<Experiment> = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let first = &counts[i];
        let mut j = i;
        while j < counts.len()
            && counts[j].campaign == first.campaign
            && counts[j].script == first.script
            && counts[j].state == first.state
            && counts[j].segment == first.segment
        {
            j += 1;
        }
        let group = &counts[i..j];
        let arms: Vec<Arm> = group
            .iter()
            .map(|c| Arm {
                trials: c.trials,
                successes: c.successes,
            })
            .collect();
        let seed = group.iter().fold(first.campaign as u64, |h, c| {
            c.variant
                .bytes()
                .chain(c.state.bytes())
                .chain(c.segment.bytes())
                .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3))
        });
        let stats = waihu_learn::report(&arms, &mut StdRng::seed_from_u64(seed));
        let leader = stats
            .iter()
            .max_by(|a, b| a.prob_best.total_cmp(&b.prob_best))
            .map(|s| group[s.arm].variant.clone())
            .unwrap_or_default();
        out.push(Experiment {
            campaign_id: first.campaign,
            script: first.script.clone(),
            state: first.state.clone(),
            segment: first.segment.clone(),
            chosen: group.iter().map(|c| c.chosen).sum(),
            trials: group.iter().map(|c| c.trials).sum(),
            leader,
            variants: group
                .iter()
                .zip(stats)
                .map(|(c, stats)| VariantReport {
                    variant: c.variant.clone(),
                    chosen: c.chosen,
                    stats,
                })
                .collect(),
        });
        i = j;
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQ {
    campaign: Option<i64>,
    #[serde(default)]
    format: Format,
}

const CSV_COLUMNS: &[&str] = &[
    "campaign_id",
    "script",
    "state",
    "segment",
    "variant",
    "chosen",
    "trials",
    "successes",
    "rate",
    "prob_best",
    "uplift",
    "uplift_lo",
    "uplift_hi",
];

async fn list(State(s): State<AppState>, _c: Caller, Q(q): Q<ListQ>) -> Result<Response, ApiError> {
    let r = report(&s.store, q.campaign.map(CampaignId)).await?;
    if q.format.is_file() {
        let rows: Vec<Value> = r
            .iter()
            .flat_map(|e| {
                e.variants.iter().map(move |v| {
                    json!({
                        "campaign_id": e.campaign_id, "script": e.script, "state": e.state,
                        "segment": e.segment, "variant": v.variant, "chosen": v.chosen,
                        "trials": v.stats.trials, "successes": v.stats.successes,
                        "rate": v.stats.rate, "prob_best": v.stats.prob_best,
                        "uplift": v.stats.uplift.map(|u| u.diff),
                        "uplift_lo": v.stats.uplift.map(|u| u.lo),
                        "uplift_hi": v.stats.uplift.map(|u| u.hi),
                    })
                })
            })
            .collect();
        return file_response(q.format, "experiments", CSV_COLUMNS, &rows);
    }
    Ok(Json(json!({ "items": r })).into_response())
}
