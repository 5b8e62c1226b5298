//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760): MD5, SHA-256 and
//! their `-sess` variants, with and without `qop=auth`. Hashes come from RustCrypto
//! (`md-5`, `sha2`); the challenge/response grammar is small enough to write here.

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Option<Algorithm> {
        Some(match s.to_ascii_uppercase().as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" => Algorithm::Sha256,
            "SHA-256-SESS" => Algorithm::Sha256Sess,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }
    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data.as_bytes())),
        }
    }
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
        }
    }
}

fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether the server offered `qop=auth`.
    pub qop_auth: bool,
    pub stale: bool,
}

/// Splits `a=b, c="d, e"` into pairs, honouring quotes.
fn auth_params(s: &str) -> Vec<(String, String)> {
    crate::msg::split_comma(s)
        .into_iter()
        .filter_map(|p| {
            let (n, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            Some((n.trim().to_ascii_lowercase(), v.replace("\\\"", "\"")))
        })
        .collect()
}

impl Challenge {
    /// Parses one challenge header value; `None` for non-digest schemes or unknown algorithms.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let params = auth_params(rest);
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            Some(a) => Algorithm::parse(&a)?,
            None => Algorithm::Md5,
        };
        let qop_auth =
            get("qop").is_some_and(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")));
        Some(Challenge {
            realm: get("realm").unwrap_or_default(),
            nonce: get("nonce")?,
            opaque: get("opaque"),
            algorithm,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Picks the strongest challenge we understand among several header values (RFC 8760
    /// servers send SHA-256 first and MD5 for old clients).
    pub fn best<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values
            .into_iter()
            .filter_map(Challenge::parse)
            .max_by_key(|c| c.algorithm.strength())
    }

    /// The `Authorization` / `Proxy-Authorization` header value answering this challenge.
    pub fn respond(
        &self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let alg = self.algorithm;
        let mut ha1 = alg.hash(&format!("{username}:{}:{password}", self.realm));
        if matches!(alg, Algorithm::Md5Sess | Algorithm::Sha256Sess) {
            ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if self.qop_auth {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            alg.as_str()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_md5_qop() {
        // RFC 2617 §3.5 example (HTTP, same algorithm).
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let h = c.respond(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
        assert!(h.contains("nc=00000001"));
    }

    #[test]
    fn rfc7616_example_sha256() {
        let c = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        let h = c.respond(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert!(
            h.contains("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
            "{h}"
        );
    }

    #[test]
    fn picks_strongest() {
        let c = Challenge::best([
            "Digest realm=\"a\", nonce=\"1\", algorithm=MD5",
            "Digest realm=\"a\", nonce=\"2\", algorithm=SHA-256",
            "Basic realm=\"x\"",
        ])
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(Challenge::parse("Digest realm=\"a\"").is_none());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[ -~]{0,120}") {
            if let Some(c) = Challenge::parse(&format!("Digest {s}")) {
                let _ = c.respond("INVITE", "sip:x", "u", "p", "c", 1);
            }
        }
    }
}
