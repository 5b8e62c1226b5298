//! Homomorphic analytics with the Paillier cryptosystem.
//!
//! Sensitive numbers (order amounts, promised payments, satisfaction scores) are encrypted
//! under a public key as they are collected. The analytics side holds **only the public key**:
//! it adds ciphertexts per group (campaign, segment, day) — Paillier is additively
//! homomorphic, `E(a)·E(b) mod n² = E(a + b)` — and hands out encrypted sums. Only the holder
//! of the private key turns a sum into a number, and [`Report`] refuses groups smaller than
//! `k` so no single customer's value can be decrypted through a report.
//!
//! Values are non-negative fixed-point integers: an attribute has a `scale` (100 for amounts
//! in yuan with fen), and sums are exact below 2^128 (decryption refuses larger ones).
//!
//! Pure computation: no I/O, no clock. Files are read and written by the binary.

use std::collections::BTreeMap;

use libpaillier::unknown_order::BigNumber;
use libpaillier::{Ciphertext, DecryptionKey, EncryptionKey};
use serde::{Deserialize, Serialize};

/// Smallest group a report decrypts by default.
pub const DEFAULT_K: u64 = 10;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum HeError {
    #[error("key generation failed (no suitable primes found); try again")]
    KeyGen,
    #[error("not a {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("the value does not fit the key's modulus")]
    TooLarge,
    #[error("this ciphertext was not made with this key (or is corrupt)")]
    WrongKey,
    #[error("group {group:?} has {count} values, fewer than k = {k}: refused")]
    TooSmall { group: String, count: u64, k: u64 },
}

fn malformed(what: &'static str, reason: impl ToString) -> HeError {
    HeError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

/// The public key: encrypts and adds; cannot decrypt.
#[derive(Clone, Debug)]
pub struct PublicKey(EncryptionKey);

/// The private key: decrypts sums. Kept off the analytics server.
#[derive(Clone, Debug)]
pub struct PrivateKey(DecryptionKey);

/// A Paillier ciphertext (an integer below n²).
#[derive(Clone, Debug, PartialEq)]
pub struct Encrypted(Ciphertext);

/// The JSON forms of the keys (hex of the library's canonical bytes).
#[derive(Serialize, Deserialize)]
struct KeyFile {
    scheme: String,
    kind: String,
    bits: usize,
    key: String,
}

const SCHEME: &str = "paillier-p99";

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str, what: &'static str) -> Result<Vec<u8>, HeError> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(what, "expected an even number of hex digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| malformed(what, e)))
        .collect()
}

/// Bits of the modulus every generated key has.
pub const MODULUS_BITS: usize = 2048;

/// Makes a new key pair: two random 1024-bit primes whose product has exactly
/// [`MODULUS_BITS`] bits (about half the pairs; the others are drawn again). Usually well
/// under a second, sometimes several.
pub fn generate() -> Result<(PublicKey, PrivateKey), HeError> {
    for _ in 0..64 {
        let dk = DecryptionKey::random().ok_or(HeError::KeyGen)?;
        let pk = PublicKey(EncryptionKey::from(&dk));
        if pk.bits() >= MODULUS_BITS {
            return Ok((pk, PrivateKey(dk)));
        }
    }
    Err(HeError::KeyGen)
}

impl PublicKey {
    /// Bits of the modulus n.
    pub fn bits(&self) -> usize {
        self.0.n().bit_length()
    }

    /// Encrypts `value` with fresh randomness (two encryptions of one value differ).
    pub fn encrypt(&self, value: u64) -> Result<Encrypted, HeError> {
        if value == 0 {
            // The library takes plaintexts in 1..n only: E(0) = E(1) · E(n − 1), since
            // 1 + (n − 1) ≡ 0 (mod n).
            let one = self.encrypt_big(&BigNumber::one())?;
            let rest = self.encrypt_big(&(self.0.n() - &BigNumber::one()))?;
            return self.add(&one, &rest);
        }
        self.encrypt_big(&BigNumber::from(value))
    }

    fn encrypt_big(&self, m: &BigNumber) -> Result<Encrypted, HeError> {
        self.0
            .encrypt(m.to_bytes(), None)
            .map(|(c, _)| Encrypted(c))
            .ok_or(HeError::TooLarge)
    }

