//! The I/O half: asks a DNS server (hickory-resolver on tokio) for the records the
//! [`select`](crate::select) core says to look up, and hands it what came back.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, TokioResolver};

use crate::select::{plan, select_naptr, Found, Naptr, Plan, Resolved, Srv, SrvHost, Transport};

/// The environment variable naming the DNS server trunks are resolved with (when the
/// trunk file does not name one): `127.0.0.1:5353`, `10.0.0.2` (port 53).
pub const DNS_SERVER_ENV: &str = "WAIHU_DNS_SERVER";

/// A resolution that failed, with the name it was about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct Error {
    pub name: String,
    pub message: String,
}

/// `host:port`, `[v6]:port` or a bare address (port 53).
pub fn parse_server(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "DNS server {s:?}: expected an IP address with an optional port (127.0.0.1:5353) / DNS 服务器应为 IP 地址[:端口]"
    ))
}

/// The DNS server to use: `explicit`, else [`DNS_SERVER_ENV`], else `None` (the system's
/// resolv.conf).
pub fn server_from_env(explicit: Option<SocketAddr>) -> Result<Option<SocketAddr>, String> {
    if explicit.is_some() {
        return Ok(explicit);
    }
    match std::env::var(DNS_SERVER_ENV) {
        Ok(v) if !v.trim().is_empty() => parse_server(&v)
            .map(Some)
            .map_err(|e| format!("{DNS_SERVER_ENV}: {e}")),
        _ => Ok(None),
    }
}

/// A stub resolver: the system's (resolv.conf) or one given server (UDP, TCP when
/// truncated). Answers are cached for their TTL.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    server: Option<SocketAddr>,
}

