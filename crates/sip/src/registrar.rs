//! A SIP registrar (RFC 3261 §10.3) with digest authentication (RFC 7616 / RFC 8760),
//! **sans-IO**: time is an input (`now`, milliseconds on a monotonic clock the caller
//! chooses), a request is an input, and the output is a [`Reply`] (status, reason and the
//! headers to add; the caller's transaction layer builds the response around it).
//!
//! - **Challenge**: a REGISTER without credentials for our realm gets `401` with one
//!   `WWW-Authenticate: Digest` per configured algorithm (SHA-256 first, then MD5 for old
//!   clients), `qop="auth"`.
//! - **Nonces** are `hex(timestamp ms) ‖ hex(counter) ‖ hex(HMAC-SHA256(secret, timestamp ‖
//!   counter ‖ realm))[..32]` (the counter makes two challenges of the same millisecond differ):
//!   the registrar recognises its own and knows their age without storing them. A nonce
//!   older than `nonce_ttl_ms` with a correct response → `401 … stale=true` (the client
//!   answers the new nonce without asking its user). The highest `nc` seen per nonce is
//!   kept (only for nonces still fresh): a repeated or lower `nc` is a replay and gets a
//!   fresh `stale=true` challenge.
//! - **Failure is final**: a response computed with a wrong password, for an unknown user,
//!   or for an address of record that is not the user's own, gets `403` (not another `401`,
//!   so a misconfigured phone does not loop).
//! - **Bindings**: the address of record is the To URI's user part (one domain: waihu's);
//!   contacts with their expiry, `Expires: 0` / `;expires=0` and `*` removal, `423 Interval
//!   Too Brief` with `Min-Expires` below `min_expires`, lifetimes above `max_expires`
//!   shortened, the Call-ID / CSeq ordering of §10.3 step 7 (an older or repeated CSeq on the
//!   same Call-ID aborts the whole request with `500`), all-or-nothing updates. `200` lists
//!   every live contact with its remaining `expires`.
//! - The source address of each REGISTER is recorded beside the binding. Calls go to the
//!   Contact as given (right on loopback and LANs); a NATed phone would need the source
//!   address instead (RFC 5626 outbound), which is not done.
//!
//! Nothing here panics on outside input (property tests over arbitrary and mutated
//! REGISTER requests).

use std::collections::HashMap;
use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::auth::Algorithm;
use crate::msg::{split_comma, NameAddr, Request, SipUri};

/// Milliseconds on the caller's monotonic clock.
pub type Ms = u64;

/// A user's secret: the password, or the precomputed `HA1 = H(user:realm:password)` per
/// algorithm (lowercase hex), so the password itself need not be held.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Password(_) => "Secret::Password(***)",
            Secret::Ha1 { .. } => "Secret::Ha1(***)",
        })
    }
}

/// Registrar settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// The digest realm (`waihu` by default).
    pub realm: String,
    /// Shortest lifetime accepted (shorter → 423 Interval Too Brief), seconds.
    pub min_expires: u32,
    /// Longest lifetime granted (longer is shortened), seconds.
    pub max_expires: u32,
    /// Lifetime when the request names none, seconds.
    pub default_expires: u32,
    /// How long a nonce is fresh, milliseconds.
    pub nonce_ttl_ms: Ms,
    /// Algorithms offered, preferred first (`SHA-256`, `MD5`; `-sess` variants are not offered).
    pub algorithms: Vec<Algorithm>,
    /// Contacts one address of record may hold.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            realm: "waihu".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_ttl_ms: 300_000,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            max_contacts: 10,
        }
    }
}

/// One contact bound to an address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the phone sent it (what a call is placed to).
    pub contact: String,
    pub expires_at: Ms,
    pub registered_at: Ms,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from (recorded; not used for routing, see the module doc).
    pub source: SocketAddr,
}

