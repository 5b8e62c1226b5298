//! The configured SIP trunks at run time: registrations kept alive, the trunk of each call
//! chosen by [`TrunkSet`] (the planner's choice first, else weighted among the trunks that
//! are up with a free channel and a CPS token), failover of the same call to the next
//! trunk after 503 / 500 / 408 / timeout / transport failure, and the live status written
//! to `<data_dir>/trunks.json` for `waihu trunks status`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// How long a call waits for a trunk with a free channel and CPS token before it fails
/// as congestion.
const WAIT_FOR_TRUNK: Duration = Duration::from_secs(30);

/// A trunk resolved for the wire.
#[derive(Debug, Clone)]
struct Wire {
    /// Host (and port) of the Request-URI and the registrar URI.
    domain: String,
    next_hop: SocketAddr,
    transport: Transport,
    credentials: Option<Credentials>,
    /// TLS trunks: how the next hop's certificate is verified.
    tls: Option<TlsPeer>,
    srtp: SrtpMode,
}

/// The trunks of a run.
pub struct TrunkPool {
    set: Mutex<TrunkSet>,
    wire: Vec<Wire>,
}

pub use waihu_campaign::trunks::{StatusEntry, StatusFile};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl TrunkPool {
    /// Resolves every trunk's next hop (system resolver: A/AAAA) and reads its password.
    pub async fn new(trunks: Vec<TrunkConfig>) -> Result<TrunkPool, String> {
        let mut wire = Vec::with_capacity(trunks.len());
        for t in &trunks {
            let hop = t.next_hop();
            let next_hop = tokio::net::lookup_host((hop.host.as_str(), hop.port))
                .await
                .map_err(|e| format!("trunk {}: resolving {hop}: {e} / 无法解析中继地址", t.name))?
                .next()
                .ok_or_else(|| {
                    format!(
                        "trunk {}: {hop} has no address / 中继地址无解析结果",
                        t.name
                    )
                })?;
            let password = t.read_password()?;
            let credentials = match (&t.username, password) {
                (Some(u), p) => Some(Credentials {
                    username: u.clone(),
                    password: p.unwrap_or_default(),
                }),
                (None, _) => None,
            };
            let tls = match t.transport {
                TrunkTransport::Tls => Some(TlsPeer {
                    // Without a name of its own the proxy's host is checked, an IP literal
                    // against the certificate's IP addresses.
                    server_name: t
                        .tls_server_name
                        .clone()
                        .unwrap_or_else(|| t.proxy.host.clone()),
                    config: tls_client_config(t.tls_ca.as_deref())
                        .map_err(|e| format!("trunk {}: {e}", t.name))?,
                }),
                _ => None,
            };
            wire.push(Wire {
                domain: t.proxy.to_string(),
                next_hop,
                transport: match t.transport {
                    TrunkTransport::Udp => Transport::Udp,
                    TrunkTransport::Tcp => Transport::Tcp,
                    TrunkTransport::Tls => Transport::Tls,
                },
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
        for i in 0..self.wire.len() {
            self.arm_tls(&ep, i);
        }
        for (i, t) in trunks.iter().enumerate() {
            if !t.register {
                continue;
            }
            let w = &self.wire[i];
            let reg = Registration {
                registrar: format!("sip:{}", w.domain),
                proxy: Some(w.next_hop),
                transport: w.transport,
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
        let Some(path) = status_file else { return };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Err(e) = self.write_status(&path) {
                tracing::debug!(error = %e, "writing the trunk status failed");
            }
        }
    }

    /// Writes the status file atomically (temporary file, then rename).
    pub fn write_status(&self, path: &Path) -> std::io::Result<()> {
        let file = StatusFile {
            updated_ms: now_ms(),
            pid: std::process::id(),
            trunks: self.status().into_iter().map(StatusEntry::from).collect(),
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

    /// Tells the endpoint how to verify trunk `i`'s TLS next hop (idempotent; before any
    /// message goes there, as commands reach the endpoint in order).
    fn arm_tls(&self, ep: &SipEndpoint, i: usize) {
        let w = &self.wire[i];
        if let Some(peer) = &w.tls {
            if let Err(e) = ep.set_tls_peer(w.next_hop, peer.clone()) {
                tracing::warn!(error = %e, "endpoint gone");
            }
        }
    }

    fn route(&self, i: usize, phone: &str, caller_id: Option<&str>) -> Result<Route, String> {
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
            proxy: Some(w.next_hop),
            transport: w.transport,
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
    /// `opts.target`, `proxy`, `transport` and `credentials` are set here.
    pub async fn place(
        &self,
        ep: &SipEndpoint,
        mut opts: CallOptions,
        phone: &str,
        preferred: usize,
        agent: Box<dyn CallAgent>,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<CallReport, EngineError> {
        let Some(first) = self.acquire(preferred).await else {
            return Ok(no_trunk(phone));
        };
        let caller_id = opts.from_user.clone();
        let route = match self.route(first, phone, caller_id.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                self.with(|s| s.release(first, now_ms(), TrunkResult::Carried));
                return Err(EngineError::Io {
                    what: e,
                    source: std::io::Error::other("number format"),
                });
            }
        };
        self.arm_tls(ep, first);
        opts.target = route.target;
        opts.proxy = route.proxy;
        opts.transport = route.transport;
        opts.credentials = route.credentials;
        opts.headers = route.headers;
        opts.media.srtp = route.srtp;
        let mut tried = vec![first];
        let mut current = Some(first);
        let mut next = |status: Option<u16>| -> Option<Route> {
            let cur = current.take()?;
            let failed = is_failover_status(status);
            let now = now_ms();
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
                match self.route(j, phone, caller_id.as_deref()) {
                    Ok(r) => {
                        self.arm_tls(ep, j);
                        current = Some(j);
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
        };
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
                ),
            )
            .await
            .expect("bounded")
            .unwrap();
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
