//! Route handlers. Each checks the caller's role, asks the store, and shapes
//! JSON (or CSV with `format=csv`). Personal data is masked here unless a
//! revealing caller asked for it, and then the reveal is logged first.
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, request::Parts, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_core::{mask_name, mask_phone, CampaignId, CustomerId, Event};
use waihu_store::Customer;

use crate::auth::Need;
use crate::auth::{self, Caller, DeskCaller, Role};
use crate::error::ApiError;
use crate::{kpi, openapi, AppState, Routes};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("GET", "/", Need::Public, get(dashboard))
        .add("GET", "/api/openapi.json", Need::Public, get(openapi_doc))
        .add("GET", "/api/me", Need::Min(Role::Agent), get(me))
        .add(
            "GET",
            "/api/overview",
            Need::Min(Role::Analyst),
            get(overview),
        )
        .add(
            "GET",
            "/api/customers",
            Need::Min(Role::Analyst),
            get(list_customers),
        )
        .add(
            "GET",
            "/api/customers/{id}",
            Need::Min(Role::Analyst),
            get(show_customer),
        )
        .add(
            "GET",
            "/api/segments",
            Need::Min(Role::Analyst),
            get(segments),
        )
        .add("GET", "/api/dnc", Need::Min(Role::Analyst), get(list_dnc))
        .add("POST", "/api/dnc", Need::Min(Role::Operator), post(add_dnc))
        .add(
            "DELETE",
            "/api/dnc/{phone}",
            Need::Min(Role::Operator),
            delete(remove_dnc),
        )
        .add(
            "GET",
            "/api/events",
            Need::Min(Role::Analyst),
            get(list_events),
        )
        .add("GET", "/api/kpis", Need::Min(Role::Analyst), get(kpis))
        .add(
            "GET",
            "/api/heatmap",
            Need::Min(Role::Analyst),
            get(heatmap),
        )
        .add(
            "GET",
            "/api/webhooks",
            Need::Min(Role::Admin),
            get(list_webhooks),
        )
        .add(
            "POST",
            "/api/webhooks",
            Need::Min(Role::Admin),
            post(add_webhook),
        )
        .add(
            "DELETE",
            "/api/webhooks/{id}",
            Need::Min(Role::Admin),
            delete(delete_webhook),
        )
        .add(
            "GET",
            "/api/webhooks/{id}/deliveries",
            Need::Min(Role::Admin),
            get(webhook_deliveries),
        )
        .add("GET", "/api/keys", Need::Min(Role::Admin), get(list_keys))
        .add(
            "POST",
            "/api/keys",
            Need::Min(Role::Admin),
            post(create_key),
        )
        .add(
            "DELETE",
            "/api/keys/{id}",
            Need::Min(Role::Admin),
            delete(revoke_key),
        )
}

/// Query string, with a JSON error that names the bad parameter.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| {
                ApiError::bad_request(
                    "bad_query",
                    format!(
                        "{}; see /api/openapi.json for the parameters",
                        e.body_text()
                    ),
                )
            })
    }
}

/// JSON body, with a JSON error that says what is wrong with it.
pub struct J<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for J<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|j| J(j.0))
            .map_err(bad_body)
    }
}

fn bad_body(e: JsonRejection) -> ApiError {
    ApiError::bad_request(
        "bad_body",
        format!(
            "{}; send a JSON object as in /api/openapi.json",
            e.body_text()
        ),
    )
}