    /// E(a + b) from E(a) and E(b).
    pub fn add(&self, a: &Encrypted, b: &Encrypted) -> Result<Encrypted, HeError> {
        self.0
            .add(&a.0, &b.0)
            .map(Encrypted)
            .ok_or(HeError::WrongKey)
    }

    /// E(0) without randomness: the neutral element to start a sum from (1 mod n²).
    pub fn zero(&self) -> Encrypted {
        Encrypted(BigNumber::one())
    }

    /// Whether `c` can be a ciphertext of this key (0 < c < n²).
    pub fn owns(&self, c: &Encrypted) -> bool {
        c.0 > BigNumber::zero() && &c.0 < self.0.nn()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&KeyFile {
            scheme: SCHEME.into(),
            kind: "public".into(),
            bits: self.bits(),
            key: to_hex(&self.0.to_bytes()),
        })
        .expect("strings serialise")
    }

    pub fn from_json(s: &str) -> Result<PublicKey, HeError> {
        let f: KeyFile = serde_json::from_str(s).map_err(|e| malformed("public key file", e))?;
        if f.scheme != SCHEME || f.kind != "public" {
            return Err(malformed(
                "public key file",
                format!("scheme {:?} kind {:?}", f.scheme, f.kind),
            ));
        }
        let key = EncryptionKey::from_bytes(from_hex(&f.key, "public key file")?)
            .map_err(|e| malformed("public key file", e))?;
        Ok(PublicKey(key))
    }
}

impl PrivateKey {
    pub fn public(&self) -> PublicKey {
        PublicKey(EncryptionKey::from(&self.0))
    }

    /// The plaintext of `c` (a sum of non-negative values below 2^128).
    pub fn decrypt(&self, c: &Encrypted) -> Result<u128, HeError> {
        if !self.public().owns(c) {
            return Err(HeError::WrongKey);
        }
        let bytes = self.0.decrypt(&c.0).ok_or(HeError::WrongKey)?;
        u128_of(&bytes)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&KeyFile {
            scheme: SCHEME.into(),
            kind: "private".into(),
            bits: self.public().bits(),
            key: to_hex(&self.0.to_bytes()),
        })
        .expect("strings serialise")
    }

    pub fn from_json(s: &str) -> Result<PrivateKey, HeError> {
        let f: KeyFile = serde_json::from_str(s).map_err(|e| malformed("private key file", e))?;
        if f.scheme != SCHEME || f.kind != "private" {
            return Err(malformed(
                "private key file",
                format!("scheme {:?} kind {:?}", f.scheme, f.kind),
            ));
        }
        let key = DecryptionKey::from_bytes(from_hex(&f.key, "private key file")?)
            .map_err(|e| malformed("private key file", e))?;
        Ok(PrivateKey(key))
    }
}

impl Encrypted {
    /// Hex of the big-endian integer (what files and the database keep).
    pub fn to_hex(&self) -> String {
        to_hex(&self.0.to_bytes())
    }

    pub fn from_hex(s: &str) -> Result<Encrypted, HeError> {
        let b = from_hex(s, "ciphertext")?;
        if b.is_empty() {
            return Err(malformed("ciphertext", "empty"));
        }
        Ok(Encrypted(BigNumber::from_slice(b)))
    }
}

/// One group's encrypted sum, as the analytics side hands it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSum {
    pub group: String,
    pub count: u64,
    /// Hex ciphertext of the sum.
    pub sum: String,
}

/// Encrypted sums per group, built with the public key only.
#[derive(Debug, Clone)]
pub struct Aggregator {
    key: PublicKey,
    groups: BTreeMap<String, (u64, Encrypted)>,
}

impl Aggregator {
    pub fn new(key: PublicKey) -> Aggregator {
        Aggregator {
            key,
            groups: BTreeMap::new(),
        }
    }

    /// Adds one encrypted value to its group. A ciphertext that cannot belong to the key is
    /// refused (and changes nothing).
    pub fn push(&mut self, group: &str, c: &Encrypted) -> Result<(), HeError> {
        if !self.key.owns(c) {
            return Err(HeError::WrongKey);
        }
        let zero = self.key.zero();
        let (n, sum) = self.groups.entry(group.to_string()).or_insert((0, zero));
        *sum = self.key.add(sum, c)?;
        *n += 1;
        Ok(())
    }

