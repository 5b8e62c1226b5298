//! Personal data protection: field encryption, blind indexes, master keys.
//!
//! * Values (phone numbers, names) are sealed with AES-256-GCM. The associated
//!   data binds each ciphertext to `table.column` and its row key, so a value
//!   copied into another row or column fails to open instead of decrypting.
//! * Lookups, dedup and do-not-call matching use a blind index: HMAC-SHA256 of
//!   the normalised value under a separate key. Equal inputs give equal indexes;
//!   the index is useless without the key.
//! * Both keys are derived (HKDF-SHA256) from one 32-byte master key, read from
//!   `WAIHU_MASTER_KEY` (64 hex characters) or from a key file created on first
//!   use with mode 0600.
//!
//! Architecture invariant: no storage and no clock here; the only I/O is
//! reading or creating the key file in [`MasterKey::load_or_create`].

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Ciphertext layout version, the first byte of every sealed value: v1 under
/// the vault's field key, v2 under one customer's [`DataKey`].
const SEAL_V1: u8 = 1;
const SEAL_V2: u8 = 2;
/// Associated data of a wrapped customer data key.
const WRAP_AAD: &[u8] = b"waihu/customer-data-key/v1";
/// Associated data of the wrapped vault root in the keyring.
const ROOT_AAD: &[u8] = b"waihu/keyring/root/v1";
const NONCE_LEN: usize = 12;
/// Name of the environment variable that overrides the key file.
pub const MASTER_KEY_ENV: &str = "WAIHU_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("{MASTER_KEY_ENV} must be 64 hexadecimal characters (32 bytes); got {0} characters")]
    BadEnvKey(usize),
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("cannot decrypt {context}: wrong master key, or the value was moved or tampered with")]
    Open { context: String },
    #[error("cannot decrypt {context}: it was sealed under a customer data key that has been erased (crypto-shredded)")]
    Shredded { context: String },
    #[error("encrypted value for {context} is malformed ({reason})")]
    Malformed {
        context: String,
        reason: &'static str,
    },
}

