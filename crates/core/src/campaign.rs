//! A campaign's state and the moves between states. The stored campaign row
//! is the runtime's command channel (the API starts, pauses and stops it; the
//! dialer follows and marks it finished), so the table of allowed moves is
//! shared vocabulary, not a detail of the store.
use serde::{Deserialize, Serialize};

/// Stored, served and logged as the lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    Created,
    Running,
    Paused,
    /// An operator's decision: final.
    Stopped,
    /// The runtime ran out of contacts to call (or its hours); may run again,
    /// e.g. after new contacts were imported or a demo re-run.
    Finished,
}

/// A name that is not a campaign state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a campaign state; use one of created, running, paused, stopped, finished")]
pub struct UnknownCampaignState(pub String);

impl CampaignState {
    /// Every state, in the usual order.
    pub const ALL: [CampaignState; 5] = [
        CampaignState::Created,
        CampaignState::Running,
        CampaignState::Paused,
        CampaignState::Stopped,
        CampaignState::Finished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Created => "created",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Stopped => "stopped",
            CampaignState::Finished => "finished",
        }
    }

    /// The states a campaign may move to from this one.
    pub fn next_states(self) -> &'static [CampaignState] {
        use CampaignState::*;
        match self {
            Created => &[Running, Stopped],
            Running => &[Paused, Stopped, Finished],
            Paused => &[Running, Stopped, Finished],
            Finished => &[Running, Stopped],
            Stopped => &[],
        }
    }

    pub fn can_become(self, to: CampaignState) -> bool {
        self.next_states().contains(&to)
    }
}

impl std::fmt::Display for CampaignState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CampaignState {
    type Err = UnknownCampaignState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CampaignState::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCampaignState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_stopped_is_final() {
        for s in CampaignState::ALL {
            assert_eq!(s.as_str().parse::<CampaignState>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("bogus".parse::<CampaignState>().is_err());
        assert!(CampaignState::Stopped.next_states().is_empty());
        assert!(CampaignState::Finished.can_become(CampaignState::Running));
        assert!(!CampaignState::Created.can_become(CampaignState::Paused));
    }
}