/// Decodes and validates a JSON request body exactly as the handler of `route`
/// (`"POST /api/dnc"`, `"POST /api/webhooks"`, `"POST /api/keys"`,
/// `"POST /api/campaigns"`, the console's `"POST /api/segments/preview"`,
/// `"POST /api/scripts/validate"`, `"POST /api/scripts/edit"`, `"PUT /api/scripts/{name}"`,
/// `"POST /api/auth/login"`) does before it
/// touches the store. The entry point of
/// the `http_json` fuzz target (fuzz/); not part of the API.
#[doc(hidden)]
pub fn check_json_body(route: &str, body: &[u8]) -> Result<(), ApiError> {
    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
        // What the `J` extractor runs once the Content-Type is JSON.
        Json::<T>::from_bytes(body).map(|j| j.0).map_err(bad_body)
    }
    match route {
        "POST /api/dnc" => decode::<DncAdd>(body)?.validate().map(drop),
        "POST /api/webhooks" => decode::<WebhookAdd>(body)?.validate().map(drop),
        "POST /api/keys" => decode::<KeyAdd>(body)?.validate().map(drop),
        "POST /api/agents/{id}/state" => {
            decode::<crate::desk::StateBody>(body)?.validate().map(drop)
        }
        "POST /api/calls/{id}/disposition" => {
            decode::<crate::desk::DispositionBody>(body)?.validate()
        }
        "POST /api/campaigns" => {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            crate::campaigns::campaign_from_body(&headers, body).map(drop)
        }
        "POST /api/segments/preview" => {
            let b = decode::<crate::console::RulesBody>(body)?;
            // Rule errors are an answer (ok: false), not a failure.
            let _ = waihu_segment::RuleSet::parse(&b.rules, "rules", &Default::default());
            Ok(())
        }
        "POST /api/scripts/validate" => {
            let b = decode::<crate::console::ScriptBody>(body)?;
            let _ = waihu_dialog::load_str(&b.yaml, "script");
            Ok(())
        }
        "POST /api/scripts/edit" => {
            let b = decode::<crate::console::EditBody>(body)?;
            // A refused edit is an answer (422 with its reason), not a failure.
            let _ = waihu_dialog::edit::apply(&b.yaml, &b.edit);
            Ok(())
        }
        "PUT /api/scripts/{name}" => decode::<crate::console::SaveBody>(body).map(drop),
        "POST /api/auth/login" => decode::<crate::accounts::LoginBody>(body)?.validate(),
        other => Err(ApiError::not_found(
            "no_such_route",
            format!("no JSON body is read at {other}"),
        )),
    }
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(
        "no_such_route",
        format!(
            "nothing at {}; the routes are listed in /api/openapi.json",
            uri.path()
        ),
    )
}

/// The pages' shared sign-in code (session cookie, CSRF token, sign-out), put
/// where each page has [`SESSION_JS_SLOT`].
pub(crate) const SESSION_JS: &str = include_str!("session.js");
pub(crate) const SESSION_JS_SLOT: &str = "/*__SESSION_JS__*/";
static DASHBOARD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    include_str!("dashboard.html").replace(SESSION_JS_SLOT, SESSION_JS)
});

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD.as_str())
}

async fn openapi_doc(State(s): State<AppState>) -> Json<Value> {
    let _ = s;
    Json(openapi::document())
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    #[default]
    Json,
    Csv,
    Xlsx,
    Pdf,
}

impl Format {
    /// A download (CSV, XLSX or PDF) rather than a JSON page.
    pub(crate) fn is_file(self) -> bool {
        self != Format::Json
    }
}

/// `items` as a file in `format` (CSV, XLSX or PDF) with the given columns.
pub(crate) fn file_response(
    format: Format,
    name: &str,
    columns: &[&str],
    items: &[Value],
) -> Result<Response, ApiError> {
    match format {
        Format::Xlsx => xlsx_response(name, columns, items),
        Format::Pdf => crate::pdf::response(name, columns, items),
        Format::Csv | Format::Json => csv_response(name, columns, items),
    }
}

/// Longest text an XLSX cell holds.
const XLSX_CELL_MAX: usize = 32_767;