/// What to answer: the caller builds the response (Via, From, To with a tag, Call-ID,
/// CSeq) and adds `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    fn new(status: u16, reason: &str) -> Reply {
        Reply {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Digest credentials from an `Authorization` header.
#[derive(Debug, Default)]
struct Creds {
    username: String,
    realm: String,
    nonce: String,
    uri: String,
    response: String,
    algorithm: Option<String>,
    qop: Option<String>,
    nc: Option<String>,
    cnonce: Option<String>,
}

fn parse_creds(value: &str) -> Option<Creds> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut c = Creds::default();
    for p in split_comma(rest) {
        let Some((n, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v)
            .replace("\\\"", "\"");
        match n.trim().to_ascii_lowercase().as_str() {
            "username" => c.username = v,
            "realm" => c.realm = v,
            "nonce" => c.nonce = v,
            "uri" => c.uri = v,
            "response" => c.response = v.to_ascii_lowercase(),
            "algorithm" => c.algorithm = Some(v),
            "qop" => c.qop = Some(v),
            "nc" => c.nc = Some(v),
            "cnonce" => c.cnonce = Some(v),
            _ => {}
        }
    }
    Some(c)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hash(alg: Algorithm, data: &str) -> String {
    match alg {
        Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data.as_bytes())),
        Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data.as_bytes())),
    }
}

/// Equality in time independent of where the first difference is.
fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A contact's identity for comparison (RFC 3261 §19.1.4, simplified: scheme, user, host
/// case-insensitively, port with its default, transport).
fn contact_key(u: &SipUri) -> String {
    let port = u
        .port
        .unwrap_or(if u.scheme == "sips" { 5061 } else { 5060 });
    format!(
        "{}:{}@{}:{port};{}",
        u.scheme,
        u.user.as_deref().unwrap_or(""),
        u.host.to_ascii_lowercase(),
        u.param("transport").unwrap_or("udp").to_ascii_lowercase()
    )
}

type HmacSha256 = Hmac<Sha256>;

/// The registrar: users, their bindings, and the nonce counters.
pub struct Registrar {
    cfg: RegistrarConfig,
    secret: [u8; 32],
    users: HashMap<String, Secret>,
    bindings: HashMap<String, Vec<Binding>>,
    /// Highest `nc` used per nonce (only nonces still fresh are kept).
    nc_seen: HashMap<String, (Ms, u32)>,
    /// Challenges issued (part of each nonce).
    minted: u32,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("cfg", &self.cfg)
            .field("users", &self.users.len())
            .field("bindings", &self.bindings)
            .finish_non_exhaustive()
    }
}

