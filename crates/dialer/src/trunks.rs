//! The configured SIP trunks at run time: registrations kept alive, the trunk of each call
//! chosen by [`TrunkSet`] (the planner's choice first, else weighted among the trunks that
//! are up with a free channel and a CPS token), failover of the same call to the next
//! trunk after 503 / 500 / 408 / timeout / transport failure, and the live status written
//! to `<data_dir>/trunks.json` for `waihu trunks status`.
//!
//! Each trunk's next hop is resolved per RFC 3263 (`waihu-resolve`: NAPTR → SRV →
//! A/AAAA). A call tries the trunk's targets in the RFC 2782 order drawn for it, moving
//! to the next target after a failover status before moving to the next trunk; the
//! records are looked up again when their TTL (at least 30 s, at most 5 min) is over,
//! and when a trunk is taken out for a back-off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waihu_campaign::config::Trunk;
use waihu_campaign::trunks::{
    is_failover_status, NumberFormat, RegState, TrunkConfig, TrunkResult, TrunkSet, TrunkSrtp,
    TrunkStatus, TrunkTransport,
};
use waihu_engine::agent::CallAgent;
use waihu_engine::call::{place_call_routed, CallOptions, CallReport, Progress, Route};
use waihu_engine::sip::{tls_client_config, SipEndpoint, TlsPeer};
use waihu_engine::waihu_sip::{Credentials, Registration, SrtpMode, Transport, UaEvent};
use waihu_engine::EngineError;
use waihu_resolve::dns::Resolver;
use waihu_resolve::Resolved;

/// How long a call waits for a trunk with a free channel and CPS token before it fails
/// as congestion.
const WAIT_FOR_TRUNK: Duration = Duration::from_secs(30);

/// A trunk resolved for the wire.
struct Wire {
    /// Host (and port) of the Request-URI and the registrar URI.
    domain: String,
    hops: Mutex<Hops>,
    resolver: Resolver,
    credentials: Option<Credentials>,
    /// How a TLS target's certificate is verified.
    tls: TlsPeer,
    srtp: SrtpMode,
}

/// What DNS said about a trunk's next hop, and when; targets that failed a call lately.
struct Hops {
    resolved: Resolved,
    at: Instant,
    failed: Vec<(SocketAddr, Instant)>,
}

/// How long a target that failed a call is tried after the trunk's others.
const TARGET_BACKOFF: Duration = Duration::from_secs(30);

/// Re-resolution bounds around the records' TTL.
const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(300);

/// The transports a trunk may be resolved to (NAPTR and SRV of others are skipped).
const SUPPORTED: [waihu_resolve::Transport; 3] = waihu_resolve::Transport::ALL;

/// The SIP transport of a resolved target.
fn wire_transport(t: &waihu_resolve::Target) -> Result<Transport, String> {
    Ok(match t.transport {
        waihu_resolve::Transport::Udp => Transport::Udp,
        waihu_resolve::Transport::Tcp => Transport::Tcp,
        waihu_resolve::Transport::Tls => Transport::Tls,
    })
}

/// Resolves a trunk's next hop per RFC 3263 with `resolver` (its `dns_server`, else
/// `WAIHU_DNS_SERVER`, else the system's: see [`trunk_resolver`]).
pub async fn resolve_trunk(t: &TrunkConfig, resolver: &Resolver) -> Result<Resolved, String> {
    let hop = t.next_hop();
    // An IP literal involves no DNS: its port and transport are the configured ones
    // (written, or the defaults the parser filled in: 5060/UDP, 5061 for sips:).
    let literal = hop
        .host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    let transport = (t.dns.transport_given || literal).then_some(match t.transport {
        TrunkTransport::Udp => waihu_resolve::Transport::Udp,
        TrunkTransport::Tcp => waihu_resolve::Transport::Tcp,
        TrunkTransport::Tls => waihu_resolve::Transport::Tls,
    });
    let port = (t.dns.port_given || literal).then_some(hop.port);
    resolver
        .resolve(&hop.host, port, transport, &SUPPORTED)
        .await
        .map_err(|e| {
            format!(
                "trunk {}: resolving {}: {e} / 无法解析中继地址",
                t.name, hop.host
            )
        })
}

