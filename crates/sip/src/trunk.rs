//! The address of a trunk as an operator writes it on a command line or in a
//! file: `[sip:][user[:password]@]ip:port`.
use std::fmt;
use std::net::SocketAddr;

use crate::ua::Credentials;

/// A parsed trunk address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAddr {
    pub addr: SocketAddr,
    /// The digest user, when one is given.
    pub username: Option<String>,
    /// The password written in the address (better kept out of it: the
    /// caller may take it from the environment instead).
    pub password: Option<String>,
}

/// Why a trunk address does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAddrError(pub String);

impl fmt::Display for TrunkAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}: expected [sip:][USER[:PASSWORD]@]IP:PORT / 中继地址格式错误",
            self.0
        )
    }
}

impl std::error::Error for TrunkAddrError {}

impl TrunkAddr {
    pub fn parse(s: &str) -> Result<TrunkAddr, TrunkAddrError> {
        let rest = s.strip_prefix("sip:").unwrap_or(s);
        let (user, host) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let addr = host.parse().map_err(|_| TrunkAddrError(s.to_string()))?;
        let (username, password) = match user {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((_, "")) => (Some(u.trim_end_matches(':').to_string()), None),
                Some((name, pw)) => (Some(name.to_string()), Some(pw.to_string())),
                None => (Some(u.to_string()), None),
            },
        };
        if username.as_deref() == Some("") {
            return Err(TrunkAddrError(s.to_string()));
        }
        Ok(TrunkAddr {
            addr,
            username,
            password,
        })
    }

    /// Digest credentials when a user is given; `password` fills in when the
    /// address carries none.
    pub fn credentials(&self, password: impl FnOnce() -> String) -> Option<Credentials> {
        let username = self.username.clone()?;
        let password = self.password.clone().unwrap_or_else(password);
        Some(Credentials { username, password })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        let t = TrunkAddr::parse("127.0.0.1:5060").unwrap();
        assert_eq!((t.username, t.password), (None, None));
        let t = TrunkAddr::parse("sip:acme:s3cret@10.0.0.1:5080").unwrap();
        assert_eq!(t.addr, "10.0.0.1:5080".parse().unwrap());
        assert_eq!(t.username.as_deref(), Some("acme"));
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        let t = TrunkAddr::parse("acme@[::1]:5060").unwrap();
        assert_eq!(t.password, None);
        assert_eq!(
            t.credentials(|| "from-env".into()).unwrap().password,
            "from-env"
        );
        // A password may hold ':' and '@' (the last '@' splits off the host).
        let t = TrunkAddr::parse("a:b:c@d@127.0.0.1:1").unwrap();
        assert_eq!(t.password.as_deref(), Some("b:c@d"));
        for bad in [
            "",
            "sip:",
            "host:5060",
            "127.0.0.1",
            "@127.0.0.1:5060",
            "u@",
        ] {
            assert!(TrunkAddr::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,64}") {
            let _ = TrunkAddr::parse(&s);
        }

        #[test]
        fn round_trips(user in "[a-z0-9_.-]{1,12}", pw in "[ -~]{1,12}", port in 1u16..) {
            let s = format!("sip:{user}:{pw}@127.0.0.1:{port}");
            let t = TrunkAddr::parse(&s).unwrap();
            prop_assert_eq!(t.username.as_deref(), Some(user.as_str()));
            prop_assert_eq!(t.password.as_deref(), Some(pw.as_str()));
            prop_assert_eq!(t.addr.port(), port);
        }
    }
}