impl Registrar {
    /// `secret` keys the nonces (random per process is right: nonces of an earlier process
    /// are then not ours, and the client is challenged afresh); `users` maps a username to
    /// its secret.
    pub fn new(
        cfg: RegistrarConfig,
        secret: [u8; 32],
        users: impl IntoIterator<Item = (String, Secret)>,
    ) -> Registrar {
        Registrar {
            cfg,
            secret,
            users: users.into_iter().collect(),
            bindings: HashMap::new(),
            nc_seen: HashMap::new(),
            minted: 0,
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.cfg
    }

    /// A new nonce minted at `now`.
    pub fn nonce(&mut self, now: Ms) -> String {
        self.minted = self.minted.wrapping_add(1);
        let n = self.minted;
        format!("{now:016x}{n:08x}{}", self.nonce_mac(now, n))
    }

    fn nonce_mac(&self, ts: Ms, n: u32) -> String {
        let Ok(mut m) = <HmacSha256 as Mac>::new_from_slice(&self.secret) else {
            return String::new(); // unreachable: HMAC takes keys of any length
        };
        m.update(&ts.to_be_bytes());
        m.update(&n.to_be_bytes());
        m.update(self.cfg.realm.as_bytes());
        hex(&m.finalize().into_bytes()[..16])
    }

    /// The time a nonce was minted, if it is ours (and not from the future).
    fn nonce_time(&self, nonce: &str, now: Ms) -> Option<Ms> {
        if nonce.len() != 56 || !nonce.is_ascii() {
            return None;
        }
        let ts = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let n = u32::from_str_radix(&nonce[16..24], 16).ok()?;
        let mac = self.nonce_mac(ts, n);
        (ts <= now && !mac.is_empty() && ct_eq(&nonce[24..], &mac)).then_some(ts)
    }

    fn challenge(&mut self, now: Ms, stale: bool) -> Reply {
        let nonce = self.nonce(now);
        let mut r = Reply::new(401, "Unauthorized");
        for alg in &self.cfg.algorithms {
            let mut v = format!(
                "Digest realm=\"{}\", nonce=\"{nonce}\", qop=\"auth\", algorithm={}",
                self.cfg.realm,
                alg.as_str()
            );
            if stale {
                v.push_str(", stale=true");
            }
            r = r.header("WWW-Authenticate", v);
        }
        r
    }

    fn ha1(&self, user: &str, alg: Algorithm) -> Option<String> {
        match self.users.get(user)? {
            Secret::Password(p) => Some(hash(alg, &format!("{user}:{}:{p}", self.cfg.realm))),
            Secret::Ha1 { md5, sha256 } => match alg {
                Algorithm::Md5 | Algorithm::Md5Sess => md5.clone(),
                Algorithm::Sha256 | Algorithm::Sha256Sess => sha256.clone(),
            }
            .map(|h| h.to_ascii_lowercase()),
        }
    }

    /// Answers one REGISTER received from `source` at `now`.
    pub fn handle(&mut self, req: &Request, source: SocketAddr, now: Ms) -> Reply {
        if !req.method.eq_ignore_ascii_case("REGISTER") {
            return Reply::new(405, "Method Not Allowed").header("Allow", "REGISTER");
        }
        self.prune_nonces(now);
        let Some(aor) = req
            .headers
            .get("To")
            .and_then(NameAddr::parse)
            .and_then(|n| SipUri::parse(&n.uri))
            .filter(|u| u.scheme == "sip" || u.scheme == "sips")
        else {
            return Reply::new(400, "Bad Request (To)");
        };
        let Some(aor_user) = aor.user.clone().filter(|u| !u.is_empty()) else {
            return Reply::new(404, "Not Found");
        };
        // Credentials for our realm, if any.
        let creds = req
            .headers
            .get_lines("Authorization")
            .into_iter()
            .filter_map(parse_creds)
            .find(|c| c.realm == self.cfg.realm);
        let Some(c) = creds else {
            return self.challenge(now, false);
        };
        let alg = match c.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => match self
                .cfg
                .algorithms
                .iter()
                .find(|x| x.as_str().eq_ignore_ascii_case(a))
            {
                Some(x) => *x,
                None => return self.challenge(now, false),
            },
        };
        if !self.cfg.algorithms.contains(&alg) {
            return self.challenge(now, false);
        }
        let Some(minted) = self.nonce_time(&c.nonce, now) else {
            // Not a nonce of ours (another process's, or forged): challenge afresh.
            return self.challenge(now, false);
        };
        if c.username.is_empty() || c.response.is_empty() || c.uri.is_empty() {
            return Reply::new(400, "Bad Request (Authorization)");
        }
        // qop=auth was offered; RFC 7616 requires the client to use it.
        let (Some(qop), Some(nc_s), Some(cnonce)) = (&c.qop, &c.nc, &c.cnonce) else {
            return Reply::new(403, "Forbidden (digest without qop=auth)");
        };
        if !qop.eq_ignore_ascii_case("auth") {
            return Reply::new(403, "Forbidden (digest without qop=auth)");
        }
        let Some(nc) = (nc_s.len() == 8)
            .then(|| u32::from_str_radix(nc_s, 16).ok())
            .flatten()
        else {
            return Reply::new(400, "Bad Request (nc)");
        };
        let Some(ha1) = self.ha1(&c.username, alg) else {
            return Reply::new(403, "Forbidden");
        };
        let ha2 = hash(alg, &format!("{}:{}", req.method, c.uri));
        let expected = hash(
            alg,
            &format!("{ha1}:{}:{nc_s}:{cnonce}:auth:{ha2}", c.nonce),
        );
        if !ct_eq(&expected, &c.response) {
            return Reply::new(403, "Forbidden");
        }
        if c.uri != req.uri {
            return Reply::new(400, "Bad Request (digest uri)");
        }
        if now.saturating_sub(minted) > self.cfg.nonce_ttl_ms {
            return self.challenge(now, true);
        }
        match self.nc_seen.get(&c.nonce) {
            Some(&(_, last)) if nc <= last => return self.challenge(now, true),
            _ => {
                self.nc_seen.insert(c.nonce.clone(), (minted, nc));
            }
        }
        if aor_user != c.username {
            return Reply::new(403, "Forbidden (not your address of record)");
        }
        self.update_bindings(req, &aor_user, source, now)
    }