/// `items` as one worksheet named `name`: a bold, frozen header row, numbers
/// and booleans as such, text as text (never a formula), nested values as
/// JSON, columns fitted to their contents.
fn xlsx_response(name: &str, columns: &[&str], items: &[Value]) -> Result<Response, ApiError> {
    use rust_xlsxwriter::{Format as Style, Workbook};
    let fail = |e: rust_xlsxwriter::XlsxError| ApiError::internal(format!("writing XLSX: {e}"));
    let cell_text = |s: &str| -> String {
        if s.chars().count() <= XLSX_CELL_MAX {
            s.to_string()
        } else {
            s.chars().take(XLSX_CELL_MAX).collect()
        }
    };
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let sheet: String = name
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
        .take(31)
        .collect();
    ws.set_name(sheet).map_err(fail)?;
    let bold = Style::new().set_bold();
    for (c, col) in columns.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *col, &bold)
            .map_err(fail)?;
    }
    for (r, it) in items.iter().enumerate() {
        let row = r as u32 + 1;
        for (c, col) in columns.iter().enumerate() {
            let c = c as u16;
            match it.get(*col) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => {
                    ws.write_string(row, c, cell_text(s)).map_err(fail)?;
                }
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(f) if f.is_finite() => {
                        ws.write_number(row, c, f).map_err(fail)?;
                    }
                    _ => {
                        ws.write_string(row, c, n.to_string()).map_err(fail)?;
                    }
                },
                Some(Value::Bool(b)) => {
                    ws.write_boolean(row, c, *b).map_err(fail)?;
                }
                Some(v) => {
                    ws.write_string(row, c, cell_text(&v.to_string()))
                        .map_err(fail)?;
                }
            }
        }
    }
    ws.set_freeze_panes(1, 0).map_err(fail)?;
    ws.autofit();
    let body = wb.save_to_buffer().map_err(fail)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.xlsx\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `items` as CSV with the given columns (nested values as JSON), UTF-8 with a
/// BOM so spreadsheet programs read Chinese correctly.
fn csv_response(name: &str, columns: &[&str], items: &[Value]) -> Result<Response, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| ApiError::internal(format!("writing CSV: {e}"));
    w.write_record(columns).map_err(fail)?;
    for it in items {
        let rec: Vec<String> = columns
            .iter()
            .map(|c| match it.get(*c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            })
            .collect();
        w.write_record(&rec).map_err(fail)?;
    }
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend(
        w.into_inner()
            .map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

async fn me(State(s): State<AppState>, caller: DeskCaller) -> Json<Value> {
    Json(
        json!({"tenant": &*s.tenant, "role": caller.role, "actor": caller.actor, "agent": caller.agent}),
    )
}

async fn overview(State(s): State<AppState>, _c: Caller) -> Result<Json<Value>, ApiError> {
    let counts = s.store.event_counts().await?;
    let events: i64 = counts.iter().map(|(_, n)| n).sum();
    Ok(Json(json!({
        "customers": s.store.customer_count().await?,
        "dnc": s.store.dnc_count().await?,
        "segments": s.store.segment_defs().await?.len(),
        "events": events,
        "event_counts": counts.into_iter().map(|(t, n)| json!({"type": t, "count": n})).collect::<Vec<_>>(),
        "webhooks": s.store.webhooks().await?.len(),
        "span": s.store.kpi_span().await?.map(|(a, b)| json!({"first_hour": a, "last_hour": b})),
    })))
}

fn customer_json(c: &Customer, reveal: bool) -> Value {
    json!({
        "id": c.id.0,
        "phone": if reveal { c.phone.clone() } else { mask_phone(&c.phone) },
        "name": c.name.as_ref().map(|n| if reveal { n.clone() } else { mask_name(n) }),
        "region": c.region,
        "tz": c.tz,
        "segment": c.segment,
        "attrs": c.attrs,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "revealed": reveal,
    })
}

#[derive(Deserialize)]
struct RevealQ {
    #[serde(default)]
    reveal: bool,
    reason: Option<String>,
}

/// Check the caller may reveal and log the reveal before anything is shown.
async fn reveal(
    s: &AppState,
    caller: &Caller,
    q: &RevealQ,
    ids: &[CustomerId],
) -> Result<bool, ApiError> {
    if !q.reveal {
        return Ok(false);
    }
    if caller.role < Role::Operator {
        return Err(ApiError::forbidden(
            "reveal_forbidden",
            "analysts see personal data masked only; drop reveal=true or use an operator or admin key (every reveal is audited)",
        ));
    }
    if !ids.is_empty() {
        let reason = q.reason.clone().unwrap_or_else(|| "api reveal".into());
        s.store
            .record_reveal(&caller.actor, "phone,name", ids, &reason, Utc::now())
            .await?;
    }
    Ok(true)
}

#[derive(Deserialize)]
struct ListCustomersQ {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
    #[serde(default)]
    reveal: bool,
    reason: Option<String>,
    #[serde(default)]
    format: Format,
}

pub(crate) fn limit(l: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match l.unwrap_or(default) {
        l if (1..=max).contains(&l) => Ok(l),
        l => Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and {max}, got {l}"),
        )),
    }
}

