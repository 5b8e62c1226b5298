//! What a forecast ([`waihu_campaign::forecast`]) needs of the store, loaded
//! once and turned into a fresh [`Planner`] per run: the contacts as the
//! dialer loads them (time zone, segment, consent; customers it would skip are
//! listed with why), their call history seeding the answer model, the
//! do-not-call list, and the last 8 days of attempts that count against the
//! day and week caps.
use chrono::{DateTime, Duration, Utc};
use waihu_campaign::config::Campaign;
use waihu_campaign::planner::{ContactInput, PastAttempt, Planner};
use waihu_store::Store;

use crate::DialerError;

pub struct ForecastInputs {
    pub campaign: Campaign,
    pub contacts: Vec<ContactInput>,
    /// Customers the dialer would not dial, with the reason.
    pub skipped: Vec<String>,
    pub seed: Vec<PastAttempt>,
    pub dnc: Vec<String>,
    pub recent: Vec<(String, DateTime<Utc>)>,
}

impl ForecastInputs {
    /// A planner loaded as the dialer loads one at `waihu run`.
    pub fn planner(&self) -> Planner {
        let mut p = Planner::new(self.campaign.clone());
        p.reserve(self.contacts.len());
        p.seed_model(self.seed.iter().copied());
        for d in &self.dnc {
            p.add_dnc(d);
        }
        for c in &self.contacts {
            // Invalid numbers were reported when loaded.
            let _ = p.add_contact(c.clone());
        }
        for (phone, at) in &self.recent {
            p.record_external_attempt(phone, *at);
        }
        p
    }
}

/// Loads every stored customer for `campaign` as of `now`.
pub async fn forecast_inputs(
    store: &Store,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> Result<ForecastInputs, DialerError> {
    let mut customers = Vec::new();
    let mut after = 0;
    loop {
        let page = store.customers(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.0;
        customers.extend(page);
    }
    let mut history = crate::attempt_history(store, &customers).await?;
    let today = now.with_timezone(&campaign.timezone).date_naive();
    let mut out = ForecastInputs {
        campaign: campaign.clone(),
        contacts: Vec::with_capacity(customers.len()),
        skipped: Vec::new(),
        seed: Vec::new(),
        dnc: Vec::new(),
        recent: Vec::new(),
    };
    let mut phones = std::collections::HashMap::new();
    for c in &customers {
        let mut ci = match crate::contact_input(c, campaign, today) {
            Ok(ci) => ci,
            Err(e) => {
                out.skipped.push(e);
                continue;
            }
        };
        let segment = campaign.segment_index(&ci.segment).unwrap_or_default();
        crate::add_history(
            &mut ci,
            segment,
            history.remove(&c.id).unwrap_or_default(),
            &mut out.seed,
        );
        phones.insert(c.id, c.phone.clone());
        out.contacts.push(ci);
    }
    for e in store.dnc_list(None).await? {
        if e.scope == "global" || e.scope == campaign.name {
            out.dnc.push(e.phone);
        }
    }
    let since = now - Duration::days(8);
    let mut after = 0;
    loop {
        let page = store
            .events_of_type("attempt_started", after, 10_000)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, e) in page {
            if let Some(phone) = e.customer.and_then(|c| phones.get(&c)) {
                if e.at >= since && e.at <= now {
                    out.recent.push((phone.clone(), e.at));
                }
            }
        }
    }
    Ok(out)
}
