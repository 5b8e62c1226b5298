//! Sign-in with a user account: `/login` (the page), `POST /api/auth/login`,
//! `POST /api/auth/logout`, `GET /api/auth/me`. What a password, a code, a
//! lock or a session means is decided by `waihu-accounts`; this module reads
//! the request time, asks the store, writes the cookie and the audit events.
//!
//! A sign-in never tells whether a user exists: an unknown name costs one
//! argon2 verification (against a dummy hash) like a wrong password, and gets
//! the same answer; a locked account answers the same too, whatever the
//! password, so the lock cannot be used to test passwords.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use waihu_accounts::{lockout, password, totp};
use waihu_core::{Event, EventKind};

use crate::api::J;
use crate::auth::{key_hash, DeskCaller, Need, Role, SESSION_COOKIE};
use crate::error::ApiError;
use crate::{AppState, Routes};

const LOGIN: &str = include_str!("login.html");

/// Sign-in state shared by requests: the per-address rate limit, and a lock
/// so two attempts on one account cannot both read the same failure count.
pub struct Accounts {
    limiter: std::sync::Mutex<waihu_accounts::ratelimit::Limiter<IpAddr>>,
    decide: tokio::sync::Mutex<()>,
}

impl Accounts {
    pub fn new(per_minute: u32) -> Self {
        Accounts {
            limiter: std::sync::Mutex::new(waihu_accounts::ratelimit::Limiter::new(per_minute)),
            decide: tokio::sync::Mutex::new(()),
        }
    }
}

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("GET", "/login", Need::Public, get(login_page))
        .add("POST", "/api/auth/login", Need::Public, post(login))
        .add("POST", "/api/auth/logout", Need::Public, post(logout))
        .add("GET", "/api/auth/me", Need::Min(Role::Agent), get(me))
}

async fn login_page() -> Html<&'static str> {
    Html(LOGIN)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    user: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

impl LoginBody {
    /// What is refused before the store is asked.
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        if self.user.is_empty() || self.user.chars().count() > waihu_store::USER_NAME_MAX {
            return Err(ApiError::bad_request(
                "invalid_user",
                format!("user: 1 to {} characters", waihu_store::USER_NAME_MAX),
            ));
        }
        if self.password.len() > password::MAX_LEN {
            return Err(bad_credentials());
        }
        Ok(())
    }
}

fn bad_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
        "用户名或密码错误（连续失败 5 次将锁定 15 分钟）/ wrong user name or password (5 failures in a row lock the account for 15 minutes)",
    )
}

fn event(at: DateTime<Utc>, kind: EventKind) -> Event {
    Event {
        at,
        customer: None,
        campaign: None,
        call: None,
        kind,
    }
}

fn failed(at: DateTime<Utc>, user: &str, reason: &str) -> Event {
    event(
        at,
        EventKind::UserSignInFailed {
            user: user.into(),
            reason: reason.into(),
        },
    )
}

/// The cookie that carries a session (`max_age_s` 0: the one that clears it).
fn cookie(value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}"
    );
    // Only hex, digits and fixed text: always a valid header value.
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("waihu_session=; Max-Age=0"))
}

