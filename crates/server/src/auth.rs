//! Who is calling: API keys, sign-in sessions and roles. A key is `wh_` + 64
//! hex digits of OS randomness; the store keeps only its SHA-256. Keys arrive
//! as `Authorization: Bearer <key>` or `X-API-Key: <key>`. A browser signed in
//! at `/login` sends the `waihu_session` cookie instead (the store keeps only
//! its SHA-256 too); a cookie-authenticated request that may change something
//! (any method but GET and HEAD) must carry the session's `X-CSRF-Token`.
//! The one place this is decided is [`DeskCaller`]'s extractor, which
//! [`Caller`]'s builds on: handlers only ask for the role they need.
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
    /// Everything an operator may do, for the people who run the floor (the
    /// desk's supervisor view and campaign control are operator routes today,
    /// so it adds no route of its own yet); keys, webhooks, users and imports
    /// stay with admins.
    Supervisor,
    /// Also manages API keys, webhooks and imports.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Supervisor,
        Role::Operator,
        Role::Analyst,
        Role::Agent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
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

/// What a route asks of its caller, declared where the route is registered
/// ([`crate::Routes::add`]) and checked against the handlers by
/// `tests/authz.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "need", content = "role")]
pub enum Need {
    /// No credentials: the sign-in page and its API, the pages' HTML (their
    /// data comes from routes that do ask), the OpenAPI document.
    Public,
    /// This role or one above it.
    Min(Role),
    /// An agent key (the handler then checks that the agent or call in the
    /// path is the key's own), or this role or one above it. Analysts are
    /// refused: agents are outside the order of the other roles.
    OwnAgentOr(Role),
}

impl Need {
    /// Whether a caller with `role` passes (ownership is the handler's part).
    pub fn admits(self, role: Role) -> bool {
        match self {
            Need::Public => true,
            Need::Min(min) => role >= min,
            Need::OwnAgentOr(min) => role == Role::Agent || role >= min,
        }
    }
}

/// Router middleware (applied to every route by [`crate::app`]): refuses a
/// caller below the route's declared [`Need`] before any extractor reads the
/// body, and hands the authenticated caller on to the handler's extractor.
pub(crate) async fn guard(
    axum::extract::State(g): axum::extract::State<Guard>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    // HEAD is served by the GET handler (axum), so it needs what GET needs.
    let method = match req.method().as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let need = path.and_then(|p| g.needs.get(&(method.to_string(), p)).copied());
    // A method the path does not declare is answered here, never handed to a
    // handler: a handler serving an undeclared method would run unguarded.
    let Some(need) = need else {
        return ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not served at {}; see /api/openapi.json",
                req.method(),
                req.uri().path()
            ),
        )
        .into_response();
    };
    if need == Need::Public {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let caller = match DeskCaller::from_request_parts(&mut parts, &g.app).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !need.admits(caller.role) {
        let e = match (caller.role, need) {
            (Role::Agent, _) => ApiError::forbidden("agent_key", AGENT_KEY_ONLY),
            (_, Need::Min(min) | Need::OwnAgentOr(min)) => ApiError::forbidden(
                refusal_code(g.paths_refusing, parts.extensions.get::<axum::extract::MatchedPath>()),
                format!(
                    "{} {} needs the {} role; this caller has {}. Use a key or an account with that role",
                    parts.method,
                    parts.uri.path(),
                    min.as_str(),
                    caller.role.as_str()
                ),
            ),
            (_, Need::Public) => ApiError::internal("unreachable: public routes pass"),
        };
        return e.into_response();
    }
    parts.extensions.insert(caller);
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

const AGENT_KEY_ONLY: &str = "an agent key reaches only the agent desk (/api/me, /api/agents/{id}/state, /api/agents/{id}/offer, /api/calls/{id}/disposition); use an analyst, operator, supervisor or admin key";

/// The guard's state: the app's, and each route's declared need.
#[derive(Clone)]
pub(crate) struct Guard {
    pub app: AppState,
    pub needs: std::sync::Arc<std::collections::HashMap<(String, String), Need>>,
    pub paths_refusing: &'static [(&'static str, &'static str)],
}

/// Refusal codes clients already rely on, kept when the guard took the role
/// check over from these handlers (route → code); every other refusal is
/// `forbidden`.
pub(crate) const REFUSAL_CODES: &[(&str, &str)] =
    &[("/api/calls/{id}/recording", "reveal_forbidden")];

fn refusal_code(
    table: &[(&'static str, &'static str)],
    path: Option<&axum::extract::MatchedPath>,
) -> &'static str {
    path.and_then(|p| table.iter().find(|(r, _)| *r == p.as_str()))
        .map(|(_, c)| *c)
        .unwrap_or("forbidden")
}

/// The signed-in session behind a request (absent for API keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: i64,
    pub user: String,
    pub csrf: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// For the audit trail: `api:<key name>#<key id>`, `user:<name>` for a
    /// signed-in user, or `api:open` for key-less loopback access (`--open`).
    pub actor: String,
    pub session: Option<SessionInfo>,
}