async fn list_customers(
    State(s): State<AppState>,
    caller: Caller,
    Q(q): Q<ListCustomersQ>,
) -> Result<Response, ApiError> {
    let max = if q.format.is_file() { 100_000 } else { 1000 };
    let lim = limit(q.limit, if q.format.is_file() { max } else { 50 }, max)?;
    if q.reveal && caller.role < Role::Operator {
        // Refuse before reading anything.
        reveal(
            &s,
            &caller,
            &RevealQ {
                reveal: true,
                reason: None,
            },
            &[],
        )
        .await?;
    }
    let list = s.store.customers(q.after, lim).await?;
    let ids: Vec<CustomerId> = list.iter().map(|c| c.id).collect();
    let shown = reveal(
        &s,
        &caller,
        &RevealQ {
            reveal: q.reveal,
            reason: q.reason.clone(),
        },
        &ids,
    )
    .await?;
    let items: Vec<Value> = list.iter().map(|c| customer_json(c, shown)).collect();
    if q.format.is_file() {
        return file_response(
            q.format,
            "customers",
            &[
                "id",
                "phone",
                "name",
                "region",
                "tz",
                "segment",
                "attrs",
                "created_at",
                "updated_at",
            ],
            &items,
        );
    }
    let next = if list.len() as i64 == lim {
        list.last().map(|c| c.id.0)
    } else {
        None
    };
    Ok(
        Json(json!({"items": items, "next_after": next, "total": s.store.customer_count().await?}))
            .into_response(),
    )
}

async fn show_customer(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Q(q): Q<RevealQ>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("customer id must be an integer, got '{id}'"),
        )
    })?;
    if q.reveal && caller.role < Role::Operator {
        reveal(&s, &caller, &q, &[]).await?;
    }
    let c = s.store.customer(CustomerId(id)).await?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_customer",
            format!("no customer with id {id}; list them at /api/customers"),
        )
    })?;
    let shown = reveal(&s, &caller, &q, &[c.id]).await?;
    let mut v = customer_json(&c, shown);
    let events: Vec<Value> = s
        .store
        .customer_events(c.id, 100)
        .await?
        .iter()
        .map(|(id, e)| event_json(*id, e))
        .collect();
    v["events"] = Value::Array(events);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct FormatQ {
    #[serde(default)]
    format: Format,
}

async fn segments(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<FormatQ>,
) -> Result<Response, ApiError> {
    let counts = s.store.segment_counts().await?;
    let count_of = |name: Option<&str>| {
        counts
            .iter()
            .find(|(n, _)| n.as_deref() == name)
            .map(|(_, c)| *c)
            .unwrap_or(0)
    };
    let defs = s.store.segment_defs().await?;
    let mut items: Vec<Value> = defs
        .iter()
        .map(|d| {
            json!({"name": d.name, "description": d.description, "rule": d.expr, "priority": d.priority, "customers": count_of(Some(&d.name))})
        })
        .collect();
    // Segments customers carry that no stored definition names (older rule files), and none.
    for (name, n) in &counts {
        if name
            .as_ref()
            .is_some_and(|n| !defs.iter().any(|d| &d.name == n))
        {
            items.push(json!({"name": name, "description": null, "rule": null, "priority": null, "customers": n}));
        }
    }
    if q.format.is_file() {
        return file_response(
            q.format,
            "segments",
            &["name", "description", "rule", "priority", "customers"],
            &items,
        );
    }
    Ok(Json(json!({"items": items, "unsegmented": count_of(None)})).into_response())
}