    /// The encrypted sums, groups in name order.
    pub fn finish(self) -> Vec<GroupSum> {
        self.groups
            .into_iter()
            .map(|(group, (count, sum))| GroupSum {
                group,
                count,
                sum: sum.to_hex(),
            })
            .collect()
    }
}

/// A decrypted group: its count, sum and mean (scaled back by the attribute's `scale`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupResult {
    pub group: String,
    pub count: u64,
    pub sum: f64,
    pub mean: f64,
}

/// The key holder's side: decrypts the sums of groups with at least `k` values; smaller
/// groups are refused (listed with their count only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub k: u64,
    pub groups: Vec<GroupResult>,
    pub refused: Vec<HeError>,
}

impl Serialize for HeError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The k-anonymity rule, in one place for every way of decrypting: a group of fewer than `k`
/// values is never released.
fn releasable(group: &str, count: u64, k: u64) -> Result<(), HeError> {
    if count < k {
        return Err(HeError::TooSmall {
            group: group.to_string(),
            count,
            k,
        });
    }
    Ok(())
}

pub fn decrypt_report(key: &PrivateKey, sums: &[GroupSum], k: u64, scale: u64) -> Report {
    let mut groups = Vec::new();
    let mut refused = Vec::new();
    for g in sums {
        if let Err(e) = releasable(&g.group, g.count, k) {
            refused.push(e);
            continue;
        }
        match Encrypted::from_hex(&g.sum).and_then(|c| key.decrypt(&c)) {
            Ok(total) => groups.push(group_result(&g.group, g.count, total, scale)),
            Err(e) => refused.push(e),
        }
    }
    Report { k, groups, refused }
}

/// A value in the attribute's units as the fixed-point integer that is encrypted
/// (`12.34` yuan at scale 100 → 1234). Negative, non-finite or too large values are refused.
pub fn to_fixed(value: f64, scale: u64) -> Result<u64, HeError> {
    let v = value * scale.max(1) as f64;
    if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
        return Err(malformed(
            "value",
            format!("{value} (non-negative numbers only)"),
        ));
    }
    Ok(v.round() as u64)
}

/// One of two shares of a private key (2-of-2 threshold decryption). Neither share
/// decrypts anything alone: each holder turns a ciphertext into a *partial*
/// (`c^dᵢ mod n²`) with their share, and only both partials together give the
/// plaintext ([`combine`]). With d = λ·(λ⁻¹ mod n), d ≡ 0 (mod λ) and d ≡ 1 (mod n), so
/// `c^d = 1 + m·n (mod n²)`; the shares are d₁ uniform modulo nλ and d₂ = d − d₁ mod nλ,
/// each alone uniformly distributed, so neither says anything about d.
#[derive(Clone, Debug)]
pub struct KeyShare {
    index: u8,
    n: BigNumber,
    d: BigNumber,
}

/// A holder's partial decryption of one ciphertext.
#[derive(Clone, Debug, PartialEq)]
pub struct Partial(BigNumber);

#[derive(Serialize, Deserialize)]
struct ShareFile {
    scheme: String,
    kind: String,
    index: u8,
    bits: usize,
    n: String,
    d: String,
}

impl PrivateKey {
    /// Split into two shares for two holders; afterwards the whole key can be destroyed.
    pub fn split(&self) -> Result<(KeyShare, KeyShare), HeError> {
        let n = self.0.n().clone();
        let lambda = self.0.lambda();
        let inv = lambda.invert(&n).ok_or(HeError::KeyGen)?;
        let order = &n * lambda;
        let d = (lambda * &inv).nmod(&order);
        let d1 = BigNumber::random(&order);
        let d2 = d.modsub(&d1, &order);
        Ok((
            KeyShare {
                index: 1,
                n: n.clone(),
                d: d1,
            },
            KeyShare { index: 2, n, d: d2 },
        ))
    }
}

impl KeyShare {
    /// 1 or 2.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The public key the share belongs to.
    pub fn public(&self) -> PublicKey {
        PublicKey(EncryptionKey::from_n(self.n.clone()))
    }

