//! SRTP and SRTCP (RFC 3711) with the one suite SDES trunks all speak,
//! `AES_CM_128_HMAC_SHA1_80`: AES-128 in counter mode, HMAC-SHA1 tags cut to 80 bits,
//! key derivation rate 0, no MKI.
//!
//! Sans-IO: an [`SrtpContext`] is one direction's keys and state (SDES gives each side its
//! own master key, so a call holds one context to protect what it sends and one to
//! unprotect what it receives). Packets go through in place; nothing reads a clock.
//!
//! Receive side: the rollover counter (ROC) is estimated from the sequence number
//! (RFC 3711 §3.3.1, Appendix A) and a 64-packet replay window per SSRC refuses
//! duplicates and packets older than the window; state changes only after the tag checked.

use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;
type AesCtr = ctr::Ctr128BE<Aes128>;

/// Master key length (AES-128).
pub const MASTER_KEY_LEN: usize = 16;
/// Master salt length.
pub const MASTER_SALT_LEN: usize = 14;
/// Key and salt together, as carried base64-encoded in SDP `a=crypto ... inline:`.
pub const KEY_SALT_LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;
/// Authentication tag length of `_80` suites.
pub const TAG_LEN: usize = 10;
/// What SRTCP adds to a packet: E flag + 31-bit index, and the tag.
pub const SRTCP_OVERHEAD: usize = 4 + TAG_LEN;
/// Packets remembered per SSRC against replays (RFC 3711 §3.3.2 asks for at least 64).
pub const REPLAY_WINDOW: u64 = 64;
/// SSRCs tracked per context (a call has one or two; more is a peer restarting streams).
const MAX_STREAMS: usize = 8;

/// The only crypto suite we offer and accept.
pub const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// Why a packet was not protected or unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short for SRTP/SRTCP")]
    TooShort,
    #[error("not an RTP/RTCP version 2 packet")]
    NotRtp,
    #[error("authentication failed (wrong key or altered packet)")]
    Auth,
    #[error("replayed packet")]
    Replay,
    #[error("packet older than the replay window")]
    TooOld,
}

/// A master key and salt (30 bytes), as exchanged in SDP (RFC 4568).
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    pub key: [u8; MASTER_KEY_LEN],
    pub salt: [u8; MASTER_SALT_LEN],
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach logs.
        f.write_str("SrtpKey(..)")
    }
}

impl SrtpKey {
    /// From `key || salt` (exactly 30 bytes).
    pub fn from_bytes(b: &[u8]) -> Option<SrtpKey> {
        if b.len() != KEY_SALT_LEN {
            return None;
        }
        let mut k = SrtpKey {
            key: [0; MASTER_KEY_LEN],
            salt: [0; MASTER_SALT_LEN],
        };
        k.key.copy_from_slice(&b[..MASTER_KEY_LEN]);
        k.salt.copy_from_slice(&b[MASTER_KEY_LEN..]);
        Some(k)
    }

    pub fn to_bytes(&self) -> [u8; KEY_SALT_LEN] {
        let mut b = [0; KEY_SALT_LEN];
        b[..MASTER_KEY_LEN].copy_from_slice(&self.key);
        b[MASTER_KEY_LEN..].copy_from_slice(&self.salt);
        b
    }
}

/// Labels of RFC 3711 §4.3.1.
const LABEL_RTP_ENC: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_ENC: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// Derives `out.len()` bytes of session key material for `label` (key derivation rate 0,
/// so r = 0): the AES-CM keystream under the master key from IV = (label · 2^48 ⊕ salt) · 2^16.
pub fn derive(master: &SrtpKey, label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..MASTER_SALT_LEN].copy_from_slice(&master.salt);
    iv[7] ^= label;
    out.fill(0);
    AesCtr::new(&master.key.into(), &iv.into()).apply_keystream(out);
}

/// Session keys of one of RTP or RTCP.
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; MASTER_SALT_LEN],
    auth: HmacSha1,
}

impl SessionKeys {
    fn new(master: &SrtpKey, enc: u8, auth: u8, salt: u8) -> SessionKeys {
        let mut k = [0u8; 16];
        derive(master, enc, &mut k);
        let mut a = [0u8; 20];
        derive(master, auth, &mut a);
        let mut s = [0u8; MASTER_SALT_LEN];
        derive(master, salt, &mut s);
        SessionKeys {
            cipher: Aes128::new(&k.into()),
            salt: s,
            auth: <HmacSha1 as Mac>::new_from_slice(&a).expect("HMAC takes any key length"),
        }
    }

