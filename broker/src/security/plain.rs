//! SASL PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd` in one client message.

use crate::error::{Error, Result};

/// What a malformed PLAIN message should look like.
const EXPECTED: &str = "expected `[authzid] NUL user NUL password` in UTF-8";

fn malformed(problem: &str) -> Error {
    Error::SaslMalformed {
        message: "PLAIN",
        problem: problem.to_owned(),
    }
}

/// A parsed PLAIN message. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainMessage {
    /// The user name (authcid).
    pub username: String,
    /// The password as sent.
    pub password: String,
}

impl std::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl PlainMessage {
    /// Parses one PLAIN client message.
    ///
    /// # Errors
    /// [`Error::SaslMalformed`] for anything but `[authzid] NUL user NUL password` with a
    /// non-empty user and password; [`Error::SaslAuthzid`] for an authzid that is neither
    /// empty nor the user name. The messages name no secret.
    pub fn parse(message: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(message).map_err(|_| malformed(EXPECTED))?;
        let mut fields = text.split('\0');
        let (Some(authzid), Some(username), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed(EXPECTED));
        };
        if username.is_empty() || password.is_empty() {
            return Err(malformed("empty user name or password"));
        }
        if !authzid.is_empty() && authzid != username {
            return Err(Error::SaslAuthzid);
        }
        Ok(PlainMessage {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_authzid() {
        let m = PlainMessage::parse(b"\0alice\0s3cret").unwrap();
        assert_eq!(
            (m.username.as_str(), m.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(PlainMessage::parse(b"alice\0alice\0pw with spaces").is_ok());
        assert!(
            !format!("{m:?}").contains("s3cret"),
            "Debug hides the password"
        );
    }

    #[test]
    fn rejects_bad_messages() {
        let refusal = |m: &[u8]| PlainMessage::parse(m).unwrap_err().to_string();
        for bad in [&b""[..], b"alice", b"\0alice", b"\0a\0b\0c", b"\0\xff\0pw"] {
            assert_eq!(
                refusal(bad),
                format!("malformed PLAIN message: {EXPECTED}"),
                "{bad:?}"
            );
        }
        for empty in [&b"\0\0pw"[..], b"\0alice\0"] {
            assert_eq!(
                refusal(empty),
                "malformed PLAIN message: empty user name or password"
            );
        }
        assert!(matches!(
            PlainMessage::parse(b"root\0alice\0pw"),
            Err(Error::SaslAuthzid)
        ));
    }
}
