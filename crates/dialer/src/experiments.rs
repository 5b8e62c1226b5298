//! The campaign's learning experiments at run time: one Thompson-sampling
//! bandit per script state with `bandit:` and per campaign segment. Choices
//! are made when a call is dialled (stored with the call), rewards arrive
//! when it ends (stored, then fed to the bandit). Restored from the store
//! when a campaign restarts, so learning carries over.
//!
//! The bandit only picks which prompt the callee hears: whom to call and
//! when stays with the planner and its compliance gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand09::rngs::StdRng;
use rand09::SeedableRng;
use waihu_bot::ScriptKit;
use waihu_core::CampaignId;
use waihu_learn::{Arm, Bandit, Policy};
use waihu_store::{ArmChoice, Store, StoreError};

type Key = (String, String, String);

pub struct Experiments {
    inner: Mutex<Inner>,
}

struct Inner {
    /// (script, state, segment) → the bandit.
    bandits: HashMap<Key, Bandit>,
    rng: StdRng,
}

fn policy(b: &waihu_dialog::CBandit) -> Policy {
    Policy {
        min_share: b.min_share,
        stop_prob: b.stop_prob,
        min_trials: b.min_calls,
    }
}

impl Experiments {
    /// The experiments of these scripts, restored from what the campaign
    /// stored so far. `seed` drives the choices (reproducible runs).
    pub async fn load(
        store: &Store,
        campaign: CampaignId,
        scripts: &[(&str, &Arc<ScriptKit>)],
        seed: u64,
    ) -> Result<Experiments, StoreError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bandits = HashMap::new();
        let counts = store.experiment_counts(Some(campaign)).await?;
        for (name, kit) in scripts {
            for (_, st, b) in kit.prog.bandit_states() {
                let mut per_segment: HashMap<&str, Vec<Arm>> = HashMap::new();
                for c in counts
                    .iter()
                    .filter(|c| c.script == *name && c.state == st.name)
                {
                    let Some(i) = st.variants.iter().position(|v| v.id == c.variant) else {
                        // A variant the script no longer has: its history is not this experiment's.
                        continue;
                    };
                    let arms = per_segment
                        .entry(c.segment.as_str())
                        .or_insert_with(|| vec![Arm::default(); st.variants.len()]);
                    arms[i].trials += c.trials;
                    arms[i].successes += c.successes;
                }
                for (segment, arms) in per_segment {
                    let key = (name.to_string(), st.name.clone(), segment.to_string());
                    bandits.insert(key, Bandit::restore(arms, policy(b), &mut rng));
                }
            }
        }
        Ok(Experiments {
            inner: Mutex::new(Inner { bandits, rng }),
        })
    }

    /// The variants for a call of `script` to a customer of `segment`.
    pub fn choose(&self, script: &str, kit: &ScriptKit, segment: &str) -> Vec<ArmChoice> {
        let mut guard = self.inner.lock().expect("experiments lock");
        let Inner { bandits, rng } = &mut *guard;
        kit.prog
            .bandit_states()
            .map(|(_, st, b)| {
                let key = (script.to_string(), st.name.clone(), segment.to_string());
                let bandit = bandits
                    .entry(key)
                    .or_insert_with(|| Bandit::new(st.variants.len(), policy(b)));
                let (arm, pick) = bandit.pick(rng);
                ArmChoice {
                    state: st.name.clone(),
                    segment: segment.to_string(),
                    variant: st.variants[arm].id.clone(),
                    pick: pick.as_str().to_string(),
                }
            })
            .collect()
    }

    /// A call's rewards arrived.
    pub fn observe(&self, script: &str, segment: &str, rewards: &[waihu_dialog::BanditReward]) {
        let mut guard = self.inner.lock().expect("experiments lock");
        let Inner { bandits, rng } = &mut *guard;
        for r in rewards {
            let key = (script.to_string(), r.state.clone(), segment.to_string());
            if let Some(b) = bandits.get_mut(&key) {
                b.observe(r.variant_index, r.success, rng);
            }
        }
    }

    /// The concluded experiments' winners: (script, state, segment, variant index).
    pub fn winners(&self) -> Vec<(String, String, String, usize)> {
        let guard = self.inner.lock().expect("experiments lock");
        let mut out: Vec<_> = guard
            .bandits
            .iter()
            .filter_map(|((sc, st, seg), b)| {
                b.winner().map(|w| (sc.clone(), st.clone(), seg.clone(), w))
            })
            .collect();
        out.sort();
        out
    }
}