#[derive(Deserialize)]
struct DncListQ {
    scope: Option<String>,
    #[serde(default)]
    after: usize,
    limit: Option<i64>,
    #[serde(default)]
    format: Format,
}

async fn list_dnc(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<DncListQ>,
) -> Result<Response, ApiError> {
    let all = s.store.dnc_list(q.scope.as_deref()).await?;
    let lim = limit(
        q.limit,
        if q.format.is_file() { 1_000_000 } else { 100 },
        1_000_000,
    )? as usize;
    let page: Vec<Value> = all
        .iter()
        .skip(q.after)
        .take(lim)
        .map(|e| json!({"phone": mask_phone(&e.phone), "scope": e.scope, "reason": e.reason, "added_at": e.added_at}))
        .collect();
    if q.format.is_file() {
        return file_response(
            q.format,
            "dnc",
            &["phone", "scope", "reason", "added_at"],
            &page,
        );
    }
    let next = (q.after + page.len() < all.len()).then_some(q.after + page.len());
    Ok(Json(json!({"items": page, "next_after": next, "total": all.len()})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DncAdd {
    phone: String,
    #[serde(default = "global")]
    scope: String,
    #[serde(default)]
    reason: String,
    #[serde(default = "cn")]
    region: String,
}

fn global() -> String {
    "global".into()
}

fn cn() -> String {
    "CN".into()
}

fn normalize(phone: &str, region: &str) -> Result<String, ApiError> {
    waihu_phone::normalize_phone(phone, region)
        .map(|(e164, _)| e164)
        .map_err(|why| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_phone",
                format!("phone: {why}; give a number with country code (+86...) or set region"),
            )
        })
}

impl DncAdd {
    /// The number in E.164.
    fn validate(&self) -> Result<String, ApiError> {
        normalize(&self.phone, &self.region)
    }
}

async fn add_dnc(
    State(s): State<AppState>,
    caller: Caller,
    J(b): J<DncAdd>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator, "editing the do-not-call list")?;
    let e164 = b.validate()?;
    let added = s
        .store
        .dnc_add(&e164, &b.scope, &b.reason, Utc::now())
        .await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"phone": mask_phone(&e164), "scope": b.scope, "added": added})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct DncRemoveQ {
    #[serde(default = "global")]
    scope: String,
    #[serde(default = "cn")]
    region: String,
}

async fn remove_dnc(
    State(s): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
    Q(q): Q<DncRemoveQ>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "editing the do-not-call list")?;
    let e164 = normalize(&phone, &q.region)?;
    if !s.store.dnc_remove(&e164, &q.scope, Utc::now()).await? {
        return Err(ApiError::not_found(
            "not_listed",
            format!(
                "{} is not on the '{}' list; check the number and scope",
                mask_phone(&e164),
                q.scope
            ),
        ));
    }
    Ok(Json(
        json!({"phone": mask_phone(&e164), "scope": q.scope, "removed": true}),
    ))
}

pub(crate) fn event_json(id: i64, e: &Event) -> Value {
    let mut detail = serde_json::to_value(&e.kind).unwrap_or(Value::Null);
    if let Some(m) = detail.as_object_mut() {
        m.remove("type");
    }
    json!({
        "id": id,
        "at": e.at,
        "type": e.kind.type_name(),
        "customer": e.customer.map(|c| c.0),
        "campaign": e.campaign.map(|c| c.0),
        "call": e.call,
        "detail": detail,
    })
}

#[derive(Deserialize)]
struct EventsQ {
    #[serde(rename = "type")]
    kind: Option<String>,
    after: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
    #[serde(default)]
    format: Format,
}