impl Caller {
    pub fn require(&self, role: Role, what: &str) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "forbidden",
                format!(
                    "{what} needs the {} role; this caller has {}. Use a key or an account with that role",
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
    pub session: Option<SessionInfo>,
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

/// The cookie a signed-in browser sends.
pub const SESSION_COOKIE: &str = "waihu_session";
/// The header a cookie-authenticated request that changes something carries.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The `waihu_session` cookie's value, if the request has one.
pub fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn sign_in_again(why: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "session_expired",
        format!("{why}; 请重新登录 / sign in again at /login"),
    )
}

/// The caller behind a `waihu_session` cookie: the session must exist, be
/// within its idle and absolute lifetimes, belong to an enabled user, and a
/// request other than GET/HEAD must carry its CSRF token.
async fn session_caller(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<DeskCaller, ApiError> {
    use waihu_accounts::session::Verdict;
    let now = chrono::Utc::now();
    let Some(sess) = state.store.session(&key_hash(token)).await? else {
        return Err(sign_in_again("no such session (signed out or expired)"));
    };
    match state
        .cfg
        .sessions
        .verdict(sess.created_at, sess.last_seen, now)
    {
        Verdict::Idle => {
            state.store.session_end(sess.id, &[]).await?;
            Err(sign_in_again("the session was idle too long"))
        }
        Verdict::Expired => {
            state.store.session_end(sess.id, &[]).await?;
            Err(sign_in_again("the session reached its maximum lifetime"))
        }
        Verdict::Live { expires_at } => {
            if sess.user.disabled {
                return Err(sign_in_again("this account is disabled"));
            }
            let role = Role::parse(&sess.user.role).ok_or_else(|| {
                ApiError::internal(format!(
                    "user {} has unknown role '{}'",
                    sess.user.name, sess.user.role
                ))
            })?;
            let m = &parts.method;
            if m != axum::http::Method::GET && m != axum::http::Method::HEAD {
                let presented = parts
                    .headers
                    .get(CSRF_HEADER)
                    .map(|v| v.to_str().unwrap_or(""));
                match presented {
                    None | Some("") => return Err(ApiError::forbidden(
                        "csrf_missing",
                        "缺少 X-CSRF-Token / a signed-in request that changes something must send the X-CSRF-Token header (the csrf_token from sign-in or GET /api/auth/me)",
                    )),
                    Some(t) if !waihu_accounts::csrf::tokens_equal(t, &sess.csrf) => {
                        return Err(ApiError::forbidden(
                            "csrf_mismatch",
                            "X-CSRF-Token 不匹配 / the X-CSRF-Token header does not match this session's token; reload the page or GET /api/auth/me",
                        ))
                    }
                    Some(_) => {}
                }
            }
            // A write per request would make every dashboard poll a write; a
            // few seconds of slack on a 30-minute idle timeout is harmless.
            let every =
                (state.cfg.sessions.idle / 10).min(chrono::Duration::seconds(TOUCH_EVERY_S));
            if now - sess.last_seen >= every {
                state.store.session_touch(sess.id, now).await?;
            }
            Ok(DeskCaller {
                role,
                actor: format!("user:{}", sess.user.name),
                agent: None,
                session: Some(SessionInfo {
                    id: sess.id,
                    user: sess.user.name,
                    csrf: sess.csrf,
                    expires_at,
                }),
            })
        }
    }
}

/// How stale a session's last-seen time may get before a request rewrites it
/// (at most a tenth of the idle timeout).
const TOUCH_EVERY_S: i64 = 5;

impl FromRequestParts<AppState> for DeskCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Already authenticated by the route guard.
        if let Some(c) = parts.extensions.get::<DeskCaller>() {
            return Ok(c.clone());
        }
        // A key wins over a cookie: it is not an ambient credential, so it
        // needs no CSRF token.
        if let Some(key) = presented_key(parts)? {
            let rec = state
                .store
                .api_key_by_hash(&key_hash(&key))
                .await?
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "unknown or revoked API key; create one with `waihu apikey create`",
                    )
                })?;
            let role = Role::parse(&rec.role).ok_or_else(|| {
                ApiError::internal(format!("key {} has unknown role '{}'", rec.id, rec.role))
            })?;
            return Ok(DeskCaller {
                role,
                actor: format!("api:{}#{}", rec.name, rec.id),
                agent: rec.agent_id,
                session: None,
            });
        }
        if let Some(token) = session_cookie(parts) {
            return session_caller(parts, state, &token).await;
        }
        if state.cfg.open {
            return Ok(DeskCaller {
                role: Role::Analyst,
                actor: "api:open".into(),
                agent: None,
                session: None,
            });
        }
        Err(ApiError::unauthorized(
            "no API key or session: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (create one with `waihu apikey create`), or sign in at /login",
        ))
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
            return Err(ApiError::forbidden("agent_key", AGENT_KEY_ONLY));
        }
        Ok(Caller {
            role: d.role,
            actor: d.actor,
            session: d.session,
        })
    }
}
