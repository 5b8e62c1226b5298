//! Tenants: one installation serving several client companies.
//!
//! Each tenant is a store of its own (its own database, master key, scripts,
//! recordings and rejects directory, see `waihu --tenant`), and gets a router
//! of its own over that store from [`crate::app`]. This module only picks the
//! router a request goes to. No handler ever holds two tenants' stores, so no
//! request, report, export, webhook or live stream of one tenant can read
//! another's rows: the isolation is the store handle, not a `WHERE` clause a
//! handler could forget.
//!
//! Credentials are per store too: a session or API key made in tenant A is
//! unknown in tenant B, so a request that names B with A's credentials is
//! refused by B's guard like any unknown credential (401).
//!
//! Which tenant: the `X-Waihu-Tenant` header (API clients, and the sign-in
//! form's organisation field), else the `waihu_tenant` cookie set at sign-in,
//! else the installation's own store, [`DEFAULT`].
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

use crate::error::ApiError;

/// The request header that names a tenant.
pub const HEADER: &str = "x-waihu-tenant";
/// The cookie sign-in sets to the tenant signed into.
pub const COOKIE: &str = "waihu_tenant";
/// The installation's own store (the data directory itself).
pub const DEFAULT: &str = "default";

/// Why a name cannot be a tenant's.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=32).contains(&name.len());
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok_len && first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "tenant name {name:?}: 1 to 32 characters a-z, 0-9 and '-', starting with a letter or digit"
        ))
    }
}

/// The tenant a request names: the header, else the cookie; `None` when it
/// names none. A name that is not a valid tenant name is an error.
pub fn requested(headers: &HeaderMap) -> Result<Option<String>, String> {
    let named = if let Some(v) = headers.get(HEADER) {
        Some(
            v.to_str()
                .map_err(|_| format!("{HEADER}: not ASCII"))?
                .trim()
                .to_string(),
        )
    } else {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match named {
        Some(n) => check_name(&n).map(|()| Some(n)),
        None => Ok(None),
    }
}

/// The `waihu_tenant` cookie for `tenant` (`max_age_s` 0 clears it). Not
/// HttpOnly-sensitive (it names, it does not authenticate) but set the same
/// way as the session cookie.
pub fn cookie(tenant: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!(
        "{COOKIE}={tenant}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}"
    );
    // Tenant names are checked ([`check_name`]): always a valid header value.
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("waihu_tenant=; Max-Age=0"))
}

struct Table {
    routers: BTreeMap<String, Router>,
    secure: bool,
}

/// Where a browser picks its tenant without signing in (a dashboard opened
/// with an API key): `GET /tenant/NAME` sets the cookie and goes to `/`.
pub const PICK_PATH: &str = "/tenant/";

/// One router over every tenant's router: each request goes to the router of
/// the tenant it names ([`requested`]), or [`DEFAULT`]'s. `secure` marks the
/// cookies [`PICK_PATH`] sets `Secure`.
pub fn dispatch(routers: BTreeMap<String, Router>, secure: bool) -> Router {
    Router::new()
        .fallback(route)
        .with_state(Arc::new(Table { routers, secure }))
}

fn unknown(name: &str) -> Response {
    let mut r = ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_tenant",
        format!("no tenant named {name:?} here"),
    )
    .into_response();
    // A stale cookie would otherwise lock the browser out of signing in again.
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, false));
    r
}

async fn route(State(t): State<Arc<Table>>, req: Request) -> Response {
    if let Some(rest) = req.uri().path().strip_prefix(PICK_PATH) {
        let name = rest.trim_end_matches('/');
        if let Err(e) = check_name(name) {
            return ApiError::new(StatusCode::BAD_REQUEST, "bad_tenant", e).into_response();
        }
        if !t.routers.contains_key(name) {
            return unknown(name);
        }
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        r.headers_mut()
            .insert(header::SET_COOKIE, cookie(name, 12 * 3600, t.secure));
        return r;
    }
    let name = match requested(req.headers()) {
        Ok(n) => n.unwrap_or_else(|| DEFAULT.to_string()),
        Err(e) => return ApiError::new(StatusCode::BAD_REQUEST, "bad_tenant", e).into_response(),
    };
    match t.routers.get(&name) {
        Some(r) => match r.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
        None => unknown(&name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["acme", "a", "bank-2", "0x", &"a".repeat(32)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "Acme",
            "a b",
            "a_b",
            "a/../b",
            "租户",
            &"a".repeat(33),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_wins_over_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(requested(&h), Ok(None));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; waihu_tenant=acme; b=2"),
        );
        assert_eq!(requested(&h), Ok(Some("acme".into())));
        h.insert(HEADER, HeaderValue::from_static("globex"));
        assert_eq!(requested(&h), Ok(Some("globex".into())));
        h.insert(HEADER, HeaderValue::from_static("../etc"));
        assert!(requested(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("waihu_tenant="));
        assert_eq!(requested(&h), Ok(None));
    }

    #[test]
    fn cookie_is_strict() {
        let c = cookie("acme", 60, true);
        assert_eq!(
            c.to_str().unwrap(),
            "waihu_tenant=acme; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
        );
    }
}