async fn list_events(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<EventsQ>,
) -> Result<Response, ApiError> {
    let max = if q.format.is_file() { 100_000 } else { 1000 };
    let lim = limit(q.limit, if q.format.is_file() { max } else { 50 }, max)?;
    if q.after.is_some() && q.before.is_some() {
        return Err(ApiError::bad_request(
            "bad_query",
            "give either after (oldest first) or before (newest first), not both",
        ));
    }
    let (evs, asc) = match q.after {
        Some(after) => {
            let types: Vec<String> = q.kind.iter().cloned().collect();
            (s.store.events_of_types(&types, after, lim).await?, true)
        }
        None => (
            s.store
                .events_desc(q.kind.as_deref(), q.before, lim)
                .await?,
            false,
        ),
    };
    let items: Vec<Value> = evs.iter().map(|(id, e)| event_json(*id, e)).collect();
    if q.format.is_file() {
        return file_response(
            q.format,
            "events",
            &["id", "at", "type", "customer", "campaign", "call", "detail"],
            &items,
        );
    }
    let full = evs.len() as i64 == lim;
    let cursor = evs.last().map(|(id, _)| *id).filter(|_| full);
    let next = if asc {
        json!({"after": cursor})
    } else {
        json!({"before": cursor})
    };
    Ok(Json(json!({"items": items, "next": next})).into_response())
}

#[derive(Deserialize)]
pub(crate) struct RangeQ {
    from: Option<String>,
    to: Option<String>,
    pub(crate) campaign: Option<i64>,
    #[serde(default)]
    format: Format,
}

pub(crate) fn parse_day(field: &str, s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc).date_naive()))
        .map_err(|_| {
            ApiError::bad_request(
                "bad_date",
                format!("{field}: '{s}' is not a date; use YYYY-MM-DD or RFC 3339"),
            )
        })
}

pub(crate) fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

/// Inclusive day range: the query's, else the 30 days ending at the newest data.
async fn day_range(s: &AppState, q: &RangeQ) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let last = s.store.kpi_span().await?.map(|(_, last)| last.date_naive());
    range_ending(last, q)
}

/// The query's inclusive day range, else the 30 days ending on `last` (the newest day with
/// data; today when there is none).
pub(crate) fn range_ending(
    last: Option<NaiveDate>,
    q: &RangeQ,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let last = last.unwrap_or_else(|| Utc::now().date_naive());
    let to = match &q.to {
        Some(t) => parse_day("to", t)?,
        None => last,
    };
    let from = match &q.from {
        Some(f) => parse_day("from", f)?,
        None => to.checked_sub_days(Days::new(29)).unwrap_or(to),
    };
    if from > to {
        return Err(ApiError::bad_request(
            "bad_range",
            format!("from ({from}) is after to ({to}); swap them"),
        ));
    }
    if (to - from).num_days() > 3660 {
        return Err(ApiError::bad_request(
            "bad_range",
            "the range is longer than ten years; narrow it",
        ));
    }
    Ok((from, to))
}

async fn kpis(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<RangeQ>,
) -> Result<Response, ApiError> {
    let (from, to) = day_range(&s, &q).await?;
    let (start, end) = day_bounds(from, to);
    let rows = s
        .store
        .kpi_rollup(start, end, q.campaign.map(CampaignId))
        .await?;
    kpi_response(&s, &q, from, to, &rows)
}

/// The instants an inclusive day range covers: `[from 00:00, the day after to 00:00)` UTC.
pub(crate) fn day_bounds(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        midnight(from),
        midnight(to.checked_add_days(Days::new(1)).unwrap_or(to)),
    )
}