/// The resolver of a trunk: `server` (e.g. `--dns-server`), else the trunk's
/// `dns_server`, else `WAIHU_DNS_SERVER`, else the system's.
pub fn trunk_resolver(t: &TrunkConfig, server: Option<SocketAddr>) -> Result<Resolver, String> {
    let server = waihu_resolve::dns::server_from_env(server.or(t.dns.server))?;
    Resolver::new(server).map_err(|e| format!("trunk {}: {e}", t.name))
}

/// The targets of one call on a trunk, in the order to try them (TLS ones dropped with
/// their error kept, for when nothing else is left).
fn usable_targets(resolved: &Resolved, seed: u64) -> Result<Vec<(SocketAddr, Transport)>, String> {
    let mut out = Vec::new();
    let mut refused = None;
    for t in resolved.targets(seed) {
        match wire_transport(&t) {
            Ok(tr) => out.push((t.addr, tr)),
            Err(e) => refused = refused.or(Some(e)),
        }
    }
    if out.is_empty() {
        return Err(refused.unwrap_or_else(|| "no target / 无可用目标".into()));
    }
    Ok(out)
}

/// The trunks of a run.
pub struct TrunkPool {
    set: Mutex<TrunkSet>,
    wire: Vec<Wire>,
    /// The bot's ASR queue gauge and its slots, reported in the status file.
    asr: std::sync::OnceLock<(Arc<std::sync::atomic::AtomicU32>, u32)>,
}

