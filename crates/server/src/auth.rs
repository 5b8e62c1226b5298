//! API keys and roles. A key is `wh_` + 64 hex digits of OS randomness; the
//! store keeps only its SHA-256. Keys arrive as `Authorization: Bearer <key>`
//! or `X-API-Key: <key>`.
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// What a caller may do. Ordered: every role may do what the ones below it may.
/// `Agent` sits below them all and outside them: an agent key is bound to one
/// agent id and reaches only the agent desk's own routes ([`DeskCaller`]);
/// every other route refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One agent at the desk: its own state, its own offered call (customer
    /// masked), dispositions of its own calls. Nothing else.
    Agent,
    /// Reads everything, personal data always masked.
    Analyst,
    /// Also reveals personal data (audited) and edits the do-not-call list.
    Operator,
    /// Also manages API keys and webhooks.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Analyst, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Analyst => "analyst",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A new random API key.
pub fn generate_key() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("wh_{}", hex::encode(b))
}

/// A random webhook secret.
pub fn generate_secret() -> String {
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("whsec_{}", hex::encode(b))
}

pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Create a key: returns the key (show it once) and its stored record.
pub async fn create_key(
    store: &waihu_store::Store,
    name: &str,
    role: Role,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, waihu_store::ApiKey), waihu_store::StoreError> {
    create_key_for(store, name, role, None, now).await
}

/// [`create_key`] with the agent id an `agent` key acts as.
pub async fn create_key_for(
    store: &waihu_store::Store,
    name: &str,
    role: Role,
    agent: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, waihu_store::ApiKey), waihu_store::StoreError> {
    if (role == Role::Agent) != agent.is_some() {
        return Err(waihu_store::StoreError::Invalid(
            "agent: an agent key names exactly one agent id (and only agent keys do)".into(),
        ));
    }
    let key = generate_key();
    let rec = store
        .api_key_insert_for(name, role.as_str(), agent, &key_hash(&key), now)
        .await?;
    Ok((key, rec))
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// For the audit trail: `api:<key name>#<key id>`, or `api:open` for
    /// key-less loopback access (`--open`).
    pub actor: String,
}

impl Caller {
    pub fn require(&self, role: Role, what: &str) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "forbidden",
                format!(
                    "{what} needs the {} role; this key has {}. Use a key with that role",
                    role.as_str(),
                    self.role.as_str()
                ),
            ))
        }
    }
}

fn presented_key(parts: &Parts) -> Result<Option<String>, ApiError> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
        let key = v.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be 'Bearer <api key>'")
        })?;
        return Ok(Some(key.trim().to_string()));
    }
    if let Some(v) = parts.headers.get("x-api-key") {
        let v = v
            .to_str()
            .map_err(|_| ApiError::unauthorized("the X-API-Key header is not ASCII"))?;
        return Ok(Some(v.trim().to_string()));
    }
    Ok(None)
}

/// A caller of the agent desk's routes: any role, and for an `agent` key the
/// agent id it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskCaller {
    pub role: Role,
    pub actor: String,
    pub agent: Option<String>,
}

impl DeskCaller {
    /// May this caller act for `agent`? Its own agent key, or an operator or
    /// admin (supervisors).
    pub fn may_act_for(&self, agent: &str, what: &str) -> Result<(), ApiError> {
        match (&self.agent, self.role) {
            (Some(own), Role::Agent) if own == agent => Ok(()),
            (_, Role::Agent) => Err(ApiError::forbidden(
                "not_your_agent",
                format!(
                    "{what}: this key acts for agent '{}' only, not '{agent}'",
                    self.agent.as_deref().unwrap_or("")
                ),
            )),
            (_, r) if r >= Role::Operator => Ok(()),
            _ => Err(ApiError::forbidden(
                "forbidden",
                format!(
                    "{what} needs the agent's own key or the operator role; this key has {}",
                    self.role.as_str()
                ),
            )),
        }
    }
}

impl FromRequestParts<AppState> for DeskCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match presented_key(parts)? {
            Some(key) => {
                let rec = state
                    .store
                    .api_key_by_hash(&key_hash(&key))
                    .await?
                    .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key; create one with `waihu apikey create`"))?;
                let role = Role::parse(&rec.role).ok_or_else(|| ApiError::internal(format!("key {} has unknown role '{}'", rec.id, rec.role)))?;
                Ok(DeskCaller { role, actor: format!("api:{}#{}", rec.name, rec.id), agent: rec.agent_id })
            }
            None if state.cfg.open => Ok(DeskCaller { role: Role::Analyst, actor: "api:open".into(), agent: None }),
            None => Err(ApiError::unauthorized(
                "no API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (create one with `waihu apikey create`)",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// Every route but the desk's: an agent key is refused here.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let d = DeskCaller::from_request_parts(parts, state).await?;
        if d.role == Role::Agent {
            return Err(ApiError::forbidden(
                "agent_key",
                "an agent key reaches only the agent desk (/api/me, /api/agents/{id}/state, /api/agents/{id}/offer, /api/calls/{id}/disposition); use an analyst, operator or admin key",
            ));
        }
        Ok(Caller {
            role: d.role,
            actor: d.actor,
        })
    }
}