/// The 32-byte master key. Never printed, zeroed on drop.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Where a master key came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File { path: String, created: bool },
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// Parse 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<Self, PrivacyError> {
        let s = s.trim();
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(PrivacyError::BadEnvKey(s.chars().count()));
        }
        Ok(MasterKey::from_bytes(out))
    }

    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        MasterKey::from_bytes(k)
    }

    /// `WAIHU_MASTER_KEY` if set; else the key file at `path`, created with
    /// mode 0600 (and its directory) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<(Self, KeySource), PrivacyError> {
        if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
            if !v.trim().is_empty() {
                return Ok((MasterKey::from_hex(&v)?, KeySource::Env));
            }
        }
        let shown = path.display().to_string();
        let file_err = |reason: String| PrivacyError::KeyFile {
            path: shown.clone(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = MasterKey::from_hex(&text)
                    .map_err(|_| file_err("does not hold 64 hexadecimal characters".into()))?;
                Ok((
                    key,
                    KeySource::File {
                        path: shown.clone(),
                        created: false,
                    },
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                write_private(path, &hex::encode(*key.0)).map_err(|e| file_err(e.to_string()))?;
                Ok((
                    key,
                    KeySource::File {
                        path: shown.clone(),
                        created: true,
                    },
                ))
            }
            Err(e) => Err(file_err(e.to_string())),
        }
    }

    /// The public fingerprint a database stores to recognise its master key
    /// (what [`Vault::key_check`] gives).
    pub fn check(&self) -> String {
        hex::encode(&self.derive(b"key-check")[..8])
    }

    /// Wrap `root` (the vault's root key, see [`Vault::with_root`]) under this
    /// master key, for the database's keyring.
    pub fn wrap_root(&self, root: &MasterKey) -> Vec<u8> {
        let kek = self.derive(b"keyring-wrap");
        let c = Aes256Gcm::new_from_slice(&kek[..]).expect("32-byte key");
        seal_raw(&c, 1, ROOT_AAD, &root.0[..])
    }

    /// Unwrap a root wrapped by [`MasterKey::wrap_root`] with this master key.
    pub fn unwrap_root(&self, wrapped: &[u8]) -> Result<MasterKey, PrivacyError> {
        let kek = self.derive(b"keyring-wrap");
        let c = Aes256Gcm::new_from_slice(&kek[..]).expect("32-byte key");
        let k = Zeroizing::new(open_raw(&c, 1, ROOT_AAD, wrapped, "keyring root")?);
        let bytes: [u8; 32] = k[..].try_into().map_err(|_| PrivacyError::Malformed {
            context: "keyring root".into(),
            reason: "not 32 bytes",
        })?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// Write this key to `path` (mode 0600, created new: an existing file is
    /// an error), fsynced. For `waihu keys rotate`.
    pub fn write_new_file(&self, path: &Path) -> Result<(), PrivacyError> {
        write_private(path, &hex::encode(*self.0)).map_err(|e| PrivacyError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Hex form, for `waihu` to print once when a user asks to back the key up.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.0))
    }

    /// The seed of the Ed25519 key that signs audit-chain checkpoints. Derived, so it
    /// is exactly as secret as the master key and never stored on its own.
    pub fn audit_signing_seed(&self) -> Zeroizing<[u8; 32]> {
        self.derive(b"audit-checkpoint-signing")
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"waihu/v1"), &self.0[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        hk.expand(label, &mut out[..])
            .expect("HKDF output length is valid");
        out
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Field cipher and blind indexer derived from one master key. Cheap to clone
/// into worker threads.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
    wrap: Aes256Gcm,
    index_mac: Hmac<Sha256>,
    check: String,
}

/// One customer's data key (crypto-shredding): what is sealed under it
/// (transcripts, recordings, voiceprints, messages, the customer's own fields)
/// opens only while its wrapped form is kept. Stored only wrapped by the
/// vault's key-wrapping key; erasing a customer destroys the wrapped form.
#[derive(Clone)]
pub struct DataKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// Seal under this customer's key (layout v2; same binding as [`Vault::seal`]).
    pub fn seal(&self, table: &str, column: &str, row_key: &str, plaintext: &str) -> Vec<u8> {
        self.seal_bytes(table, column, row_key, plaintext.as_bytes())
    }

    pub fn seal_bytes(
        &self,
        table: &str,
        column: &str,
        row_key: &str,
        plaintext: &[u8],
    ) -> Vec<u8> {
        seal_with(&self.cipher, SEAL_V2, table, column, row_key, plaintext)
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// A vault whose root is the master key itself (databases from before the
    /// keyring, and tests). See [`Vault::with_root`].
    pub fn new(key: &MasterKey) -> Self {
        Vault::with_root(key, key)
    }

    /// A vault over `root` (field encryption and blind index keys derive from it,
    /// so they survive a master-key rotation) whose customer data keys are
    /// wrapped under `master` (rotation re-wraps them) and whose key check is
    /// the master's.
    pub fn with_root(master: &MasterKey, root: &MasterKey) -> Self {
        let enc = root.derive(b"field-encryption");
        let wrap = master.derive(b"data-key-wrap");
        let idx = root.derive(b"blind-index");
        let chk = master.derive(b"key-check");
        let cipher = Aes256Gcm::new_from_slice(&enc[..]).expect("32-byte key");
        let wrap = Aes256Gcm::new_from_slice(&wrap[..]).expect("32-byte key");
        let index_mac = <Hmac<Sha256> as Mac>::new_from_slice(&idx[..]).expect("any key length");
        // A public fingerprint of the key: stored in the database so a wrong key
        // is detected on open, before anything is decrypted or written.
        let check = hex::encode(&chk[..8]);
        Vault {
            cipher,
            wrap,
            index_mac,
            check,
        }
    }

    /// A fresh random data key for one customer and its wrapped form (what
    /// the store keeps).
    pub fn new_data_key(&self) -> (DataKey, Vec<u8>) {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(&mut k[..]);
        let wrapped = seal_raw(&self.wrap, 1, WRAP_AAD, &k[..]);
        let cipher = Aes256Gcm::new_from_slice(&k[..]).expect("32-byte key");
        (DataKey { cipher }, wrapped)
    }

    /// Re-wrap a data key of this vault for `to` (master-key rotation): the key
    /// itself, and so everything sealed under it, is unchanged.
    pub fn rewrap_data_key(&self, to: &Vault, wrapped: &[u8]) -> Result<Vec<u8>, PrivacyError> {
        let k = Zeroizing::new(open_raw(
            &self.wrap,
            1,
            WRAP_AAD,
            wrapped,
            "customer data key",
        )?);
        Ok(seal_raw(&to.wrap, 1, WRAP_AAD, &k[..]))
    }

    /// Unwrap a data key made by [`Vault::new_data_key`] under this master key.
    pub fn unwrap_data_key(&self, wrapped: &[u8]) -> Result<DataKey, PrivacyError> {
        let k = Zeroizing::new(open_raw(
            &self.wrap,
            1,
            WRAP_AAD,
            wrapped,
            "customer data key",
        )?);
        if k.len() != 32 {
            return Err(PrivacyError::Malformed {
                context: "customer data key".into(),
                reason: "not 32 bytes",
            });
        }
        let cipher = Aes256Gcm::new_from_slice(&k[..]).expect("32-byte key");
        Ok(DataKey { cipher })
    }

    /// Open a value sealed either by the vault (v1) or under a customer's
    /// data key (v2; `key` is `None` once the customer was erased).
    pub fn open_bytes_with(
        &self,
        key: Option<&DataKey>,
        table: &str,
        column: &str,
        row_key: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, PrivacyError> {
        match sealed.first() {
            Some(&SEAL_V2) => match key {
                Some(k) => open_with(&k.cipher, SEAL_V2, table, column, row_key, sealed),
                None => Err(PrivacyError::Shredded {
                    context: format!("{table}.{column}"),
                }),
            },
            _ => self.open_bytes(table, column, row_key, sealed),
        }
    }

    /// [`Vault::open_bytes_with`] for text.
    pub fn open_with(
        &self,
        key: Option<&DataKey>,
        table: &str,
        column: &str,
        row_key: &str,
        sealed: &[u8],
    ) -> Result<String, PrivacyError> {
        let pt = self.open_bytes_with(key, table, column, row_key, sealed)?;
        String::from_utf8(pt).map_err(|_| PrivacyError::Malformed {
            context: format!("{table}.{column}"),
            reason: "not UTF-8",
        })
    }

    /// Public fingerprint of the master key (not secret; 16 hex characters).
    pub fn key_check(&self) -> &str {
        &self.check
    }

    /// Blind index of an already-normalised value (e.g. an E.164 number).
    pub fn blind_index(&self, normalised: &str) -> String {
        let mut mac = self.index_mac.clone();
        mac.update(normalised.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Seal `plaintext` for `table.column` of the row identified by `row_key`.
    pub fn seal(&self, table: &str, column: &str, row_key: &str, plaintext: &str) -> Vec<u8> {
        self.seal_bytes(table, column, row_key, plaintext.as_bytes())
    }

    /// [`Vault::seal`] for binary values (call recordings).
    pub fn seal_bytes(
        &self,
        table: &str,
        column: &str,
        row_key: &str,
        plaintext: &[u8],
    ) -> Vec<u8> {
        seal_with(&self.cipher, SEAL_V1, table, column, row_key, plaintext)
    }

    /// Open a value sealed by [`Vault::seal`] with the same table, column and row key.
    pub fn open(
        &self,
        table: &str,
        column: &str,
        row_key: &str,
        sealed: &[u8],
    ) -> Result<String, PrivacyError> {
        let pt = self.open_bytes(table, column, row_key, sealed)?;
        String::from_utf8(pt).map_err(|_| PrivacyError::Malformed {
            context: format!("{table}.{column}"),
            reason: "not UTF-8",
        })
    }

    /// Open a value sealed by [`Vault::seal_bytes`] (or [`Vault::seal`]).
    pub fn open_bytes(
        &self,
        table: &str,
        column: &str,
        row_key: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, PrivacyError> {
        if sealed.first() == Some(&SEAL_V2) {
            return Err(PrivacyError::Shredded {
                context: format!("{table}.{column}"),
            });
        }
        open_with(&self.cipher, SEAL_V1, table, column, row_key, sealed)
    }
}

fn seal_with(
    cipher: &Aes256Gcm,
    version: u8,
    table: &str,
    column: &str,
    row_key: &str,
    plaintext: &[u8],
) -> Vec<u8> {
    seal_raw(cipher, version, &aad(table, column, row_key), plaintext)
}

/// `version ‖ nonce ‖ AES-256-GCM(plaintext, aad)`.
fn seal_raw(cipher: &Aes256Gcm, version: u8, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(version);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(
    cipher: &Aes256Gcm,
    version: u8,
    table: &str,
    column: &str,
    row_key: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, PrivacyError> {
    open_raw(
        cipher,
        version,
        &aad(table, column, row_key),
        sealed,
        &format!("{table}.{column}"),
    )
}

fn open_raw(
    cipher: &Aes256Gcm,
    version: u8,
    aad: &[u8],
    sealed: &[u8],
    context: &str,
) -> Result<Vec<u8>, PrivacyError> {
    let malformed = |reason| PrivacyError::Malformed {
        context: context.to_string(),
        reason,
    };
    let (&v, rest) = sealed.split_first().ok_or_else(|| malformed("empty"))?;
    if v != version {
        return Err(malformed("unknown version byte"));
    }
    if rest.len() < NONCE_LEN + 16 {
        return Err(malformed("too short"));
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| PrivacyError::Open {
            context: context.to_string(),
        })
}

fn aad(table: &str, column: &str, row_key: &str) -> Vec<u8> {
    // Length-prefixed so ("a.b", "c") and ("a", "b.c") cannot collide.
    let mut v = Vec::with_capacity(12 + table.len() + column.len() + row_key.len());
    for part in [table, column, row_key] {
        v.extend_from_slice(&(part.len() as u32).to_be_bytes());
        v.extend_from_slice(part.as_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vault(seed: u8) -> Vault {
        Vault::new(&MasterKey::from_bytes([seed; 32]))
    }

    #[test]
    fn data_key_seals_opens_and_shreds() {
        let v = vault(1);
        let (k, wrapped) = v.new_data_key();
        let ct = k.seal("call_turns", "text", "c1/3", "我下周再还");
        assert_eq!(ct[0], SEAL_V2);
        // The vault alone cannot open it; the unwrapped key can.
        assert!(matches!(
            v.open("call_turns", "text", "c1/3", &ct),
            Err(PrivacyError::Shredded { .. })
        ));
        let k2 = v.unwrap_data_key(&wrapped).unwrap();
        assert_eq!(
            v.open_with(Some(&k2), "call_turns", "text", "c1/3", &ct)
                .unwrap(),
            "我下周再还"
        );
        // Key destroyed: refused with the shredding error, not a tamper error.
        assert!(matches!(
            v.open_with(None, "call_turns", "text", "c1/3", &ct),
            Err(PrivacyError::Shredded { .. })
        ));
        // Another customer's key, another master key, a moved value: refused.
        let (other, _) = v.new_data_key();
        assert!(v
            .open_with(Some(&other), "call_turns", "text", "c1/3", &ct)
            .is_err());
        assert!(vault(2).unwrap_data_key(&wrapped).is_err());
        assert!(v
            .open_with(Some(&k2), "call_turns", "text", "c1/4", &ct)
            .is_err());
        // v1 values still open through the same call, key or not.
        let v1 = v.seal("customers", "name", "i", "张三");
        assert_eq!(
            v.open_with(Some(&k2), "customers", "name", "i", &v1)
                .unwrap(),
            "张三"
        );
        assert!(v.unwrap_data_key(&wrapped[..10]).is_err());
    }

    #[test]
    fn rotation_rewraps_keys_and_keeps_everything_open() {
        let (old, new) = (
            MasterKey::from_bytes([1; 32]),
            MasterKey::from_bytes([2; 32]),
        );
        let root = MasterKey::generate();
        let wrapped_root = old.wrap_root(&root);
        let v_old = Vault::with_root(&old, &old.unwrap_root(&wrapped_root).unwrap());
        let (k, wrapped) = v_old.new_data_key();
        let ct = k.seal("customers", "phone", "i", "+8613812345678");
        let field = v_old.seal("dnc", "phone", "i", "+8613900001111");
        let idx = v_old.blind_index("+8613812345678");
        // Rotate: the root re-wrapped, the data key re-wrapped, nothing re-sealed.
        let v_new = Vault::with_root(&new, &root);
        let rewrapped = v_old.rewrap_data_key(&v_new, &wrapped).unwrap();
        assert!(new.unwrap_root(&new.wrap_root(&root)).is_ok());
        assert!(old.unwrap_root(&new.wrap_root(&root)).is_err());
        let k2 = v_new.unwrap_data_key(&rewrapped).unwrap();
        assert_eq!(
            v_new
                .open_with(Some(&k2), "customers", "phone", "i", &ct)
                .unwrap(),
            "+8613812345678"
        );
        assert_eq!(
            v_new.open("dnc", "phone", "i", &field).unwrap(),
            "+8613900001111"
        );
        assert_eq!(v_new.blind_index("+8613812345678"), idx);
        assert_ne!(v_new.key_check(), v_old.key_check());
        assert_eq!(v_new.key_check(), new.check());
        // The old master no longer opens the re-wrapped key.
        assert!(v_old.unwrap_data_key(&rewrapped).is_err());
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let v = vault(1);
        let ct = v.seal("customers", "phone", "row1", "+8613812345678");
        assert_eq!(
            v.open("customers", "phone", "row1", &ct).unwrap(),
            "+8613812345678"
        );
        assert!(
            !ct.windows(6).any(|w| w == b"138123"),
            "plaintext leaked into ciphertext"
        );
        // Moved to another row, column or table: refused.
        assert!(matches!(
            v.open("customers", "phone", "row2", &ct),
            Err(PrivacyError::Open { .. })
        ));
        assert!(matches!(
            v.open("customers", "name", "row1", &ct),
            Err(PrivacyError::Open { .. })
        ));
        assert!(matches!(
            v.open("dnc", "phone", "row1", &ct),
            Err(PrivacyError::Open { .. })
        ));
        // Wrong key: refused, never garbage.
        assert!(matches!(
            vault(2).open("customers", "phone", "row1", &ct),
            Err(PrivacyError::Open { .. })
        ));
    }

    #[test]
    fn bytes_round_trip_and_bind() {
        let v = vault(7);
        let wav: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let ct = v.seal_bytes("calls", "recording", "c1", &wav);
        assert_eq!(v.open_bytes("calls", "recording", "c1", &ct).unwrap(), wav);
        assert!(v.open_bytes("calls", "recording", "c2", &ct).is_err());
    }

    #[test]
    fn same_plaintext_gives_different_ciphertexts_but_same_index() {
        let v = vault(3);
        assert_ne!(v.seal("t", "c", "r", "x"), v.seal("t", "c", "r", "x"));
        assert_eq!(
            v.blind_index("+8613800000000"),
            v.blind_index("+8613800000000")
        );
        assert_ne!(
            v.blind_index("+8613800000000"),
            v.blind_index("+8613800000001")
        );
        assert_ne!(
            vault(4).blind_index("+8613800000000"),
            v.blind_index("+8613800000000")
        );
        assert_ne!(vault(4).key_check(), v.key_check());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        std::env::remove_var(MASTER_KEY_ENV);
        let (k1, s1) = MasterKey::load_or_create(&path).unwrap();
        assert!(matches!(s1, KeySource::File { created: true, .. }));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (k2, s2) = MasterKey::load_or_create(&path).unwrap();
        assert!(matches!(s2, KeySource::File { created: false, .. }));
        assert_eq!(*k1.to_hex(), *k2.to_hex());
        std::fs::write(&path, "not a key").unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("64 hexadecimal"), "{err}");
    }

    #[test]
    fn bad_hex_key_is_rejected() {
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(MasterKey::from_hex(&"ab".repeat(32)).is_ok());
    }

    proptest! {
        #[test]
        fn open_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = vault(5).open("t", "c", "r", &bytes);
        }

        #[test]
        fn round_trips_any_text(s in ".*", row in "[a-f0-9]{0,32}") {
            let v = vault(6);
            let ct = v.seal("customers", "name", &row, &s);
            prop_assert_eq!(v.open("customers", "name", &row, &ct).unwrap(), s);
        }
    }
}