    fn prune_nonces(&mut self, now: Ms) {
        let ttl = self.cfg.nonce_ttl_ms;
        self.nc_seen
            .retain(|_, (minted, _)| now.saturating_sub(*minted) <= ttl);
    }

    fn update_bindings(&mut self, req: &Request, aor: &str, source: SocketAddr, now: Ms) -> Reply {
        let call_id = req.headers.get("Call-ID").unwrap_or("").trim().to_string();
        let Some(cseq) = req
            .headers
            .get("CSeq")
            .and_then(crate::msg::parse_cseq)
            .map(|(n, _)| n)
        else {
            return Reply::new(400, "Bad Request (CSeq)");
        };
        let header_expires = req
            .headers
            .get("Expires")
            .map(|v| v.trim().parse::<u32>().ok());
        let contacts = req.headers.get_all("Contact");
        let mut list: Vec<Binding> = self
            .bindings
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        let out_of_order = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;
        if contacts.iter().any(|c| c.trim() == "*") {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(Some(0)) {
                return Reply::new(400, "Bad Request (Contact: * needs Expires: 0)");
            }
            if list.iter().any(out_of_order) {
                return Reply::new(500, "Server Internal Error (out of order CSeq)");
            }
            list.clear();
        } else {
            let mut changes = Vec::with_capacity(contacts.len());
            for c in &contacts {
                let Some(na) = NameAddr::parse(c) else {
                    return Reply::new(400, "Bad Request (Contact)");
                };
                let Some(uri) =
                    SipUri::parse(&na.uri).filter(|u| u.scheme == "sip" || u.scheme == "sips")
                else {
                    return Reply::new(400, "Bad Request (Contact)");
                };
                let expires = crate::msg::param(&na.params, "expires")
                    .map(|v| v.trim().parse::<u32>().ok())
                    .or(header_expires)
                    .flatten()
                    .unwrap_or(self.cfg.default_expires);
                if expires != 0 && expires < self.cfg.min_expires {
                    return Reply::new(423, "Interval Too Brief")
                        .header("Min-Expires", self.cfg.min_expires.to_string());
                }
                changes.push((
                    contact_key(&uri),
                    na.uri.clone(),
                    expires.min(self.cfg.max_expires),
                ));
            }
            for (key, contact, expires) in changes {
                let at = list.iter().position(|b| {
                    SipUri::parse(&b.contact).is_some_and(|u| contact_key(&u) == key)
                });
                if let Some(i) = at {
                    if out_of_order(&list[i]) {
                        return Reply::new(500, "Server Internal Error (out of order CSeq)");
                    }
                    if expires == 0 {
                        list.remove(i);
                        continue;
                    }
                }
                if expires == 0 {
                    continue;
                }
                let b = Binding {
                    contact,
                    expires_at: now + u64::from(expires) * 1000,
                    registered_at: now,
                    call_id: call_id.clone(),
                    cseq,
                    source,
                };
                match at {
                    Some(i) => list[i] = b,
                    None if list.len() >= self.cfg.max_contacts => {
                        return Reply::new(403, "Forbidden (too many contacts)");
                    }
                    None => list.push(b),
                }
            }
        }
        let mut r = Reply::new(200, "OK");
        for b in &list {
            r = r.header(
                "Contact",
                format!(
                    "<{}>;expires={}",
                    b.contact,
                    (b.expires_at - now).div_ceil(1000)
                ),
            );
        }
        if list.is_empty() {
            self.bindings.remove(aor);
        } else {
            self.bindings.insert(aor.to_string(), list);
        }
        r
    }

    /// The live contacts of `user` at `now`, most recently registered first.
    pub fn lookup(&self, user: &str, now: Ms) -> Vec<Binding> {
        let mut v: Vec<Binding> = self
            .bindings
            .get(user)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.registered_at));
        v
    }

    /// Forgets expired bindings and nonce counters (memory only; lookups already skip them).
    pub fn purge(&mut self, now: Ms) {
        self.prune_nonces(now);
        self.bindings.retain(|_, v| {
            v.retain(|b| b.expires_at > now);
            !v.is_empty()
        });
    }

    /// Number of addresses of record with at least one binding (expired ones included
    /// until [`Registrar::purge`]).
    pub fn aor_count(&self) -> usize {
        self.bindings.len()
    }
}

#[cfg(test)]
mod tests;