    /// XORs `data` with the keystream of packet `index` of `ssrc` (RFC 3711 §4.1.1:
    /// IV = salt · 2^16 ⊕ SSRC · 2^64 ⊕ index · 2^16).
    fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..MASTER_SALT_LEN].copy_from_slice(&self.salt);
        for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *d ^= s;
        }
        for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *d ^= s;
        }
        AesCtr::from_core(ctr::CtrCore::inner_iv_init(self.cipher.clone(), &iv.into()))
            .apply_keystream(data);
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut m = self.auth.clone();
        for p in parts {
            m.update(p);
        }
        let full = m.finalize().into_bytes();
        let mut t = [0; TAG_LEN];
        t.copy_from_slice(&full[..TAG_LEN]);
        t
    }

    fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut m = self.auth.clone();
        for p in parts {
            m.update(p);
        }
        // Constant-time comparison of the leftmost 80 bits.
        m.verify_truncated_left(tag).is_ok()
    }
}

/// A replay window over packet indices (RTP: 48-bit, SRTCP: 31-bit).
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    highest: u64,
    bits: u64,
}

impl Window {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let delta = self.highest - index;
        if delta >= REPLAY_WINDOW {
            return Err(SrtpError::TooOld);
        }
        if self.bits & (1 << delta) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.bits = if shift >= 64 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.highest = index;
        } else {
            self.bits |= 1 << (self.highest - index);
        }
    }
}

/// Per-SSRC state.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// RTP: the highest index seen/sent (ROC · 2^16 + SEQ); SRTCP: the next index to send.
    index: u64,
    window: Window,
}

fn stream(streams: &mut Vec<Stream>, ssrc: u32, init: u64) -> &mut Stream {
    if let Some(i) = streams.iter().position(|s| s.ssrc == ssrc) {
        return &mut streams[i];
    }
    if streams.len() >= MAX_STREAMS {
        streams.remove(0);
    }
    streams.push(Stream {
        ssrc,
        index: init,
        window: Window {
            highest: init,
            bits: 0,
        },
    });
    streams.last_mut().expect("just pushed")
}