/// `/api/kpis` (and `/api/cluster/kpis`) from KPI cells: JSON, or a CSV/XLSX file per day.
pub(crate) fn kpi_response(
    s: &AppState,
    q: &RangeQ,
    from: NaiveDate,
    to: NaiveDate,
    rows: &[waihu_core::kpi::KpiRow],
) -> Result<Response, ApiError> {
    let (total, days) = kpi::fold(rows, from, to, &s.cfg.conversion_outcomes);
    if q.format.is_file() {
        let items: Vec<Value> = days
            .iter()
            .map(|d| {
                let mut m = serde_json::to_value(d).unwrap_or(Value::Null);
                if let Some(obj) = m.as_object_mut() {
                    for (k, n) in &d.kpis.outcomes {
                        obj.insert(format!("outcome_{k}"), json!(n));
                    }
                }
                m
            })
            .collect();
        let mut cols: Vec<String> = [
            "day",
            "attempts",
            "connects",
            "connect_rate",
            "answered",
            "abandoned",
            "abandon_rate",
            "aht_s",
            "conversations",
            "conversions",
            "conversion_rate",
        ]
        .map(String::from)
        .to_vec();
        cols.extend(total.outcomes.keys().map(|k| format!("outcome_{k}")));
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        return file_response(q.format, "kpis", &cols, &items);
    }
    Ok(Json(json!({
        "from": from,
        "to": to,
        "campaign": q.campaign,
        "conversion_outcomes": s.cfg.conversion_outcomes,
        "totals": total,
        "days": days,
    }))
    .into_response())
}

async fn heatmap(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<RangeQ>,
) -> Result<Response, ApiError> {
    let (from, to) = day_range(&s, &q).await?;
    let rows = s
        .store
        .local_hour_rollup(from, to, q.campaign.map(CampaignId))
        .await?;
    let cells = kpi::heat(&rows);
    let items: Vec<Value> = cells
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .collect();
    if q.format.is_file() {
        return file_response(
            q.format,
            "heatmap",
            &["weekday", "hour", "attempts", "connects", "answer_rate"],
            &items,
        );
    }
    Ok(
        Json(json!({"from": from, "to": to, "campaign": q.campaign, "cells": items}))
            .into_response(),
    )
}

async fn list_webhooks(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin, "managing webhooks")?;
    Ok(Json(json!({"items": s.store.webhooks().await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookAdd {
    url: String,
    #[serde(default)]
    events: Vec<String>,
    secret: Option<String>,
}

impl WebhookAdd {
    /// The URL and the secret (given, or a fresh one).
    fn validate(&self) -> Result<(reqwest::Url, String), ApiError> {
        let b = self;
        let url = reqwest::Url::parse(&b.url).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_url",
                format!("url: {e}; give an absolute http(s) URL"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_url",
                "url: only http and https are supported",
            ));
        }
        for t in &b.events {
            if t.is_empty() || !t.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_event_type",
                format!("events: '{t}' is not an event type (snake_case, e.g. attempt_ended); omit events for all"),
            ));
            }
        }
        let secret = match b.secret.clone() {
            Some(sec) if sec.len() < 16 => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "weak_secret",
                    "secret: use at least 16 characters, or omit it to get one",
                ))
            }
            Some(sec) => sec,
            None => auth::generate_secret(),
        };
        Ok((url, secret))
    }
}

async fn add_webhook(
    State(s): State<AppState>,
    caller: Caller,
    J(b): J<WebhookAdd>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin, "managing webhooks")?;
    let (url, secret) = b.validate()?;
    let hook = s
        .store
        .webhook_add(url.as_str(), &secret, &b.events, Utc::now())
        .await?;
    let mut v = serde_json::to_value(&hook).map_err(|e| ApiError::internal(e.to_string()))?;
    // Shown once: the receiver needs it to verify X-Waihu-Signature.
    v["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub(crate) fn int_id(what: &str, id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("{what} id must be an integer, got '{id}'"),
        )
    })
}

async fn delete_webhook(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin, "managing webhooks")?;
    let id = int_id("webhook", &id)?;
    if !s.store.webhook_delete(id).await? {
        return Err(ApiError::not_found(
            "no_such_webhook",
            format!("no webhook {id}; list them at /api/webhooks"),
        ));
    }
    Ok(Json(json!({"id": id, "deleted": true})))
}

async fn webhook_deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin, "managing webhooks")?;
    let id = int_id("webhook", &id)?;
    if !s.store.webhooks().await?.iter().any(|w| w.id == id) {
        return Err(ApiError::not_found(
            "no_such_webhook",
            format!("no webhook {id}; list them at /api/webhooks"),
        ));
    }
    Ok(Json(
        json!({"items": s.store.webhook_deliveries(id, 100).await?}),
    ))
}

