//! Compact JWS (RFC 7515) with the two algorithms the push services use: ES256 (APNs
//! provider tokens; the signature is the raw 64-byte r‖s, not DER) and RS256 (Google's
//! service-account assertions). Signing for the clients, verification for the peers.
//!
//! Hand-written because it is twenty lines over RustCrypto's `p256` and `rsa`, and a JWT
//! library would bring its own key formats and a second crypto backend.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a compact JWS (three base64url parts separated by dots)")]
    Shape,
    #[error("JWS part is not base64url: {0}")]
    Base64(String),
    #[error("JWS header or claims are not a JSON object: {0}")]
    Json(String),
    #[error("JWS algorithm is {found}, expected {expected}")]
    Algorithm {
        found: String,
        expected: &'static str,
    },
    #[error("JWS signature does not verify")]
    Signature,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Signs with ES256 (P-256, SHA-256).
pub fn sign_es256(header: &Value, claims: &Value, key: &p256::ecdsa::SigningKey) -> String {
    let input = signing_input(header, claims);
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// Signs with RS256 (RSASSA-PKCS1-v1_5, SHA-256).
pub fn sign_rs256(
    header: &Value,
    claims: &Value,
    key: &rsa::pkcs1v15::SigningKey<sha2::Sha256>,
) -> String {
    use rsa::signature::SignatureEncoding;
    let input = signing_input(header, claims);
    let sig = rsa::signature::Signer::sign(key, input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// A token split and decoded, not yet verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub header: Value,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS. Never panics on input (property-tested).
pub fn decode(token: &str) -> Result<Decoded, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    let dec = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|e| JwtError::Base64(e.to_string()))
    };
    let json = |b: Vec<u8>| -> Result<Value, JwtError> {
        let v: Value = serde_json::from_slice(&b).map_err(|e| JwtError::Json(e.to_string()))?;
        if v.is_object() {
            Ok(v)
        } else {
            Err(JwtError::Json("not an object".into()))
        }
    };
    Ok(Decoded {
        header: json(dec(h)?)?,
        claims: json(dec(c)?)?,
        signing_input: format!("{h}.{c}"),
        signature: dec(s)?,
    })
}

impl Decoded {
    fn alg(&self, expected: &'static str) -> Result<(), JwtError> {
        match self.header.get("alg").and_then(Value::as_str) {
            Some(a) if a == expected => Ok(()),
            other => Err(JwtError::Algorithm {
                found: other.unwrap_or("(none)").to_string(),
                expected,
            }),
        }
    }

    pub fn verify_es256(&self, key: &p256::ecdsa::VerifyingKey) -> Result<(), JwtError> {
        self.alg("ES256")?;
        let sig =
            p256::ecdsa::Signature::from_slice(&self.signature).map_err(|_| JwtError::Signature)?;
        key.verify(self.signing_input.as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)
    }

    pub fn verify_rs256(
        &self,
        key: &rsa::pkcs1v15::VerifyingKey<sha2::Sha256>,
    ) -> Result<(), JwtError> {
        self.alg("RS256")?;
        let sig = rsa::pkcs1v15::Signature::try_from(self.signature.as_slice())
            .map_err(|_| JwtError::Signature)?;
        rsa::signature::Verifier::verify(key, self.signing_input.as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)
    }

    /// A numeric claim (`iat`, `exp`).
    pub fn num(&self, claim: &str) -> Option<i64> {
        self.claims.get(claim).and_then(Value::as_i64)
    }

    /// A string claim or header field.
    pub fn str(&self, claim: &str) -> Option<&str> {
        self.claims
            .get(claim)
            .or_else(|| self.header.get(claim))
            .and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn es_key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("valid scalar")
    }

    #[test]
    fn es256_round_trip_and_tamper() {
        let k = es_key();
        let t = sign_es256(
            &json!({"alg": "ES256", "kid": "K1"}),
            &json!({"iss": "TEAM", "iat": 1}),
            &k,
        );
        let d = decode(&t).unwrap();
        d.verify_es256(k.verifying_key()).unwrap();
        assert_eq!(d.str("kid"), Some("K1"));
        assert_eq!(d.num("iat"), Some(1));
        // Another key, or changed claims, do not verify.
        let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        assert_eq!(
            d.verify_es256(other.verifying_key()),
            Err(JwtError::Signature)
        );
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64(json!({"iss": "EVIL", "iat": 1}).to_string().as_bytes());
        parts[1] = &forged;
        let d = decode(&parts.join(".")).unwrap();
        assert_eq!(d.verify_es256(k.verifying_key()), Err(JwtError::Signature));
    }

    #[test]
    fn algorithm_is_checked_before_the_signature() {
        let t = sign_es256(&json!({"alg": "none"}), &json!({}), &es_key());
        let d = decode(&t).unwrap();
        assert!(matches!(
            d.verify_es256(es_key().verifying_key()),
            Err(JwtError::Algorithm { .. })
        ));
    }

    #[test]
    fn shape_errors_are_named() {
        assert_eq!(decode("a.b").unwrap_err(), JwtError::Shape);
        assert_eq!(decode("a.b.c.d").unwrap_err(), JwtError::Shape);
        assert!(matches!(decode("!!.e30.AA"), Err(JwtError::Base64(_))));
        assert!(matches!(decode("WzFd.e30.AA"), Err(JwtError::Json(_))));
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in ".{0,200}") {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_dotted_base64(a in "[A-Za-z0-9_-]{0,40}", b in "[A-Za-z0-9_-]{0,40}", c in "[A-Za-z0-9_-]{0,90}") {
            if let Ok(d) = decode(&format!("{a}.{b}.{c}")) {
                let _ = d.verify_es256(es_key().verifying_key());
            }
        }
    }
}