/// The length of an RTP header with its CSRCs and extension, if `p` holds one.
fn rtp_header_len(p: &[u8]) -> Result<usize, SrtpError> {
    if p.len() < 12 {
        return Err(SrtpError::TooShort);
    }
    if p[0] >> 6 != 2 {
        return Err(SrtpError::NotRtp);
    }
    let mut n = 12 + 4 * usize::from(p[0] & 0x0F);
    if p[0] & 0x10 != 0 {
        let ext = p.get(n + 2..n + 4).ok_or(SrtpError::TooShort)?;
        n += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if n > p.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(n)
}

/// The 48-bit index of a packet numbered `seq`, given the highest index so far
/// (RFC 3711 Appendix A: the ROC is guessed as the one that puts `seq` nearest);
/// `None` for a packet from before ROC 0.
fn estimate_index(highest: u64, seq: u16) -> Option<u64> {
    let roc = highest >> 16;
    let s_l = highest & 0xFFFF;
    let seq = u64::from(seq);
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    Some((v << 16) | seq)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// One direction of an SRTP session (one master key): protects what we send with our key,
/// or unprotects what the peer sends with its key. RTP and RTCP share the master key.
#[derive(Clone)]
pub struct SrtpContext {
    rtp: SessionKeys,
    rtcp: SessionKeys,
    rtp_streams: Vec<Stream>,
    rtcp_streams: Vec<Stream>,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("rtp_streams", &self.rtp_streams.len())
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    pub fn new(master: &SrtpKey) -> SrtpContext {
        SrtpContext {
            rtp: SessionKeys::new(master, LABEL_RTP_ENC, LABEL_RTP_AUTH, LABEL_RTP_SALT),
            rtcp: SessionKeys::new(master, LABEL_RTCP_ENC, LABEL_RTCP_AUTH, LABEL_RTCP_SALT),
            rtp_streams: Vec::new(),
            rtcp_streams: Vec::new(),
        }
    }

    /// Encrypts an RTP packet's payload in place and appends the tag. The ROC advances when
    /// the sequence number wraps.
    pub fn protect_rtp(&mut self, pkt: &mut Vec<u8>) -> Result<(), SrtpError> {
        let hl = rtp_header_len(pkt)?;
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ssrc = be32(&pkt[8..12]);
        let s = stream(&mut self.rtp_streams, ssrc, u64::from(seq));
        // Our own sequence numbers: the same estimate a receiver makes, so a wrap bumps the ROC.
        let index = estimate_index(s.index, seq).ok_or(SrtpError::TooOld)?;
        s.index = s.index.max(index);
        self.rtp.crypt(ssrc, index, &mut pkt[hl..]);
        let tag = self.rtp.tag(&[pkt, &((index >> 16) as u32).to_be_bytes()]);
        pkt.extend_from_slice(&tag);
        Ok(())
    }

    /// Checks and decrypts an SRTP packet in place; returns the length of the RTP packet
    /// (the tag stripped). Altered, replayed or foreign packets are refused and change
    /// nothing.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        if buf.len() < 12 + TAG_LEN {
            return Err(SrtpError::TooShort);
        }
        let n = buf.len() - TAG_LEN;
        let hl = rtp_header_len(&buf[..n])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(&buf[8..12]);
        let known = self.rtp_streams.iter().find(|s| s.ssrc == ssrc).copied();
        // RFC 3711 Appendix A: guess the ROC from the highest sequence number seen.
        let index = match known {
            None => u64::from(seq),
            Some(st) => {
                let index = estimate_index(st.index, seq).ok_or(SrtpError::TooOld)?;
                st.window.check(index)?;
                index
            }
        };
        let (body, tag) = buf.split_at_mut(n);
        if !self
            .rtp
            .verify(&[body, &((index >> 16) as u32).to_be_bytes()], tag)
        {
            return Err(SrtpError::Auth);
        }
        let s = stream(&mut self.rtp_streams, ssrc, index);
        s.window.accept(index);
        s.index = s.window.highest;
        self.rtp.crypt(ssrc, index, &mut body[hl..]);
        Ok(n)
    }

    /// Encrypts an RTCP compound packet after its first 8 bytes, appends E flag + index
    /// and the tag (RFC 3711 §3.4).
    pub fn protect_rtcp(&mut self, pkt: &mut Vec<u8>) -> Result<(), SrtpError> {
        if pkt.len() < 8 {
            return Err(SrtpError::TooShort);
        }
        if pkt[0] >> 6 != 2 {
            return Err(SrtpError::NotRtp);
        }
        let ssrc = be32(&pkt[4..8]);
        let s = stream(&mut self.rtcp_streams, ssrc, 0);
        let index = s.index;
        s.index = (s.index + 1) & 0x7FFF_FFFF;
        self.rtcp.crypt(ssrc, index, &mut pkt[8..]);
        pkt.extend_from_slice(&(0x8000_0000 | index as u32).to_be_bytes());
        let tag = self.rtcp.tag(&[pkt]);
        pkt.extend_from_slice(&tag);
        Ok(())
    }

    /// Checks and decrypts an SRTCP packet in place; returns the length of the RTCP packet.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        if buf.len() < 8 + SRTCP_OVERHEAD {
            return Err(SrtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(SrtpError::NotRtp);
        }
        let n = buf.len() - SRTCP_OVERHEAD;
        let ssrc = be32(&buf[4..8]);
        let e_index = be32(&buf[n..n + 4]);
        let index = u64::from(e_index & 0x7FFF_FFFF);
        if let Some(st) = self.rtcp_streams.iter().find(|s| s.ssrc == ssrc) {
            st.window.check(index)?;
        }
        let (signed, tag) = buf.split_at_mut(n + 4);
        if !self.rtcp.verify(&[signed], tag) {
            return Err(SrtpError::Auth);
        }
        let s = stream(&mut self.rtcp_streams, ssrc, index);
        s.window.accept(index);
        if e_index & 0x8000_0000 != 0 {
            self.rtcp.crypt(ssrc, index, &mut signed[8..n]);
        }
        Ok(n)
    }
}

/// Both directions of a call's SRTP: ours to protect, the peer's to unprotect.
#[derive(Debug, Clone)]
pub struct SrtpSession {
    pub outbound: SrtpContext,
    pub inbound: SrtpContext,
}