    /// This holder's partial decryption of `c`.
    pub fn partial(&self, c: &Encrypted) -> Result<Partial, HeError> {
        let nn = &self.n * &self.n;
        if c.0 <= BigNumber::zero() || c.0 >= nn {
            return Err(HeError::WrongKey);
        }
        Ok(Partial(c.0.modpow(&self.d, &nn)))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&ShareFile {
            scheme: SCHEME.into(),
            kind: "share".into(),
            index: self.index,
            bits: self.n.bit_length(),
            n: to_hex(&self.n.to_bytes()),
            d: to_hex(&self.d.to_bytes()),
        })
        .expect("strings serialise")
    }

    pub fn from_json(s: &str) -> Result<KeyShare, HeError> {
        let f: ShareFile = serde_json::from_str(s).map_err(|e| malformed("key share file", e))?;
        if f.scheme != SCHEME || f.kind != "share" || !(1..=2).contains(&f.index) {
            return Err(malformed(
                "key share file",
                format!("scheme {:?} kind {:?} index {}", f.scheme, f.kind, f.index),
            ));
        }
        let n = BigNumber::from_slice(from_hex(&f.n, "key share file")?);
        let d = BigNumber::from_slice(from_hex(&f.d, "key share file")?);
        if n.bit_length() < 1024 || d.is_zero() {
            return Err(malformed("key share file", "modulus or share out of range"));
        }
        Ok(KeyShare {
            index: f.index,
            n,
            d,
        })
    }
}

impl Partial {
    pub fn to_hex(&self) -> String {
        to_hex(&self.0.to_bytes())
    }

    pub fn from_hex(s: &str) -> Result<Partial, HeError> {
        let b = from_hex(s, "partial decryption")?;
        if b.is_empty() {
            return Err(malformed("partial decryption", "empty"));
        }
        Ok(Partial(BigNumber::from_slice(b)))
    }
}

/// Both holders' partials of one ciphertext → its plaintext. Public: whoever combines
/// learns the value, so holders only make partials of sums they may release.
pub fn combine(key: &PublicKey, a: &Partial, b: &Partial) -> Result<u128, HeError> {
    let n = key.0.n();
    let nn = key.0.nn();
    if a.0 >= *nn || b.0 >= *nn {
        return Err(HeError::WrongKey);
    }
    let x = a.0.modmul(&b.0, nn);
    let (m, r) = (x - BigNumber::one()).div_rem(n);
    if !r.is_zero() || &m >= n {
        return Err(HeError::WrongKey);
    }
    u128_of(&m.to_bytes())
}

/// A big-endian plaintext as u128; sums at or above 2^128 are refused.
fn u128_of(bytes: &[u8]) -> Result<u128, HeError> {
    let digits = bytes
        .iter()
        .position(|b| *b != 0)
        .map_or(&[][..], |i| &bytes[i..]);
    if digits.len() > 16 {
        return Err(HeError::TooLarge);
    }
    Ok(digits
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b)))
}

/// A decrypted group, scaled back to the attribute's units.
fn group_result(group: &str, count: u64, total: u128, scale: u64) -> GroupResult {
    let sum = total as f64 / scale.max(1) as f64;
    GroupResult {
        group: group.to_string(),
        count,
        sum,
        mean: sum / count.max(1) as f64,
    }
}

/// One holder's partials of a sums file: groups smaller than `k` are refused here,
/// so a combiner cannot decrypt them whatever it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialReport {
    pub index: u8,
    pub k: u64,
    pub groups: Vec<GroupPartial>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPartial {
    pub group: String,
    pub count: u64,
    /// The sum's ciphertext this partial is of (so the combiner can check both agree).
    pub sum: String,
    pub partial: String,
}

pub fn partial_report(
    share: &KeyShare,
    sums: &[GroupSum],
    k: u64,
) -> (PartialReport, Vec<HeError>) {
    let mut groups = Vec::new();
    let mut refused = Vec::new();
    for g in sums {
        if let Err(e) = releasable(&g.group, g.count, k) {
            refused.push(e);
            continue;
        }
        match Encrypted::from_hex(&g.sum).and_then(|c| share.partial(&c)) {
            Ok(p) => groups.push(GroupPartial {
                group: g.group.clone(),
                count: g.count,
                sum: g.sum.clone(),
                partial: p.to_hex(),
            }),
            Err(e) => refused.push(e),
        }
    }
    (
        PartialReport {
            index: share.index,
            k,
            groups,
        },
        refused,
    )
}

