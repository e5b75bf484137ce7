//! The server side of SCRAM (RFC 5802, with SHA-256 per RFC 7677 and SHA-512), as Kafka
//! speaks it: no channel binding, an authorization id only if it equals the user name.
//!
//! Pure: the caller supplies the stored credential and the server's nonce, and sends the
//! messages. Two steps: [`ClientFirst::parse`] then [`ClientFirst::respond`] give the
//! server-first message and an [`AwaitingFinal`]; [`AwaitingFinal::finish`] checks the
//! client-final message and gives the server-final message.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Iterations of PBKDF2 for every stored credential (Kafka's minimum, and RFC 7677's example).
pub const ITERATIONS: u32 = 4096;

/// The hash function of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    /// Both, in Kafka's order.
    pub const ALL: [ScramHash; 2] = [ScramHash::Sha256, ScramHash::Sha512];

    /// The mechanism's name, e.g. `SCRAM-SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's number for the mechanism in the SCRAM credential APIs.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramHash::Sha256 => 1,
            ScramHash::Sha512 => 2,
        }
    }

    /// The mechanism Kafka's number `n` stands for.
    pub fn from_kafka_type(n: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.kafka_type() == n)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }
}

/// What the server stores for one user and one hash: never the password (RFC 5802 §3).
#[derive(Clone)]
pub struct ScramCredential {
    hash: ScramHash,
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("hash", &self.hash)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the stored key and server key from `password` (PBKDF2 with `salt`).
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Self {
        let iterations = iterations.max(1);
        let mut salted = vec![0u8; hash.len()];
        pbkdf2::derive(
            hash.pbkdf2(),
            NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN),
            salt,
            password.as_bytes(),
            &mut salted,
        );
        Self::from_salted(hash, &salted, salt, iterations)
    }

    /// The credential of a password whose PBKDF2 output (SCRAM's `SaltedPassword`) the client
    /// computed, as AlterUserScramCredentials carries it.
    pub fn from_salted(hash: ScramHash, salted: &[u8], salt: &[u8], iterations: u32) -> Self {
        let client_key = hash.mac(salted, b"Client Key");
        let stored_key = digest::digest(hash.digest(), &client_key).as_ref().to_vec();
        let server_key = hash.mac(salted, b"Server Key");
        ScramCredential {
            hash,
            salt: salt.to_vec(),
            iterations,
            stored_key,
            server_key,
        }
    }

    /// The hash it is for.
    pub fn hash(&self) -> ScramHash {
        self.hash
    }

    /// PBKDF2 iterations.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// `(salt, stored key, server key)`, base64, as the credential store keeps them.
    pub(crate) fn to_stored(&self) -> [String; 3] {
        [&self.salt, &self.stored_key, &self.server_key].map(|b| B64.encode(b))
    }

    /// The credential [`ScramCredential::to_stored`] gave.
    ///
    /// # Errors
    /// Text naming what is not base64 or has the wrong length for `hash`.
    pub(crate) fn from_stored(
        hash: ScramHash,
        iterations: u32,
        [salt, stored_key, server_key]: [&str; 3],
    ) -> std::result::Result<Self, String> {
        let decode = |what: &str, text: &str| {
            B64.decode(text)
                .map_err(|e| format!("{what} is not base64: {e}"))
        };
        let (salt, stored_key, server_key) = (
            decode("the salt", salt)?,
            decode("the stored key", stored_key)?,
            decode("the server key", server_key)?,
        );
        if stored_key.len() != hash.len() || server_key.len() != hash.len() || salt.is_empty() {
            return Err("a key has the wrong length, or the salt is empty".into());
        }
        Ok(ScramCredential {
            hash,
            salt,
            iterations,
            stored_key,
            server_key,
        })
    }
}

fn malformed(message: &'static str, problem: impl Into<String>) -> Error {
    Error::SaslMalformed {
        message,
        problem: problem.into(),
    }
}

/// RFC 5802 `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is invalid.
fn unescape_name(raw: &str) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3);
        match code {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => {
                return Err(malformed(
                    "SCRAM client-first",
                    "bad `=` escape in the user name",
                ));
            }
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 5802 `printable` (except `,`), as nonces must be.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name, unescaped.
    pub username: String,
    /// The client's nonce.
    pub nonce: String,
    /// `n,,` or `y,,` (or with `a=…`): echoed base64-encoded in the client-final message.
    gs2_header: String,
    /// The message without the GS2 header; part of the AuthMessage.
    bare: String,
}