async fn list_keys(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin, "managing API keys")?;
    Ok(Json(json!({"items": s.store.api_keys().await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyAdd {
    name: String,
    role: String,
    /// The agent id an `agent` key acts as.
    #[serde(default)]
    agent: Option<String>,
}

impl KeyAdd {
    fn validate(&self) -> Result<Role, ApiError> {
        let b = self;
        let role = Role::parse(&b.role).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_role",
                format!(
                    "role: '{}' is not admin, operator, analyst or agent",
                    b.role
                ),
            )
        })?;
        match (role, b.agent.as_deref().map(str::trim)) {
            (Role::Agent, Some(a)) if !a.is_empty() => {}
            (Role::Agent, _) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_agent",
                    "agent: an agent key needs the agent id it acts as (an id of the agents file)",
                ))
            }
            (_, Some(_)) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_agent",
                    "agent: only keys with role agent are bound to an agent",
                ))
            }
            _ => {}
        }
        if b.name.trim().is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_name",
                "name: give the key a name (who or what uses it)",
            ));
        }
        Ok(role)
    }
}

async fn create_key(
    State(s): State<AppState>,
    caller: Caller,
    J(b): J<KeyAdd>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin, "managing API keys")?;
    let role = b.validate()?;
    let agent = b.agent.as_deref().map(str::trim);
    let (key, rec) = auth::create_key_for(&s.store, b.name.trim(), role, agent, Utc::now()).await?;
    let mut v = serde_json::to_value(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
    v["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn revoke_key(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin, "managing API keys")?;
    let id = int_id("key", &id)?;
    if !s.store.api_key_revoke(id, Utc::now()).await? {
        return Err(ApiError::not_found(
            "no_such_key",
            format!("no unrevoked key {id}; list them at /api/keys"),
        ));
    }
    Ok(Json(json!({"id": id, "revoked": true})))
}

#[cfg(test)]
mod body_tests {
    use super::check_json_body;

    fn code(route: &str, body: &[u8]) -> &'static str {
        check_json_body(route, body).unwrap_err().code
    }

    #[test]
    fn json_bodies_are_checked_as_the_handlers_check_them() {
        assert!(check_json_body("POST /api/dnc", br#"{"phone":"13590639690"}"#).is_ok());
        assert_eq!(code("POST /api/dnc", br#"{"phone":"12"}"#), "invalid_phone");
        assert_eq!(code("POST /api/dnc", br#"{"phone":"1","x":1}"#), "bad_body");
        assert_eq!(
            code("POST /api/keys", br#"{"name":"a","role":"root"}"#),
            "invalid_role"
        );
        assert_eq!(
            code("POST /api/keys", br#"{"name":" ","role":"admin"}"#),
            "invalid_name"
        );
        assert_eq!(code("POST /api/keys", b"{"), "bad_body");
        assert_eq!(
            code("POST /api/webhooks", br#"{"url":"ftp://h/"}"#),
            "invalid_url"
        );
        assert_eq!(
            code(
                "POST /api/webhooks",
                br#"{"url":"http://h/","secret":"short"}"#
            ),
            "weak_secret"
        );
        let spec = include_str!("../../../examples/campaign-us.yaml");
        let body = serde_json::json!({ "spec": spec }).to_string();
        assert!(check_json_body("POST /api/campaigns", body.as_bytes()).is_ok());
        assert_eq!(
            code("POST /api/campaigns", br#"{"spec":"name: ["}"#),
            "invalid_campaign"
        );
        assert!(
            check_json_body("POST /api/segments/preview", br#"{"rules":"segments: ["}"#).is_ok()
        );
        assert_eq!(
            code("POST /api/segments/preview", br#"{"rule":"x"}"#),
            "bad_body"
        );
        assert!(check_json_body("POST /api/scripts/validate", br#"{"yaml":"states: {"}"#).is_ok());
        assert_eq!(
            code("PUT /api/scripts/{name}", br#"{"yaml":1}"#),
            "bad_body"
        );
        assert_eq!(code("GET /api/dnc", b"{}"), "no_such_route");
    }
}
