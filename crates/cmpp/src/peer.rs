//! A CMPP 2.0 or 3.0 gateway (ISMG) on 127.0.0.1 for tests: it checks every CONNECT's
//! version and AuthenticatorSource against its own shared secret, answers SUBMITs with
//! Msg_Ids, sends a status report for each one that asks, and optionally a reply from the
//! handset (MO) after the first report to each number.
//!
//! It reads and writes the wire by the specification's byte offsets, not through
//! [`crate::pdu`], so a layout mistake in the codec shows up as a disagreement here
//! rather than cancelling out. Nothing in the client uses this module.

use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::pdu::Version;

#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// The Source_Addr (SP code) and secret the gateway accepts.
    pub source_addr: String,
    pub shared_secret: String,
    /// Send a status report (DELIVRD) for each SUBMIT with Registered_Delivery = 1.
    pub reports: bool,
    /// After the first report to a number, that number replies with this text (UCS-2).
    pub mo_reply: Option<String>,
    /// The one version the gateway speaks: a CONNECT asking for a higher one is refused
    /// with status 4 (version too high), a lower one with 5.
    pub version: Version,
}

/// What the gateway saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Connect {
        source_addr: String,
        version: u8,
        accepted: bool,
    },
    Submit(SeenSubmit),
    Report {
        msg_id: u64,
    },
    Mo {
        to: String,
    },
    DeliverResp {
        msg_id: u64,
        result: u32,
    },
    ActiveTest,
    Terminate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSubmit {
    pub msg_id: u64,
    pub pk_total: u8,
    pub pk_number: u8,
    pub registered_delivery: u8,
    pub service_id: String,
    pub tp_udhi: u8,
    pub msg_fmt: u8,
    pub msg_src: String,
    pub src_id: String,
    pub dest: Vec<String>,
    pub content: Vec<u8>,
}