impl ClientFirst {
    /// Parses `n,[a=authzid],n=user,r=nonce[,extensions]`.
    ///
    /// # Errors
    /// [`Error::SaslMalformed`] for anything outside the grammar, [`Error::SaslChannelBinding`]
    /// for channel binding (`p=`), [`Error::SaslAuthzid`] for an authorization id that is not
    /// the user name. The messages name no secret and are safe to log.
    pub fn parse(message: &[u8]) -> Result<Self> {
        const MSG: &str = "SCRAM client-first";
        let text = std::str::from_utf8(message).map_err(|_| malformed(MSG, "not UTF-8"))?;
        let mut parts = text.splitn(3, ',');
        let cbind = parts.next().unwrap_or_default();
        match cbind {
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(Error::SaslChannelBinding),
            _ => {
                return Err(malformed(
                    MSG,
                    "the GS2 header must start with `n,` or `y,`",
                ));
            }
        }
        let authzid = parts
            .next()
            .ok_or_else(|| malformed(MSG, "no GS2 header"))?;
        let bare = parts
            .next()
            .ok_or_else(|| malformed(MSG, "no user name and nonce"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(unescape_name(a.strip_prefix("a=").ok_or_else(|| {
                malformed(MSG, "the authorization id must be `a=NAME`")
            })?)?),
        };
        let mut fields = bare.split(',');
        let first = fields.next().unwrap_or_default();
        if first.starts_with("m=") {
            return Err(malformed(MSG, "mandatory extensions are not supported"));
        }
        let username = first
            .strip_prefix("n=")
            .ok_or_else(|| malformed(MSG, "expected `n=USER`"))?;
        let username = unescape_name(username)?;
        if username.is_empty() {
            return Err(malformed(MSG, "empty user name"));
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| malformed(MSG, "expected `r=NONCE` after the user name"))?;
        if !valid_nonce(nonce) {
            return Err(malformed(
                MSG,
                "the nonce must be printable ASCII without `,`",
            ));
        }
        for extension in fields {
            if extension == "tokenauth=true" {
                return Err(malformed(MSG, "delegation tokens are not supported"));
            }
        }
        if authzid.is_some_and(|a| a != username) {
            return Err(Error::SaslAuthzid);
        }
        Ok(ClientFirst {
            username,
            nonce: nonce.to_owned(),
            gs2_header: text[..text.len() - bare.len()].to_owned(),
            bare: bare.to_owned(),
        })
    }

    /// The server-first message for `credential`, with `server_nonce` appended to the
    /// client's nonce (it must be printable ASCII without `,`; use fresh random bytes).
    pub fn respond(
        self,
        credential: &ScramCredential,
        server_nonce: &str,
    ) -> (AwaitingFinal, String) {
        let nonce = format!("{}{server_nonce}", self.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let state = AwaitingFinal {
            credential: credential.clone(),
            gs2_header: self.gs2_header,
            client_first_bare: self.bare,
            server_first: server_first.clone(),
            nonce,
            username: self.username,
        };
        (state, server_first)
    }
}

/// The exchange after the server-first message, waiting for the client's proof.
#[derive(Debug, Clone)]
pub struct AwaitingFinal {
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    username: String,
}

impl AwaitingFinal {
    /// The user being authenticated.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Checks the client-final message `c=…,r=…[,ext],p=PROOF` and returns the server-final
    /// message (`v=SIGNATURE`).
    ///
    /// # Errors
    /// [`Error::SaslMalformed`] for a malformed message, [`Error::SaslChannelBindingMismatch`],
    /// [`Error::SaslNonceMismatch`], or [`Error::SaslInvalidProof`] for a proof that does not
    /// verify.
    pub fn finish(self, message: &[u8]) -> Result<String> {
        const MSG: &str = "SCRAM client-final";
        let text = std::str::from_utf8(message).map_err(|_| malformed(MSG, "not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| malformed(MSG, "no `p=PROOF`"))?;
        let mut fields = without_proof.split(',');
        let cbind = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| malformed(MSG, "expected `c=` first"))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| malformed(MSG, "expected `r=NONCE` after `c=`"))?;
        let cbind = B64
            .decode(cbind)
            .map_err(|_| malformed(MSG, "`c=` is not base64"))?;
        if cbind != self.gs2_header.as_bytes() {
            return Err(Error::SaslChannelBindingMismatch);
        }
        if nonce != self.nonce {
            return Err(Error::SaslNonceMismatch);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed(MSG, "`p=` is not base64"))?;
        let hash = self.credential.hash;
        if proof.len() != hash.len() {
            return Err(Error::SaslInvalidProof);
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_signature = hash.mac(&self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let stored_key = digest::digest(hash.digest(), &client_key);
        if !bool::from(stored_key.as_ref().ct_eq(&self.credential.stored_key)) {
            return Err(Error::SaslInvalidProof);
        }
        let server_signature = hash.mac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc7677_credential() -> ScramCredential {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredential::derive(ScramHash::Sha256, "pencil", &salt, 4096)
    }

    fn rfc7677_awaiting_final() -> AwaitingFinal {
        let first = ClientFirst::parse(CLIENT_FIRST.as_bytes()).unwrap();
        let (state, server_first) = first.respond(&rfc7677_credential(), SERVER_NONCE);
        assert_eq!(server_first, SERVER_FIRST);
        state
    }

    #[test]
    fn rfc7677_test_vector() {
        let first = ClientFirst::parse(CLIENT_FIRST.as_bytes()).unwrap();
        assert_eq!(first.username, "user");
        assert_eq!(first.nonce, "rOprNGfwEbeRWgbNEkqO");
        let state = rfc7677_awaiting_final();
        assert_eq!(state.username(), "user");
        assert_eq!(state.finish(CLIENT_FINAL.as_bytes()).unwrap(), SERVER_FINAL);
    }

    #[test]
    fn wrong_password_fails_the_proof() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let wrong = ScramCredential::derive(ScramHash::Sha256, "pencils", &salt, 4096);
        let first = ClientFirst::parse(CLIENT_FIRST.as_bytes()).unwrap();
        let (state, _) = first.respond(&wrong, SERVER_NONCE);
        assert!(matches!(
            state.finish(CLIENT_FINAL.as_bytes()),
            Err(Error::SaslInvalidProof)
        ));
    }

    #[test]
    fn tampered_proof_nonce_and_binding_are_rejected() {
        let bad_proof = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        assert!(matches!(
            rfc7677_awaiting_final().finish(bad_proof.as_bytes()),
            Err(Error::SaslInvalidProof)
        ));
        let short_proof = CLIENT_FINAL.replace("p=dHzbZapWIk4jUhN+", "p=");
        assert!(
            rfc7677_awaiting_final()
                .finish(short_proof.as_bytes())
                .is_err()
        );
        let bad_nonce = CLIENT_FINAL.replace("k0,p=", "k1,p=");
        assert!(matches!(
            rfc7677_awaiting_final().finish(bad_nonce.as_bytes()),
            Err(Error::SaslNonceMismatch)
        ));
        // "eSws" is base64 of "y,,", but the client-first header was "n,,".
        let bad_binding = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert!(matches!(
            rfc7677_awaiting_final().finish(bad_binding.as_bytes()),
            Err(Error::SaslChannelBindingMismatch)
        ));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=user,r=abc",
            b"n,,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=us=er,r=abc",
            b"n,,n=user=2,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user,r=ab\x01c",
            b"n,x,n=user,r=abc",
            b"\xff\xfe",
            b"n,,n=user,r=abc,tokenauth=true",
        ] {
            assert!(
                matches!(ClientFirst::parse(bad), Err(Error::SaslMalformed { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            ClientFirst::parse(b"p=tls-unique,,n=user,r=abc"),
            Err(Error::SaslChannelBinding)
        ));
        assert!(matches!(
            ClientFirst::parse(b"n,a=admin,n=user,r=abc"),
            Err(Error::SaslAuthzid)
        ));
        for bad in [
            &b""[..],
            b"p=abc",
            b"c=biws,p=abc",
            b"r=x,c=biws,p=abc",
            b"c=!!!,r=x,p=abc",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!",
            b"\xff",
        ] {
            assert!(
                rfc7677_awaiting_final().finish(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn escaped_names_and_matching_authzid_are_accepted() {
        let first = ClientFirst::parse(b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=xyz").unwrap();
        assert_eq!(first.username, "a,b=c");
        assert_eq!(first.gs2_header, "n,a=a=2Cb=3Dc,");
        assert_eq!(first.bare, "n=a=2Cb=3Dc,r=xyz");
    }

    #[test]
    fn sha512_round_trip_with_a_client_computed_proof() {
        let cred = ScramCredential::derive(ScramHash::Sha512, "s3cret", b"salty", ITERATIONS);
        let first = ClientFirst::parse(b"n,,n=alice,r=cnonce").unwrap();
        let (state, server_first) = first.respond(&cred, "snonce");
        // The client's side of RFC 5802 §3.
        let hash = ScramHash::Sha512;
        let mut salted = vec![0u8; hash.len()];
        pbkdf2::derive(
            hash.pbkdf2(),
            NonZeroU32::new(ITERATIONS).unwrap(),
            b"salty",
            b"s3cret",
            &mut salted,
        );
        let client_key = hash.mac(&salted, b"Client Key");
        let stored = digest::digest(hash.digest(), &client_key);
        let without_proof = "c=biws,r=cnoncesnonce";
        let auth = format!("n=alice,r=cnonce,{server_first},{without_proof}");
        let signature = hash.mac(stored.as_ref(), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_final = state
            .finish(format!("{without_proof},p={}", B64.encode(proof)).as_bytes())
            .unwrap();
        let server_key = hash.mac(&salted, b"Server Key");
        let expected = hash.mac(&server_key, auth.as_bytes());
        assert_eq!(server_final, format!("v={}", B64.encode(expected)));
    }
}