/// Both holders' partial reports → the report, for groups both released (same sum,
/// same count) with at least `k` values.
pub fn combine_report(
    key: &PublicKey,
    a: &PartialReport,
    b: &PartialReport,
    k: u64,
    scale: u64,
) -> Result<Report, HeError> {
    if a.index == b.index {
        return Err(malformed(
            "partial reports",
            format!(
                "both come from share {}; one of each share is needed",
                a.index
            ),
        ));
    }
    let theirs: BTreeMap<&str, &GroupPartial> =
        b.groups.iter().map(|g| (g.group.as_str(), g)).collect();
    let mut groups = Vec::new();
    let mut refused = Vec::new();
    for g in &a.groups {
        if let Err(e) = releasable(&g.group, g.count, k) {
            refused.push(e);
            continue;
        }
        let Some(o) = theirs
            .get(g.group.as_str())
            .filter(|o| o.sum == g.sum && o.count == g.count)
        else {
            refused.push(malformed(
                "partial reports",
                format!("group {:?} is not in both, or not of the same sum", g.group),
            ));
            continue;
        };
        match Partial::from_hex(&g.partial)
            .and_then(|pa| Partial::from_hex(&o.partial).map(|pb| (pa, pb)))
            .and_then(|(pa, pb)| combine(key, &pa, &pb))
        {
            Ok(total) => groups.push(group_result(&g.group, g.count, total, scale)),
            Err(e) => refused.push(e),
        }
    }
    Ok(Report { k, groups, refused })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn keys() -> &'static (PublicKey, PrivateKey) {
        static K: OnceLock<(PublicKey, PrivateKey)> = OnceLock::new();
        K.get_or_init(|| generate().unwrap())
    }

    #[test]
    fn two_shares_decrypt_together_and_neither_alone() {
        let (pk, sk) = keys();
        let (s1, s2) = sk.split().unwrap();
        let (s1, s2) = (
            KeyShare::from_json(&s1.to_json()).unwrap(),
            KeyShare::from_json(&s2.to_json()).unwrap(),
        );
        assert_eq!(s1.public().to_json(), pk.to_json());
        let mut agg = Aggregator::new(pk.clone());
        let values = [12_345u64, 0, 99_999, 1, 500_000];
        for v in values {
            agg.push("vip", &pk.encrypt(v).unwrap()).unwrap();
        }
        agg.push("tiny", &pk.encrypt(7).unwrap()).unwrap();
        let sums = agg.finish();
        let c = Encrypted::from_hex(&sums.iter().find(|g| g.group == "vip").unwrap().sum).unwrap();
        let (p1, p2) = (s1.partial(&c).unwrap(), s2.partial(&c).unwrap());
        let total: u128 = values.iter().map(|v| u128::from(*v)).sum();
        assert_eq!(combine(pk, &p1, &p2).unwrap(), total);
        assert_eq!(combine(pk, &p2, &p1).unwrap(), total);
        assert_eq!(sk.decrypt(&c).unwrap(), total);
        // One share twice, or one share with a share of another split: refused.
        assert!(combine(pk, &p1, &p1).is_err());
        let (o1, _) = sk.split().unwrap();
        assert!(combine(pk, &o1.partial(&c).unwrap(), &p2).is_err());
        // Reports: each holder refuses groups below k; the combination equals the plaintext.
        let (r1, refused) = partial_report(&s1, &sums, 2);
        assert_eq!(refused.len(), 1, "the one-value group");
        let (r2, _) = partial_report(&s2, &sums, 2);
        let r1 =
            serde_json::from_str::<PartialReport>(&serde_json::to_string(&r1).unwrap()).unwrap();
        let rep = combine_report(pk, &r1, &r2, 2, 100).unwrap();
        assert_eq!(rep.groups.len(), 1);
        assert!((rep.groups[0].sum - total as f64 / 100.0).abs() < 1e-6);
        assert!(combine_report(pk, &r1, &r1, 2, 100).is_err());
        assert!(KeyShare::from_json("{}").is_err());
    }

    #[test]
    fn sums_of_ciphertexts_decrypt_to_sums_of_values() {
        let (pk, sk) = keys();
        assert_eq!(pk.bits(), MODULUS_BITS);
        let values = [12_000_u64, 3_550, 0, 9_999, 1];
        let mut agg = Aggregator::new(pk.clone());
        for (i, v) in values.iter().enumerate() {
            let c = pk.encrypt(*v).unwrap();
            // Fresh randomness: the same value never encrypts the same way twice.
            assert_ne!(c, pk.encrypt(*v).unwrap());
            agg.push(if i % 2 == 0 { "a" } else { "b" }, &c).unwrap();
        }
        let sums = agg.finish();
        assert_eq!(sums.len(), 2);
        let r = decrypt_report(sk, &sums, 2, 100);
        assert!(r.refused.is_empty(), "{r:?}");
        assert_eq!(r.groups[0].group, "a");
        assert_eq!(r.groups[0].count, 3);
        assert!((r.groups[0].sum - 120.01).abs() < 1e-9, "{r:?}");
        assert!((r.groups[1].sum - 135.49).abs() < 1e-9, "{r:?}");
        assert!((r.groups[1].mean - 67.745).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn small_groups_are_refused_and_foreign_ciphertexts_rejected() {
        let (pk, sk) = keys();
        let mut agg = Aggregator::new(pk.clone());
        agg.push("solo", &pk.encrypt(4200).unwrap()).unwrap();
        let r = decrypt_report(sk, &agg.finish(), DEFAULT_K, 1);
        assert!(r.groups.is_empty());
        assert_eq!(
            r.refused,
            vec![HeError::TooSmall {
                group: "solo".into(),
                count: 1,
                k: DEFAULT_K
            }]
        );
        // Zero and anything ≥ n² cannot be ours.
        let mut agg = Aggregator::new(pk.clone());
        assert_eq!(
            agg.push("x", &Encrypted::from_hex("00").unwrap()),
            Err(HeError::WrongKey)
        );
        let huge = "ff".repeat(600);
        assert_eq!(
            agg.push("x", &Encrypted::from_hex(&huge).unwrap()),
            Err(HeError::WrongKey)
        );
        assert!(agg.finish().is_empty());
    }

    #[test]
    fn keys_and_ciphertexts_survive_their_files() {
        let (pk, sk) = keys();
        let pk2 = PublicKey::from_json(&pk.to_json()).unwrap();
        let sk2 = PrivateKey::from_json(&sk.to_json()).unwrap();
        let c = pk2.encrypt(77).unwrap();
        let c2 = Encrypted::from_hex(&c.to_hex()).unwrap();
        assert_eq!(sk2.decrypt(&c2).unwrap(), 77);
        assert_eq!(sk.decrypt(&pk.zero()).unwrap(), 0);
        // The public file holds no private material, and the kinds are not interchangeable.
        assert!(PrivateKey::from_json(&pk.to_json()).is_err());
        assert!(PublicKey::from_json(&sk.to_json()).is_err());
        assert!(PublicKey::from_json("{}").is_err());
        assert!(Encrypted::from_hex("xyz").is_err());
        assert!(Encrypted::from_hex("").is_err());
    }

    #[test]
    fn fixed_point() {
        assert_eq!(to_fixed(12.34, 100).unwrap(), 1234);
        assert_eq!(to_fixed(5.0, 1).unwrap(), 5);
        assert!(to_fixed(-1.0, 100).is_err());
        assert!(to_fixed(f64::NAN, 100).is_err());
        assert!(to_fixed(1e30, 100).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever text arrives as a ciphertext or key file: an error or a value, never a panic.
        #[test]
        fn outside_text_never_panics(s in "\\PC{0,300}") {
            let (pk, sk) = keys();
            if let Ok(c) = Encrypted::from_hex(&s) {
                let _ = sk.decrypt(&c);
                let mut agg = Aggregator::new(pk.clone());
                let _ = agg.push("g", &c);
            }
            let _ = PublicKey::from_json(&s);
            let _ = PrivateKey::from_json(&s);
        }
    }
}

#[cfg(test)]
mod file_keys {
    use super::*;

    #[test]
    fn sums_with_keys_read_from_files() {
        let (pk, sk) = generate().unwrap();
        let pk = PublicKey::from_json(&pk.to_json()).unwrap();
        let sk = PrivateKey::from_json(&sk.to_json()).unwrap();
        let mut agg = Aggregator::new(pk.clone());
        for v in [1000u64, 1137, 1274] {
            let c = Encrypted::from_hex(&pk.encrypt(v).unwrap().to_hex()).unwrap();
            agg.push("g", &c).unwrap();
        }
        let sums = agg.finish();
        let c = Encrypted::from_hex(&sums[0].sum).unwrap();
        assert_eq!(sk.decrypt(&c).unwrap(), 3411);
    }
}