async fn login(
    State(s): State<AppState>,
    ext: axum::http::Extensions,
    body: Result<J<LoginBody>, ApiError>,
) -> Result<Response, ApiError> {
    let ip = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let limited = s
        .accounts
        .limiter
        .lock()
        .map_err(|_| ApiError::internal("the sign-in rate limiter is poisoned"))?
        .take(&ip, Instant::now());
    if let Err(wait) = limited {
        let secs = wait.as_secs().max(1);
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("登录尝试过于频繁，请 {secs} 秒后再试 / too many sign-in attempts from this address; try again in {secs} s"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(r);
    }
    let J(b) = body?;
    b.validate()?;
    let _one_at_a_time = s.accounts.decide.lock().await;
    let now = Utc::now();
    let Some(auth) = s.store.user_auth(&b.user).await? else {
        let pw = b.password.clone();
        let _ = tokio::task::spawn_blocking(move || password::verify(password::dummy_hash(), &pw))
            .await;
        s.store
            .sign_in_events(&[failed(now, &b.user, "bad_credentials")])
            .await?;
        return Err(bad_credentials());
    };
    let phc = auth.password_hash.clone();
    let pw = b.password.clone();
    let password_ok = tokio::task::spawn_blocking(move || password::verify(&phc, &pw))
        .await
        .map_err(|e| ApiError::internal(format!("verifying the password: {e}")))?;
    let user = &auth.user;
    let state = lockout::State {
        failures: user.failed_attempts,
        locked_until: user.locked_until,
    };
    if state.locked_at(now).is_some() {
        // Same answer whatever the password: a lock must not become an oracle.
        s.store
            .sign_in_events(&[failed(now, &user.name, "locked")])
            .await?;
        return Err(bad_credentials());
    }
    let refuse = |reason: &'static str, err: ApiError| {
        let after = state.after_failure(&s.cfg.lockout, now);
        let mut events = vec![failed(now, &user.name, reason)];
        if lockout::State::just_locked(&state, &after, now) {
            if let Some(until) = after.locked_until {
                events.push(event(
                    now,
                    EventKind::UserLocked {
                        user: user.name.clone(),
                        failures: after.failures,
                        until,
                    },
                ));
            }
        }
        (after, events, err)
    };
    let failure = if !password_ok {
        Some(refuse("bad_credentials", bad_credentials()))
    } else {
        None
    };
    if let Some((after, events, err)) = failure {
        s.store
            .user_sign_in_failed(user.id, after.failures, after.locked_until, &events)
            .await?;
        return Err(err);
    }
    // The password is right from here on.
    if user.disabled {
        s.store
            .sign_in_events(&[failed(now, &user.name, "disabled")])
            .await?;
        return Err(ApiError::forbidden(
            "account_disabled",
            "此账户已停用，请联系管理员 / this account is disabled; ask an admin (`waihu user ...`)",
        ));
    }
    let mut step = None;
    if let Some(secret) = &auth.totp_secret {
        let Some(code) = b.totp.as_deref().filter(|c| !c.trim().is_empty()) else {
            s.store
                .sign_in_events(&[failed(now, &user.name, "totp_required")])
                .await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "请输入身份验证器中的 6 位动态码 / enter the 6-digit code from your authenticator app",
            ));
        };
        match totp::verify(secret, code, now, auth.totp_last_step) {
            Ok(st) => step = Some(st),
            Err(e) => {
                let (code, reason) = match e {
                    totp::TotpError::Replayed => ("totp_replayed", "totp_replayed"),
                    _ => ("totp_wrong", "totp_wrong"),
                };
                let (after, events, err) = refuse(
                    reason,
                    ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string()),
                );
                s.store
                    .user_sign_in_failed(user.id, after.failures, after.locked_until, &events)
                    .await?;
                return Err(err);
            }
        }
    }
    // The session starts when it is issued, not when the request arrived: the
    // password hash alone can take longer than a short idle timeout.
    let now = Utc::now();
    let token = waihu_accounts::new_token();
    let csrf = waihu_accounts::new_token();
    let ev = event(
        now,
        EventKind::UserSignedIn {
            user: user.name.clone(),
            totp: step.is_some(),
        },
    );
    if !s
        .store
        .user_signed_in(user.id, step, &key_hash(&token), &csrf, now, &ev)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "totp_replayed",
            totp::TotpError::Replayed.to_string(),
        ));
    }
    let expires_at = s.cfg.sessions.expires_at(now, now);
    let mut r = Json(json!({
        "user": user.name,
        "role": user.role,
        "csrf_token": csrf,
        "expires_at": expires_at,
    }))
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        cookie(
            &token,
            s.cfg.sessions.absolute.num_seconds(),
            s.cfg.secure_cookies,
        ),
    );
    // Later requests from this browser go to the tenant signed into.
    r.headers_mut().append(
        header::SET_COOKIE,
        crate::tenancy::cookie(
            &s.tenant,
            s.cfg.sessions.absolute.num_seconds(),
            s.cfg.secure_cookies,
        ),
    );
    Ok(r)
}

/// Ends the session of the cookie (with its CSRF token, like any other
/// change) and clears the cookie. Without a session it only clears the cookie.
async fn logout(
    State(s): State<AppState>,
    caller: Result<DeskCaller, ApiError>,
) -> Result<Response, ApiError> {
    let signed_out = match caller {
        Ok(DeskCaller {
            session: Some(sess),
            ..
        }) => {
            s.store
                .session_end(
                    sess.id,
                    &[event(
                        Utc::now(),
                        EventKind::UserSignedOut {
                            user: sess.user.clone(),
                        },
                    )],
                )
                .await?
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => return Err(e),
        _ => false,
    };
    let mut r = Json(json!({ "signed_out": signed_out })).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, s.cfg.secure_cookies));
    r.headers_mut().append(
        header::SET_COOKIE,
        crate::tenancy::cookie("", 0, s.cfg.secure_cookies),
    );
    Ok(r)
}

/// Who is calling: for a session its user, role, CSRF token and expiry (what a
/// page opened later in the session needs); for a key its actor and role.
async fn me(State(s): State<AppState>, caller: DeskCaller) -> Json<serde_json::Value> {
    match &caller.session {
        Some(sess) => Json(json!({
            "tenant": &*s.tenant,
            "user": sess.user,
            "role": caller.role,
            "actor": caller.actor,
            "csrf_token": sess.csrf,
            "expires_at": sess.expires_at,
        })),
        None => Json(json!({
            "tenant": &*s.tenant,
            "user": null,
            "role": caller.role,
            "actor": caller.actor,
            "agent": caller.agent,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_flags() {
        let c = cookie("ab12", 43200, false);
        assert_eq!(
            c.to_str().unwrap(),
            "waihu_session=ab12; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
        );
        // Over TLS (serve_tls sets secure_cookies).
        let c = cookie("ab12", 43200, true);
        assert!(c.to_str().unwrap().ends_with("; Secure"), "{c:?}");
        assert!(cookie("", 0, true)
            .to_str()
            .unwrap()
            .starts_with("waihu_session=; "));
    }
}