impl Resolver {
    pub fn new(server: Option<SocketAddr>) -> Result<Resolver, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let builder = match server {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                // An operator who names a server wants its answers, not /etc/hosts.
                opts.use_hosts_file = ResolveHosts::Never;
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => TokioResolver::builder_tokio().map_err(|e| {
                format!("reading the system resolver configuration: {e} / 无法读取系统 DNS 配置")
            })?,
        };
        Ok(Resolver {
            inner: builder.with_options(opts).build(),
            server,
        })
    }

    /// The server named at construction (`None`: the system's).
    pub fn server(&self) -> Option<SocketAddr> {
        self.server
    }

    /// Resolves a next hop per RFC 3263: `port`/`transport` are what the configuration
    /// gave explicitly; `supported` the transports the caller can use (NAPTR and SRV of
    /// others are skipped).
    pub async fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
        supported: &[Transport],
    ) -> Result<Resolved, Error> {
        let mut ttl = u32::MAX;
        let mut nx = false;
        let found = match plan(host, port, transport) {
            Plan::Address {
                host,
                port,
                transport,
            } => {
                let found = self.host(&host, port, transport, &mut ttl, &mut nx).await?;
                found.into_iter().collect()
            }
            Plan::Srv { domain, transport } => {
                let mut found = Vec::new();
                if let Some(f) = self.srv(&domain, transport, None, &mut ttl).await? {
                    found.push(f);
                } else if let Some(f) = self
                    .host(
                        &domain,
                        transport.default_port(),
                        transport,
                        &mut ttl,
                        &mut nx,
                    )
                    .await?
                {
                    found.push(f);
                }
                found
            }
            Plan::Naptr { domain } => self.full(&domain, supported, &mut ttl, &mut nx).await?,
        };
        if found.is_empty() {
            let message = if nx {
                "no such domain (NXDOMAIN) / 域名不存在".to_string()
            } else {
                "no NAPTR, SRV or A/AAAA records for a supported transport / 无可用的 DNS 记录"
                    .to_string()
            };
            return Err(Error {
                name: host.to_string(),
                message,
            });
        }
        Ok(Resolved { found, ttl_s: ttl })
    }

    async fn full(
        &self,
        domain: &str,
        supported: &[Transport],
        ttl: &mut u32,
        nx: &mut bool,
    ) -> Result<Vec<Found>, Error> {
        let mut found = Vec::new();
        let records = self.naptr(domain, ttl, nx).await?;
        for (t, r) in select_naptr(&records, supported) {
            let via = Some((domain.trim_end_matches('.').to_string(), r.clone()));
            let name = r.replacement.trim_end_matches('.');
            if let Some(f) = self.srv(name, t, via, ttl).await? {
                found.push(f);
            }
        }
        if found.is_empty() {
            for &t in supported {
                if let Some(f) = self.srv(domain, t, None, ttl).await? {
                    found.push(f);
                }
            }
        }
        if found.is_empty() {
            let t = Transport::Udp;
            if let Some(f) = self.host(domain, t.default_port(), t, ttl, nx).await? {
                found.push(f);
            }
        }
        Ok(found)
    }

    fn name(s: &str) -> Result<Name, Error> {
        let fqdn = format!("{}.", s.trim_end_matches('.'));
        Name::from_str(&fqdn).map_err(|e| Error {
            name: s.to_string(),
            message: format!("not a valid domain name: {e} / 域名无效"),
        })
    }

    /// `Ok(None)` for "no records" and NXDOMAIN (noted in `nx`); other failures (timeout,
    /// SERVFAIL, refused) are errors.
    fn absent<T>(
        name: &str,
        e: hickory_resolver::ResolveError,
        nx: &mut bool,
    ) -> Result<Option<T>, Error> {
        if e.is_nx_domain() {
            *nx = true;
            return Ok(None);
        }
        if e.is_no_records_found() {
            return Ok(None);
        }
        Err(Error {
            name: name.to_string(),
            message: format!("DNS lookup failed: {e} / DNS 查询失败"),
        })
    }

    async fn naptr(&self, domain: &str, ttl: &mut u32, nx: &mut bool) -> Result<Vec<Naptr>, Error> {
        let lookup = match self
            .inner
            .lookup(Self::name(domain)?, RecordType::NAPTR)
            .await
        {
            Ok(l) => l,
            Err(e) => return Ok(Self::absent(domain, e, nx)?.unwrap_or_default()),
        };
        let mut out = Vec::new();
        for rec in lookup.records() {
            if let RData::NAPTR(n) = rec.data() {
                *ttl = (*ttl).min(rec.ttl());
                out.push(Naptr {
                    order: n.order(),
                    preference: n.preference(),
                    flags: String::from_utf8_lossy(n.flags()).into_owned(),
                    services: String::from_utf8_lossy(n.services()).into_owned(),
                    replacement: n.replacement().to_ascii(),
                });
            }
        }
        Ok(out)
    }

    async fn srv(
        &self,
        domain: &str,
        transport: Transport,
        via: Option<(String, Naptr)>,
        ttl: &mut u32,
    ) -> Result<Option<Found>, Error> {
        // A NAPTR replacement is the SRV name itself; otherwise it is built from the domain.
        let name = if via.is_some() {
            domain.to_string()
        } else {
            transport.srv_name(domain)
        };
        let lookup = match self.inner.lookup(Self::name(&name)?, RecordType::SRV).await {
            Ok(l) => l,
            Err(e) => {
                // The SRV name not existing says nothing about the domain.
                let mut ignored = false;
                return Self::absent(&name, e, &mut ignored);
            }
        };
        let mut records = Vec::new();
        for rec in lookup.records() {
            if let RData::SRV(s) = rec.data() {
                *ttl = (*ttl).min(rec.ttl());
                records.push(Srv {
                    priority: s.priority(),
                    weight: s.weight(),
                    port: s.port(),
                    target: s.target().to_ascii(),
                });
            }
        }
        let mut hosts = Vec::new();
        for record in records {
            let target = record.target.trim_end_matches('.');
            if target.is_empty() {
                continue; // "." — no service at this name
            }
            // An SRV target without addresses is skipped; it says nothing about the domain.
            let mut ignored = false;
            let ips = self.ips(target, ttl, &mut ignored).await?;
            if !ips.is_empty() {
                hosts.push(SrvHost { record, ips });
            }
        }
        if hosts.is_empty() {
            return Ok(None);
        }
        Ok(Some(Found::Srv {
            transport,
            naptr: via,
            name,
            hosts,
        }))
    }

    async fn host(
        &self,
        host: &str,
        port: u16,
        transport: Transport,
        ttl: &mut u32,
        nx: &mut bool,
    ) -> Result<Option<Found>, Error> {
        let bare = host.trim_matches(|c| c == '[' || c == ']');
        let ips = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self.ips(bare, ttl, nx).await?,
        };
        Ok((!ips.is_empty()).then(|| Found::Host {
            transport,
            name: bare.trim_end_matches('.').to_string(),
            port,
            ips,
        }))
    }

    async fn ips(&self, host: &str, ttl: &mut u32, nx: &mut bool) -> Result<Vec<IpAddr>, Error> {
        match self.inner.lookup_ip(Self::name(host)?).await {
            Ok(l) => {
                for rec in l.as_lookup().records() {
                    if matches!(rec.record_type(), RecordType::A | RecordType::AAAA) {
                        *ttl = (*ttl).min(rec.ttl());
                    }
                }
                Ok(l.iter().collect())
            }
            Err(e) => Ok(Self::absent(host, e, nx)?.unwrap_or_default()),
        }
    }
}