pub struct PeerGateway {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PeerGateway {
    pub async fn start(opts: PeerOptions) -> std::io::Result<PeerGateway> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let port = l.local_addr()?.port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let opts = Arc::new(opts);
        let task = tokio::spawn(async move {
            let ids = Arc::new(Mutex::new(0u64));
            while let Ok((s, _)) = l.accept().await {
                let (log, opts, ids) = (log.clone(), opts.clone(), ids.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(s, &opts, &log, &ids).await {
                        tracing::debug!(%e, "CMPP peer connection ended");
                    }
                });
            }
        });
        Ok(PeerGateway { port, seen, task })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn submits(&self) -> Vec<SeenSubmit> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Submit(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

impl Drop for PeerGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(log: &Mutex<Vec<Seen>>, s: Seen) {
    if let Ok(mut l) = log.lock() {
        l.push(s);
    }
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn frame(command: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(12 + body.len());
    f.extend_from_slice(&(12 + body.len() as u32).to_be_bytes());
    f.extend_from_slice(&command.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn fixed(s: &str, n: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(n, 0);
    v
}

/// Terminal id width: 21 octets in 2.0, 32 in 3.0.
fn tl(v: Version) -> usize {
    if v == Version::V3_0 {
        32
    } else {
        21
    }
}

/// A Status or Result: one octet in 2.0, four in 3.0.
fn status(v: Version, value: u32) -> Vec<u8> {
    if v == Version::V3_0 {
        value.to_be_bytes().to_vec()
    } else {
        vec![value as u8]
    }
}

fn deliver(
    v: Version,
    msg_id: u64,
    dest_id: &str,
    src: &str,
    report: bool,
    fmt: u8,
    content: &[u8],
) -> Vec<u8> {
    let mut b = msg_id.to_be_bytes().to_vec();
    b.extend(fixed(dest_id, 21));
    b.extend(fixed("", 10));
    b.extend([0, 0, fmt]);
    b.extend(fixed(src, tl(v)));
    if v == Version::V3_0 {
        b.push(0); // Src_terminal_type: a real number
    }
    b.push(u8::from(report));
    b.push(content.len() as u8);
    b.extend_from_slice(content);
    // 8 reserved octets in 2.0; the 20-octet LinkID in 3.0.
    b.extend(vec![0; if v == Version::V3_0 { 20 } else { 8 }]);
    b
}

async fn serve(
    mut s: TcpStream,
    opts: &PeerOptions,
    log: &Mutex<Vec<Seen>>,
    ids: &Mutex<u64>,
) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut seq_out = 0x1000u32;
    let mut replied = std::collections::HashSet::new();
    let mut connected = false;
    let v = opts.version;
    let wire_version = if v == Version::V3_0 { 0x30u8 } else { 0x20 };
    loop {
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if !(12..=8192).contains(&len) {
            return Err(std::io::Error::other(format!("bad Total_Length {len}")));
        }
        let cmd = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let seq = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let mut b = vec![0u8; len - 12];
        s.read_exact(&mut b).await?;
        match cmd {
            0x0000_0001 if b.len() == 27 => {
                let source_addr = text(&b[0..6]);
                let version = b[22];
                let ts = u32::from_be_bytes([b[23], b[24], b[25], b[26]]);
                let mut h = Md5::new();
                h.update(source_addr.as_bytes());
                h.update([0u8; 9]);
                h.update(opts.shared_secret.as_bytes());
                h.update(format!("{ts:010}").as_bytes());
                let want: [u8; 16] = h.finalize().into();
                let authentic = source_addr == opts.source_addr && want[..] == b[6..22];
                let code: u32 = match version.cmp(&wire_version) {
                    std::cmp::Ordering::Greater => 4,
                    std::cmp::Ordering::Less => 5,
                    std::cmp::Ordering::Equal if authentic => 0,
                    std::cmp::Ordering::Equal => 3,
                };
                let accepted = code == 0;
                let mut h = Md5::new();
                h.update(status(v, code));
                h.update(&b[6..22]);
                h.update(opts.shared_secret.as_bytes());
                let ismg: [u8; 16] = h.finalize().into();
                let mut resp = status(v, code);
                resp.extend_from_slice(&ismg);
                resp.push(wire_version);
                record(
                    log,
                    Seen::Connect {
                        source_addr,
                        version,
                        accepted,
                    },
                );
                s.write_all(&frame(0x8000_0001, seq, &resp)).await?;
                if !accepted {
                    return Ok(());
                }
                connected = true;
            }
            0x0000_0004 if connected => {
                let sub = match parse_submit(&b, v) {
                    Some(sub) => sub,
                    None => {
                        let mut resp = 0u64.to_be_bytes().to_vec();
                        resp.extend(status(v, 1));
                        s.write_all(&frame(0x8000_0004, seq, &resp)).await?;
                        continue;
                    }
                };
                let msg_id = {
                    let mut n = ids.lock().map_err(|_| std::io::Error::other("poisoned"))?;
                    *n += 1;
                    // Month/day/time bits left zero, gateway code 1234, then the sequence.
                    (1234u64 << 16) | *n
                };
                let mut resp = msg_id.to_be_bytes().to_vec();
                resp.extend(status(v, 0));
                let report = opts.reports && sub.registered_delivery == 1;
                let dest = sub.dest.first().cloned().unwrap_or_default();
                let src_id = sub.src_id.clone();
                record(log, Seen::Submit(SeenSubmit { msg_id, ..sub }));
                s.write_all(&frame(0x8000_0004, seq, &resp)).await?;
                if report {
                    let mut r = msg_id.to_be_bytes().to_vec();
                    r.extend(fixed("DELIVRD", 7));
                    r.extend(fixed("2612051430", 10));
                    r.extend(fixed("2612051430", 10));
                    r.extend(fixed(&dest, tl(v)));
                    r.extend(1u32.to_be_bytes());
                    seq_out += 1;
                    s.write_all(&frame(
                        0x0000_0005,
                        seq_out,
                        &deliver(v, msg_id, &src_id, &dest, true, 0, &r),
                    ))
                    .await?;
                    record(log, Seen::Report { msg_id });
                    if let Some(mo) = &opts.mo_reply {
                        if replied.insert(dest.clone()) {
                            let content: Vec<u8> =
                                mo.encode_utf16().flat_map(u16::to_be_bytes).collect();
                            seq_out += 1;
                            s.write_all(&frame(
                                0x0000_0005,
                                seq_out,
                                &deliver(v, msg_id + 1_000_000, &src_id, &dest, false, 8, &content),
                            ))
                            .await?;
                            record(log, Seen::Mo { to: dest });
                        }
                    }
                }
            }
            0x8000_0005 if b.len() == 8 + status(v, 0).len() => {
                let msg_id = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                let result = b[8..].iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
                record(log, Seen::DeliverResp { msg_id, result });
            }
            0x0000_0008 => {
                record(log, Seen::ActiveTest);
                s.write_all(&frame(0x8000_0008, seq, &[0])).await?;
            }
            0x0000_0002 => {
                record(log, Seen::Terminate);
                s.write_all(&frame(0x8000_0002, seq, &[])).await?;
                return Ok(());
            }
            _ => {
                return Err(std::io::Error::other(format!(
                    "unexpected command 0x{cmd:08x}"
                )))
            }
        }
    }
}

/// SUBMIT by its offsets. CMPP 2.0: 116 fixed octets, DestUsr_tl, 21 per number,
/// Msg_Length, the content, 8 reserved. CMPP 3.0: Fee_terminal_Id is 32 octets and is
/// followed by Fee_terminal_type (so every later fixed field moves by 12: DestUsr_tl at 128),
/// 32 per number, then Dest_terminal_type, Msg_Length, the content, a 20-octet LinkID.
fn parse_submit(b: &[u8], v: Version) -> Option<SeenSubmit> {
    let (shift, per, type_octet, tail) = if v == Version::V3_0 {
        (12, 32, 1, 20)
    } else {
        (0, 21, 0, 8)
    };
    let n = *b.get(116 + shift)? as usize;
    let ids = 117 + shift;
    let at = ids + per * n + type_octet;
    let len = *b.get(at)? as usize;
    let dest = (0..n)
        .map(|i| text(&b[ids + per * i..ids + per * (i + 1)]))
        .collect();
    let content = b.get(at + 1..at + 1 + len)?.to_vec();
    if b.len() != at + 1 + len + tail {
        return None;
    }
    Some(SeenSubmit {
        msg_id: 0,
        pk_total: b[8],
        pk_number: b[9],
        registered_delivery: b[10],
        service_id: text(&b[12..22]),
        tp_udhi: b[45 + shift],
        msg_fmt: b[46 + shift],
        msg_src: text(&b[47 + shift..53 + shift]),
        src_id: text(&b[95 + shift..116 + shift]),
        dest,
        content,
    })
}