pub use waihu_campaign::trunks::{AsrLoad, StatusEntry, StatusFile};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl TrunkPool {
    /// Resolves every trunk's next hop (RFC 3263: NAPTR → SRV → A/AAAA) and reads its
    /// password.
    pub async fn new(trunks: Vec<TrunkConfig>) -> Result<TrunkPool, String> {
        let mut wire = Vec::with_capacity(trunks.len());
        for t in &trunks {
            let resolver = trunk_resolver(t, None)?;
            let resolved = resolve_trunk(t, &resolver).await?;
            let targets =
                usable_targets(&resolved, 0).map_err(|e| format!("trunk {}: {e}", t.name))?;
            tracing::info!(trunk = %t.name, targets = ?targets, ttl_s = resolved.ttl_s, "trunk resolved");
            let password = t.read_password()?;
            let credentials = match (&t.username, password) {
                (Some(u), p) => Some(Credentials {
                    username: u.clone(),
                    password: p.unwrap_or_default(),
                }),
                (None, _) => None,
            };
            // Every trunk may reach a TLS target (`transport: tls`, or a `SIPS+D2T` NAPTR /
            // `_sips._tcp` SRV). Without a name of its own the proxy's host is checked (the
            // domain RFC 3263 started from), an IP literal against the certificate's IPs.
            let tls = TlsPeer {
                server_name: t
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| t.proxy.host.clone()),
                config: tls_client_config(t.tls_ca.as_deref())
                    .map_err(|e| format!("trunk {}: {e}", t.name))?,
            };
            wire.push(Wire {
                domain: t.proxy.to_string(),
                hops: Mutex::new(Hops {
                    resolved,
                    at: Instant::now(),
                    failed: Vec::new(),
                }),
                resolver,
                credentials,
                tls,
                srtp: match t.srtp {
                    TrunkSrtp::Off => SrtpMode::Off,
                    TrunkSrtp::Optional => SrtpMode::Optional,
                    TrunkSrtp::Mandatory => SrtpMode::Mandatory,
                },
            });
        }
        Ok(TrunkPool {
            set: Mutex::new(TrunkSet::new(trunks, rand_seed())),
            wire,
            asr: std::sync::OnceLock::new(),
        })
    }

    /// The planner's view: one capacity entry per trunk, in the same order, so the
    /// planner's trunk index is this pool's.
    pub fn planner_trunks(&self) -> Vec<Trunk> {
        self.with(|s| {
            s.trunks()
                .iter()
                .map(|t| Trunk {
                    name: t.name.clone(),
                    channels: t.channels,
                    cps: t.cps,
                })
                .collect()
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut TrunkSet) -> R) -> R {
        let mut g = self.set.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn status(&self) -> Vec<TrunkStatus> {
        let now = now_ms();
        self.with(|s| s.status(now))
    }

    /// Registers every trunk that must, keeps the states current, and writes the status
    /// file (when given) every 500 ms. Returns when `ep` is gone.
    pub async fn run(self: Arc<Self>, ep: Arc<SipEndpoint>, status_file: Option<PathBuf>) {
        let trunks: Vec<TrunkConfig> = self.with(|s| s.trunks().to_vec());
        for (i, t) in trunks.iter().enumerate() {
            if !t.register {
                continue;
            }
            let w = &self.wire[i];
            let Some(&(hop, transport)) = self.targets(i).first() else {
                continue;
            };
            self.arm_tls(&ep, i, (hop, transport));
            let reg = Registration {
                registrar: format!("sip:{}", w.domain),
                proxy: Some(hop),
                transport,
                expires: t.expires,
                credentials: w.credentials.clone(),
            };
            let (_id, mut events) = match ep.register(reg).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(trunk = %t.name, error = %e, "cannot register");
                    continue;
                }
            };
            let pool = self.clone();
            let name = t.name.clone();
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    match ev {
                        UaEvent::Registered { expires, .. } if expires > 0 => {
                            tracing::info!(trunk = %name, expires, "registered");
                            pool.with(|s| s.set_registration(i, RegState::Registered, None));
                        }
                        UaEvent::RegistrationFailed { status, .. } => {
                            tracing::warn!(trunk = %name, ?status, "registration failed; retrying with back-off");
                            pool.with(|s| s.set_registration(i, RegState::Failed, status));
                        }
                        _ => {}
                    }
                }
            });
        }
        let pool = self.clone();
        tokio::spawn(async move { pool.keep_resolved().await });
        let Some(path) = status_file else { return };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Err(e) = self.write_status(&path) {
                tracing::debug!(error = %e, "writing the trunk status failed");
            }
        }
    }

    /// The targets of a trunk for one call, in the order to try them (a fresh RFC 2782
    /// draw each time, so equal-priority targets share the calls by weight).
    /// Targets that failed a call in the last 30 s come last.
    fn targets(&self, i: usize) -> Vec<(SocketAddr, Transport)> {
        let mut hops = self.wire[i].hops.lock().unwrap_or_else(|p| p.into_inner());
        hops.failed.retain(|(_, at)| at.elapsed() < TARGET_BACKOFF);
        let mut t = usable_targets(&hops.resolved, rand_seed()).unwrap_or_default();
        t.sort_by_key(|(a, _)| hops.failed.iter().any(|(f, _)| f == a));
        t
    }

    fn target_failed(&self, i: usize, addr: SocketAddr) {
        let mut hops = self.wire[i].hops.lock().unwrap_or_else(|p| p.into_inner());
        hops.failed.retain(|(a, _)| *a != addr);
        hops.failed.push((addr, Instant::now()));
    }

    /// Resolves a trunk again when its records' TTL is over (bounded to 30 s..5 min) or
    /// when it has been taken out for a back-off (at most every 30 s). A failed lookup
    /// keeps the previous answer.
    async fn keep_resolved(&self) {
        let trunks: Vec<TrunkConfig> = self.with(|s| s.trunks().to_vec());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let status = self.status();
            for (i, t) in trunks.iter().enumerate() {
                let w = &self.wire[i];
                let (age, ttl) = {
                    let h = w.hops.lock().unwrap_or_else(|p| p.into_inner());
                    let ttl = Duration::from_secs(u64::from(h.resolved.ttl_s));
                    (h.at.elapsed(), ttl.clamp(MIN_TTL, MAX_TTL))
                };
                let down = status.get(i).is_some_and(|s| s.state == "down");
                if age < ttl && !(down && age >= MIN_TTL) {
                    continue;
                }
                match resolve_trunk(t, &w.resolver).await {
                    Ok(resolved) if usable_targets(&resolved, 0).is_ok() => {
                        tracing::debug!(trunk = %t.name, ttl_s = resolved.ttl_s, "trunk resolved again");
                        let mut h = w.hops.lock().unwrap_or_else(|p| p.into_inner());
                        h.resolved = resolved;
                        h.at = Instant::now();
                    }
                    Ok(_) => {
                        tracing::warn!(trunk = %t.name, "no usable target now; keeping the previous answer");
                        w.hops.lock().unwrap_or_else(|p| p.into_inner()).at = Instant::now();
                    }
                    Err(e) => {
                        tracing::warn!(trunk = %t.name, error = %e, "re-resolution failed; keeping the previous answer");
                        w.hops.lock().unwrap_or_else(|p| p.into_inner()).at = Instant::now();
                    }
                }
            }
        }
    }

    /// Report the voice bot's ASR queue (`waihu_bot::Kit::asr_waiting`) in the
    /// status file from now on.
    pub fn report_asr(&self, waiting: Arc<std::sync::atomic::AtomicU32>, slots: u32) {
        let _ = self.asr.set((waiting, slots));
    }

    /// Writes the status file atomically (temporary file, then rename).
    pub fn write_status(&self, path: &Path) -> std::io::Result<()> {
        let file = StatusFile {
            updated_ms: now_ms(),
            pid: std::process::id(),
            trunks: self.status().into_iter().map(StatusEntry::from).collect(),
            asr: self.asr.get().map(|(waiting, slots)| AsrLoad {
                waiting: waiting.load(std::sync::atomic::Ordering::Relaxed),
                slots: *slots,
            }),
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
        std::fs::rename(&tmp, path)
    }

    /// Waits (up to `limit`) until every trunk that registers has registered once.
    pub async fn wait_registered(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let ok = self
                .status()
                .iter()
                .all(|s| matches!(s.registration, RegState::NotRequired | RegState::Registered));
            if ok || tokio::time::Instant::now() >= until {
                return ok;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Tells the endpoint how to verify trunk `i`'s TLS target `hop` (idempotent; before
    /// any message goes there, as commands reach the endpoint in order).
    fn arm_tls(&self, ep: &SipEndpoint, i: usize, hop: (SocketAddr, Transport)) {
        if hop.1 != Transport::Tls {
            return;
        }
        if let Err(e) = ep.set_tls_peer(hop.0, self.wire[i].tls.clone()) {
            tracing::warn!(error = %e, "endpoint gone");
        }
    }

    /// The route of a call on trunk `i` through target `hop` (armed for TLS on `ep`).
    fn route(
        &self,
        ep: &SipEndpoint,
        i: usize,
        hop: (SocketAddr, Transport),
        phone: &str,
        caller_id: Option<&str>,
    ) -> Result<Route, String> {
        self.arm_tls(ep, i, hop);
        let (fmt, pai, privacy) = self.with(|s| {
            let t = &s.trunks()[i];
            (
                t.number_format.clone(),
                t.asserted_identity,
                t.privacy.clone(),
            )
        });
        let user = dial_string(phone, &fmt)?;
        let w = &self.wire[i];
        let mut headers = Vec::new();
        // RFC 3325: the identity the trunk asserts towards the network (its own
        // caller-ID pool number), and RFC 3323 privacy for it.
        if let (true, Some(cid)) = (pai, caller_id) {
            headers.push((
                "P-Asserted-Identity".to_string(),
                format!("<sip:{cid}@{}>", w.domain),
            ));
        }
        if let Some(p) = privacy {
            headers.push(("Privacy".to_string(), p));
        }
        Ok(Route {
            target: format!("sip:{user}@{}", w.domain),
            proxy: Some(hop.0),
            transport: hop.1,
            credentials: w.credentials.clone(),
            headers,
            srtp: w.srtp,
        })
    }

    /// Takes a trunk for a new call (the planner's `preferred` first), waiting up to
    /// [`WAIT_FOR_TRUNK`] for a channel and a CPS token.
    async fn acquire(&self, preferred: usize) -> Option<usize> {
        let until = tokio::time::Instant::now() + WAIT_FOR_TRUNK;
        loop {
            if let Some(i) = self.with(|s| s.acquire(now_ms(), Some(preferred), &[])) {
                return Some(i);
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Places one call: on the planner's trunk when it can take it, failing over to the
    /// next trunk up after a trunk failure — the same call (one store row, one attempt).
    /// `opts.target`, `proxy`, `transport` and `credentials` are set here. `on_trunk`
    /// hears the name of each trunk the call goes out on, before its INVITE.
    #[allow(clippy::too_many_arguments)]
    pub async fn place(
        &self,
        ep: &SipEndpoint,
        mut opts: CallOptions,
        phone: &str,
        preferred: usize,
        agent: Box<dyn CallAgent>,
        progress: &mut (dyn FnMut(&Progress) + Send),
        on_trunk: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<CallReport, EngineError> {
        let Some(first) = self.acquire(preferred).await else {
            return Ok(no_trunk(phone));
        };
        let name_of = |i: usize| self.with(|s| s.trunks()[i].name.clone());
        on_trunk(&name_of(first));
        let caller_id = opts.from_user.clone();
        // This call's targets on the trunk it is on, and the one being tried.
        let mut hops = self.targets(first);
        let Some(&hop) = hops.first() else {
            self.with(|s| s.release(first, now_ms(), TrunkResult::Carried));
            return Err(EngineError::Io {
                what: "trunk has no target / 中继无可用目标".into(),
                source: std::io::Error::other("no target"),
            });
        };
        let route = match self.route(ep, first, hop, phone, caller_id.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                self.with(|s| s.release(first, now_ms(), TrunkResult::Carried));
                return Err(EngineError::Io {
                    what: e,
                    source: std::io::Error::other("number format"),
                });
            }
        };
        opts.target = route.target;
        opts.proxy = route.proxy;
        opts.transport = route.transport;
        opts.credentials = route.credentials;
        opts.headers = route.headers;
        opts.media.srtp = route.srtp;
        let mut tried = vec![first];
        let mut current = Some(first);
        let mut at = 0usize;
        let mut next = |status: Option<u16>| -> Option<Route> {
            let cur = current.take()?;
            let failed = is_failover_status(status);
            let now = now_ms();
            if failed {
                // RFC 3263 §4.3: the next target of the same trunk first.
                self.target_failed(cur, hops[at].0);
                if at + 1 < hops.len() {
                    if let Ok(r) = self.route(ep, cur, hops[at + 1], phone, caller_id.as_deref()) {
                        at += 1;
                        tracing::info!(trunk = cur, target = %hops[at].0, "failing over to the trunk's next target");
                        current = Some(cur);
                        return Some(r);
                    }
                }
            }
            let result = if failed {
                TrunkResult::Failed
            } else {
                TrunkResult::Carried
            };
            self.with(|s| s.release(cur, now, result));
            if !failed {
                return None;
            }
            loop {
                let j = self.with(|s| s.acquire(now, None, &tried))?;
                tried.push(j);
                hops = self.targets(j);
                at = 0;
                let routed = match hops.first() {
                    Some(&h) => self.route(ep, j, h, phone, caller_id.as_deref()),
                    None => Err("trunk has no target / 中继无可用目标".into()),
                };
                match routed {
                    Ok(r) => {
                        current = Some(j);
                        on_trunk(&name_of(j));
                        return Some(r);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "number not dialable on this trunk");
                        self.with(|s| s.release(j, now, TrunkResult::Carried));
                    }
                }
            }
        };
        let r = place_call_routed(ep, opts, Some(agent), progress, &mut next).await;
        if let Some(cur) = current {
            let failed = match &r {
                Ok(rep) => !rep.outcome.connected() && is_failover_status(rep.sip_status),
                Err(_) => true,
            };
            let result = if failed {
                TrunkResult::Failed
            } else {
                TrunkResult::Carried
            };
            self.with(|s| s.release(cur, now_ms(), result));
        }
        r
    }
}

/// The Request-URI user part for `phone` (E.164) in a trunk's number format.
pub fn dial_string(phone: &str, fmt: &NumberFormat) -> Result<String, String> {
    let e164 = if phone.starts_with('+') {
        phone.to_string()
    } else {
        format!("+{phone}")
    };
    Ok(match fmt {
        NumberFormat::E164 => e164,
        NumberFormat::National => waihu_phone::national_digits(&e164)?,
        NumberFormat::Prefix(p) => format!("{p}{}", waihu_phone::national_digits(&e164)?),
    })
}

/// The report of a call no trunk could take.
fn no_trunk(phone: &str) -> CallReport {
    CallReport {
        outcome: waihu_core::CallOutcome::Congestion,
        sip_status: None,
        duration_s: 0.0,
        reason: format!("no trunk up with a free channel for {phone} / 无可用中继"),
        setup_ms: None,
        early_media: false,
        early_audio_s: 0.0,
        dtmf_sent: String::new(),
        dtmf_received: String::new(),
        codec: None,
        rtp: Default::default(),
        recording: None,
        rerouted_after: Vec::new(),
        transfer: None,
        call: waihu_engine::waihu_sip::CallId(0),
    }
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms() as u64);
    h.finish()
}

/// Reads `<data_dir>/trunks.json`.
pub fn read_status(path: &Path) -> Result<StatusFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} — is a node running? / 无法读取中继状态（节点是否在运行？）",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(
            dial_string("+8613800138000", &NumberFormat::E164).unwrap(),
            "+8613800138000"
        );
        assert_eq!(
            dial_string("+8613800138000", &NumberFormat::National).unwrap(),
            "13800138000"
        );
        assert_eq!(
            dial_string("+861012345678", &NumberFormat::Prefix("17951".into())).unwrap(),
            "1795101012345678"
        );
        assert!(dial_string("+0", &NumberFormat::National).is_err());
    }

    /// Hangs up after a second of answered media, counting the frames it heard.
    struct Listen(u32);
    impl CallAgent for Listen {
        fn on_frame(
            &mut self,
            _now: std::time::Instant,
            _heard: &[i16],
            _say: &mut [i16],
        ) -> waihu_engine::agent::Control {
            self.0 += 1;
            if self.0 >= 50 {
                return waihu_engine::agent::Control::Hangup("heard enough".into());
            }
            waihu_engine::agent::Control::Continue
        }
    }

    /// A trunk's `srtp:` reaches the wire: our UAS demands SRTP; a trunk with
    /// `srtp: mandatory` gets an SRTP call, one with SRTP off is refused (488).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trunk_srtp_policy_reaches_the_call() {
        use waihu_campaign::trunks::HostPort;
        use waihu_engine::call::{answer_loop, MediaOptions};
        let uas = Arc::new(
            SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), "callee", None)
                .await
                .unwrap(),
        );
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let uas_opts = MediaOptions {
            play: Some(vec![3000i16; 8000 * 3].into()),
            srtp: SrtpMode::Mandatory,
            ..MediaOptions::default()
        };
        tokio::spawn(answer_loop(uas.clone(), Duration::ZERO, uas_opts, tx));
        let ep = SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), "waihu", None)
            .await
            .unwrap();
        let trunk = |srtp: TrunkSrtp| TrunkConfig {
            name: "t".into(),
            proxy: HostPort {
                host: "127.0.0.1".into(),
                port: uas.local_addr().port(),
            },
            transport: TrunkTransport::Udp,
            username: None,
            realm: None,
            password: None,
            register: false,
            expires: 3600,
            srtp,
            outbound_proxy: None,
            channels: 2,
            cps: 100.0,
            weight: 1,
            number_format: NumberFormat::E164,
            asserted_identity: false,
            privacy: None,
            tls_ca: None,
            tls_server_name: None,
            dns: Default::default(),
        };
        let heard = std::sync::Mutex::new(Vec::new());
        for (srtp, answered) in [(TrunkSrtp::Mandatory, true), (TrunkSrtp::Off, false)] {
            let pool = TrunkPool::new(vec![trunk(srtp)]).await.unwrap();
            let mut opts = CallOptions::new("placeholder");
            opts.ring_timeout = Duration::from_secs(5);
            let r = tokio::time::timeout(
                Duration::from_secs(15),
                pool.place(
                    &ep,
                    opts,
                    "+8613800138000",
                    0,
                    Box::new(Listen(0)),
                    &mut |_| {},
                    &|t| heard.lock().unwrap().push(t.to_string()),
                ),
            )
            .await
            .expect("bounded")
            .unwrap();
            assert_eq!(std::mem::take(&mut *heard.lock().unwrap()), ["t"]);
            if answered {
                assert_eq!(r.outcome, waihu_core::CallOutcome::Answered, "{r:?}");
                assert!(r.rtp.srtp && r.rtp.packets_received > 20, "{r:?}");
                assert_eq!(r.rtp.srtp_auth_failed, 0, "{r:?}");
            } else {
                assert_eq!(r.sip_status, Some(488), "{r:?}");
                assert!(!r.rtp.srtp, "{r:?}");
            }
        }
    }
}