impl SrtpSession {
    pub fn new(ours: &SrtpKey, theirs: &SrtpKey) -> SrtpSession {
        SrtpSession {
            outbound: SrtpContext::new(ours),
            inbound: SrtpContext::new(theirs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn rfc_master() -> SrtpKey {
        SrtpKey::from_bytes(&hex(
            "E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6",
        ))
        .unwrap()
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for a session key and salt.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let keys = SessionKeys {
            cipher: Aes128::new_from_slice(&hex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap(),
            salt: hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")[..].try_into().unwrap(),
            auth: <HmacSha1 as Mac>::new_from_slice(b"x").unwrap(),
        };
        // SSRC 0, index 0: the counter is the salt · 2^16; blocks 0, 1, 2, then 0xFEFF..0xFF01.
        let mut ks = vec![0u8; 16 * 0xFF02];
        keys.crypt(0, 0, &mut ks);
        let block = |i: usize| ks[16 * i..16 * (i + 1)].to_vec();
        assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
        assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
        assert_eq!(block(0xFEFF), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
        assert_eq!(block(0xFF00), hex("362B7C3C6773516318A077D7FC5073AE"));
        assert_eq!(block(0xFF01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
    }

    /// RFC 3711 Appendix B.3: session keys derived from a master key and salt.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let m = rfc_master();
        let mut k = [0u8; 16];
        derive(&m, LABEL_RTP_ENC, &mut k);
        assert_eq!(k.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        derive(&m, LABEL_RTP_SALT, &mut s);
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut a = [0u8; 94];
        derive(&m, LABEL_RTP_AUTH, &mut a);
        assert_eq!(
            a.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE\
                 E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25\
                 6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    /// libsrtp's reference packet (srtp_driver, AES_CM_128_HMAC_SHA1_80 with the B.3 key):
    /// a whole protected packet, header, ciphertext and tag, byte for byte.
    #[test]
    fn libsrtp_reference_packet() {
        let mut pkt = hex("800f1234decafbadcafebabe");
        pkt.extend_from_slice(&[0xab; 16]);
        let plain = pkt.clone();
        let mut tx = SrtpContext::new(&rfc_master());
        tx.protect_rtp(&mut pkt).unwrap();
        assert_eq!(
            pkt,
            hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
        );
        let mut rx = SrtpContext::new(&rfc_master());
        let n = rx.unprotect_rtp(&mut pkt).unwrap();
        assert_eq!(&pkt[..n], &plain[..]);
    }

    fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn key(n: u8) -> SrtpKey {
        SrtpKey::from_bytes(&[n; KEY_SALT_LEN]).unwrap()
    }

    #[test]
    fn round_trip_tamper_and_replay() {
        let mut tx = SrtpContext::new(&key(1));
        let mut rx = SrtpContext::new(&key(1));
        let plain = rtp(7, 42, b"hello srtp payload");
        let mut p = plain.clone();
        tx.protect_rtp(&mut p).unwrap();
        assert_eq!(p.len(), plain.len() + TAG_LEN);
        assert_ne!(&p[12..plain.len()], &plain[12..], "payload is encrypted");
        // Tampered: one bit of the payload flipped.
        let mut bad = p.clone();
        bad[14] ^= 1;
        assert_eq!(rx.unprotect_rtp(&mut bad), Err(SrtpError::Auth));
        // Wrong key.
        let mut other = SrtpContext::new(&key(2));
        assert_eq!(other.unprotect_rtp(&mut p.clone()), Err(SrtpError::Auth));
        let mut ok = p.clone();
        let n = rx.unprotect_rtp(&mut ok).unwrap();
        assert_eq!(&ok[..n], &plain[..]);
        // The same packet again is a replay.
        assert_eq!(rx.unprotect_rtp(&mut p.clone()), Err(SrtpError::Replay));
        // Out of order within the window is fine; far behind is too old.
        let mut later = rtp(100, 42, b"x");
        tx.protect_rtp(&mut later).unwrap();
        let mut earlier = rtp(50, 42, b"y");
        tx.protect_rtp(&mut earlier).unwrap();
        let mut ancient = rtp(8, 42, b"z");
        tx.protect_rtp(&mut ancient).unwrap();
        rx.unprotect_rtp(&mut later).unwrap();
        rx.unprotect_rtp(&mut earlier).unwrap();
        assert_eq!(rx.unprotect_rtp(&mut ancient), Err(SrtpError::TooOld));
    }

    #[test]
    fn roc_rollover() {
        let mut tx = SrtpContext::new(&key(3));
        let mut rx = SrtpContext::new(&key(3));
        let mut seq = 65_530u16;
        for k in 0..20u32 {
            let plain = rtp(seq, 9, &k.to_be_bytes());
            let mut p = plain.clone();
            tx.protect_rtp(&mut p).unwrap();
            let n = rx.unprotect_rtp(&mut p).unwrap();
            assert_eq!(&p[..n], &plain[..], "packet {k} (seq {seq})");
            seq = seq.wrapping_add(1);
        }
        assert_eq!(tx.rtp_streams[0].index >> 16, 1);
        assert_eq!(rx.rtp_streams[0].index >> 16, 1);
        // A receiver that missed the wrap would use ROC 0: the tag covers the ROC, so it fails.
        let mut fresh = SrtpContext::new(&key(3));
        let mut p = rtp(seq, 9, b"q");
        tx.protect_rtp(&mut p).unwrap();
        assert_eq!(fresh.unprotect_rtp(&mut p), Err(SrtpError::Auth));
    }

    #[test]
    fn srtcp_round_trip_tamper_replay() {
        let mut tx = SrtpContext::new(&key(4));
        let mut rx = SrtpContext::new(&key(4));
        let plain = {
            let mut p = vec![0x80, 201, 0, 1, 0, 0, 0, 5];
            p.extend_from_slice(b"report");
            p
        };
        let mut p = plain.clone();
        tx.protect_rtcp(&mut p).unwrap();
        assert_eq!(p.len(), plain.len() + SRTCP_OVERHEAD);
        assert_eq!(p[plain.len()] & 0x80, 0x80, "E flag set");
        let mut bad = p.clone();
        bad[9] ^= 4;
        assert_eq!(rx.unprotect_rtcp(&mut bad), Err(SrtpError::Auth));
        let mut ok = p.clone();
        let n = rx.unprotect_rtcp(&mut ok).unwrap();
        assert_eq!(&ok[..n], &plain[..]);
        assert_eq!(rx.unprotect_rtcp(&mut p), Err(SrtpError::Replay));
        let mut second = plain.clone();
        tx.protect_rtcp(&mut second).unwrap();
        assert_eq!(be32(&second[plain.len()..]) & 0x7FFF_FFFF, 1);
        let n = rx.unprotect_rtcp(&mut second).unwrap();
        assert_eq!(&second[..n], &plain[..]);
    }

    /// Without the key the audio is noise: the ciphertext decoded as G.711 does not
    /// correlate with what was said; with the key it is the same signal again.
    #[test]
    fn ciphertext_is_not_audio() {
        use waihu_audio::g711::Law;
        let said: Vec<i16> = (0..8000)
            .map(|i| {
                ((f64::from(i) * 0.07).sin() * 8000.0 + (f64::from(i) * 0.013).sin() * 4000.0)
                    as i16
            })
            .collect();
        let mut tx = SrtpContext::new(&key(6));
        let mut rx = SrtpContext::new(&key(6));
        let (mut wire, mut heard) = (Vec::new(), Vec::new());
        for (k, frame) in said.chunks(160).enumerate() {
            let mut payload = Vec::new();
            Law::Ulaw.encode(frame, &mut payload);
            let mut p = rtp(k as u16, 1, &payload);
            tx.protect_rtp(&mut p).unwrap();
            Law::Ulaw.decode(&p[12..12 + 160], &mut wire);
            let n = rx.unprotect_rtp(&mut p).unwrap();
            Law::Ulaw.decode(&p[12..n], &mut heard);
        }
        let corr = |x: &[i16]| {
            let dot: f64 = x
                .iter()
                .zip(&said)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let n = |v: &[i16]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            dot / (n(x) * n(&said))
        };
        assert!(
            corr(&wire).abs() < 0.1,
            "ciphertext correlates: {}",
            corr(&wire)
        );
        assert!(corr(&heard) > 0.99, "decrypted: {}", corr(&heard));
    }

    proptest::proptest! {
        #[test]
        fn unprotect_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut rx = SrtpContext::new(&key(5));
            let _ = rx.unprotect_rtp(&mut bytes.clone());
            let _ = rx.unprotect_rtcp(&mut bytes.clone());
            let mut tx = SrtpContext::new(&key(5));
            let mut v = bytes.clone();
            if tx.protect_rtp(&mut v).is_ok() {
                let n = rx.unprotect_rtp(&mut v).unwrap();
                proptest::prop_assert_eq!(&v[..n], &bytes[..]);
            }
        }
    }
}
