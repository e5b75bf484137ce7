//! SASL PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd` in one client message.

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

/// Why a PLAIN message was rejected. The messages name no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    /// Not three NUL-separated UTF-8 fields.
    #[error("malformed PLAIN message: expected `[authzid] NUL user NUL password` in UTF-8")]
    Malformed,
    /// Empty user name or password.
    #[error("malformed PLAIN message: empty user name or password")]
    Empty,
    /// The authorization id differs from the user name (Kafka allows no impersonation).
    #[error("the authorization id differs from the user name")]
    AuthzidMismatch,
}

impl PlainMessage {
    /// Parses one PLAIN client message.
    ///
    /// # Errors
    /// [`PlainError`] for anything but `[authzid] NUL user NUL password` with a non-empty
    /// user and password and an authzid that is empty or the user name.
    pub fn parse(message: &[u8]) -> Result<Self, PlainError> {
        let text = std::str::from_utf8(message).map_err(|_| PlainError::Malformed)?;
        let mut fields = text.split('\0');
        let (Some(authzid), Some(username), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(PlainError::Malformed);
        };
        if username.is_empty() || password.is_empty() {
            return Err(PlainError::Empty);
        }
        if !authzid.is_empty() && authzid != username {
            return Err(PlainError::AuthzidMismatch);
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
        assert_eq!(PlainMessage::parse(b""), Err(PlainError::Malformed));
        assert_eq!(PlainMessage::parse(b"alice"), Err(PlainError::Malformed));
        assert_eq!(PlainMessage::parse(b"\0alice"), Err(PlainError::Malformed));
        assert_eq!(
            PlainMessage::parse(b"\0a\0b\0c"),
            Err(PlainError::Malformed)
        );
        assert_eq!(
            PlainMessage::parse(b"\0\xff\0pw"),
            Err(PlainError::Malformed)
        );
        assert_eq!(PlainMessage::parse(b"\0\0pw"), Err(PlainError::Empty));
        assert_eq!(PlainMessage::parse(b"\0alice\0"), Err(PlainError::Empty));
        assert_eq!(
            PlainMessage::parse(b"root\0alice\0pw"),
            Err(PlainError::AuthzidMismatch)
        );
    }
}
