//! The `--sasl-users` file and the credentials derived from it at startup.
//!
//! # Format
//! One `USER:PASSWORD` per line; the password is everything after the first `:` (it may hold
//! `:` and spaces). Blank lines and lines starting with `#` are skipped. A user name is
//! non-empty, has no `:` and no surrounding whitespace; a user appears once.
//!
//! Passwords are not kept: each user gets a random salt per mechanism and only PBKDF2 output
//! (SCRAM's stored and server keys; a PBKDF2-HMAC-SHA-512 hash for PLAIN) stays in memory.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;

use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

use super::mechanism::Mechanism;
use super::scram::{ITERATIONS, ScramCredential, ScramHash};
use crate::error::{Error, Result};

/// Parses the users file `path` holds as `text`: `(user, password)` in file order.
///
/// # Errors
/// [`Error::SaslUsers`] for the first bad line; the problem never quotes a password.
pub fn parse_users(path: &Path, text: &str) -> Result<Vec<(String, String)>> {
    let mut users: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |problem: String| Error::SaslUsers {
            path: path.to_owned(),
            line: i + 1,
            problem,
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, password)) = line.split_once(':') else {
            return Err(bad("expected USER:PASSWORD".into()));
        };
        if user.is_empty() || user.trim() != user {
            return Err(bad(
                "the user name is empty or has surrounding whitespace".into()
            ));
        }
        if password.is_empty() {
            return Err(bad(format!("user `{user}` has an empty password")));
        }
        if users.iter().any(|(u, _)| u == user) {
            return Err(bad(format!("user `{user}` is listed twice")));
        }
        users.push((user.to_owned(), password.to_owned()));
    }
    Ok(users)
}

const PLAIN_HASH: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA512;

/// What the broker keeps for one user.
struct UserCredentials {
    /// `(salt, PBKDF2-HMAC-SHA-512(password))` for PLAIN.
    plain: Option<(Vec<u8>, Vec<u8>)>,
    scram_sha256: Option<ScramCredential>,
    scram_sha512: Option<ScramCredential>,
}

/// The users who may authenticate and the mechanisms they may use.
pub struct SaslUsers {
    mechanisms: Vec<Mechanism>,
    users: HashMap<String, UserCredentials>,
    /// Verified against for unknown PLAIN users, so they cost the same time as known ones.
    decoy: (Vec<u8>, Vec<u8>),
}

impl std::fmt::Debug for SaslUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslUsers")
            .field("mechanisms", &self.mechanisms)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

fn salt(rng: &SystemRandom) -> Vec<u8> {
    let mut salt = vec![0u8; 16];
    // The system RNG only fails on platforms without one; a zero salt is still correct SCRAM.
    let _ = rng.fill(&mut salt);
    salt
}

fn iterations() -> NonZeroU32 {
    NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN)
}

fn plain_hash(rng: &SystemRandom, password: &str) -> (Vec<u8>, Vec<u8>) {
    let salt = salt(rng);
    let mut hash = vec![0u8; 64];
    pbkdf2::derive(
        PLAIN_HASH,
        iterations(),
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    (salt, hash)
}

impl SaslUsers {
    /// Reads and parses the `--sasl-users` file and derives every credential.
    ///
    /// # Errors
    /// [`Error::ReadFile`], or [`Error::SaslUsers`] naming the file and the problem (the line
    /// number for a bad line).
    pub fn load(path: &Path, mechanisms: &[Mechanism]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            flag: "--sasl-users",
            path: path.to_owned(),
            source,
        })?;
        let users = parse_users(path, &text)?;
        if users.is_empty() {
            return Err(Error::SaslUsers {
                path: path.to_owned(),
                line: 0,
                problem: "no users; add one USER:PASSWORD per line".into(),
            });
        }
        Ok(Self::new(&users, mechanisms))
    }

    /// Credentials for `users` (`(name, password)`) for each of `mechanisms`.
    pub fn new(users: &[(String, String)], mechanisms: &[Mechanism]) -> Self {
        let rng = SystemRandom::new();
        let scram =
            |hash, password: &str| ScramCredential::derive(hash, password, &salt(&rng), ITERATIONS);
        let users = users
            .iter()
            .map(|(user, password)| {
                let creds = UserCredentials {
                    plain: mechanisms
                        .contains(&Mechanism::Plain)
                        .then(|| plain_hash(&rng, password)),
                    scram_sha256: mechanisms
                        .contains(&Mechanism::ScramSha256)
                        .then(|| scram(ScramHash::Sha256, password)),
                    scram_sha512: mechanisms
                        .contains(&Mechanism::ScramSha512)
                        .then(|| scram(ScramHash::Sha512, password)),
                };
                (user.clone(), creds)
            })
            .collect();
        let mut decoy_password = [0u8; 16];
        let _ = rng.fill(&mut decoy_password);
        let mut offered = Vec::new();
        for m in mechanisms {
            if !offered.contains(m) {
                offered.push(*m);
            }
        }
        SaslUsers {
            mechanisms: offered,
            users,
            decoy: plain_hash(&rng, &format!("{decoy_password:?}")),
        }
    }

    /// The enabled mechanisms, in the order given.
    pub fn mechanisms(&self) -> &[Mechanism] {
        &self.mechanisms
    }

    /// The SCRAM credential of `user` for `hash`, if the user exists and the mechanism is on.
    pub fn scram(&self, user: &str, hash: ScramHash) -> Option<&ScramCredential> {
        let creds = self.users.get(user)?;
        match hash {
            ScramHash::Sha256 => creds.scram_sha256.as_ref(),
            ScramHash::Sha512 => creds.scram_sha512.as_ref(),
        }
    }

    /// Whether `user` is in the file.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The file's users that have a SCRAM credential.
    pub fn scram_user_names(&self) -> Vec<String> {
        self.users
            .iter()
            .filter(|(_, c)| c.scram_sha256.is_some() || c.scram_sha512.is_some())
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// `user`'s SCRAM credentials from the file.
    pub fn scram_of(&self, user: &str) -> Vec<ScramCredential> {
        ScramHash::ALL
            .into_iter()
            .filter_map(|h| self.scram(user, h).cloned())
            .collect()
    }

    /// Whether `password` is `user`'s (PLAIN). Unknown users take as long as known ones.
    pub fn verify_plain(&self, user: &str, password: &str) -> bool {
        let known = self.users.get(user).and_then(|c| c.plain.as_ref());
        let (salt, hash) = known.unwrap_or(&self.decoy);
        let ok = pbkdf2::verify(PLAIN_HASH, iterations(), salt, password.as_bytes(), hash).is_ok();
        ok && known.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format() {
        let text = "# ferry users\n\nalice:s3cret\r\nbob:pa:ss word\n  # indented comment\n";
        let users = parse_users(Path::new("users.txt"), text).unwrap();
        assert_eq!(
            users,
            vec![
                ("alice".to_owned(), "s3cret".to_owned()),
                ("bob".to_owned(), "pa:ss word".to_owned()),
            ]
        );
    }

    /// The line number and problem of a users file's first bad line.
    fn bad_line(text: &str) -> (usize, String) {
        match parse_users(Path::new("users.txt"), text) {
            Err(Error::SaslUsers { line, problem, .. }) => (line, problem),
            other => panic!("{text:?} is not refused by line: {other:?}"),
        }
    }

    #[test]
    fn bad_lines_name_the_line_and_never_the_password() {
        assert_eq!(bad_line("alice:x\nnocolon\n").0, 2);
        assert_eq!(bad_line(":pw\n").0, 1);
        assert_eq!(bad_line(" alice:pw\n").0, 1);
        let (line, problem) = bad_line("alice:\n");
        assert_eq!(line, 1);
        assert!(problem.contains("empty password"));
        let (line, problem) = bad_line("alice:hunter2\nalice:hunter3\n");
        assert_eq!(line, 2);
        assert!(!problem.contains("hunter"), "{problem}");
    }

    #[test]
    fn plain_verifies_only_the_right_password_of_a_known_user() {
        let users = SaslUsers::new(
            &[("alice".into(), "s3cret".into())],
            &[Mechanism::Plain, Mechanism::ScramSha512],
        );
        assert!(users.verify_plain("alice", "s3cret"));
        assert!(!users.verify_plain("alice", "s3cret "));
        assert!(!users.verify_plain("mallory", "s3cret"));
        assert!(users.scram("alice", ScramHash::Sha512).is_some());
        assert!(
            users.scram("alice", ScramHash::Sha256).is_none(),
            "not enabled"
        );
        assert!(users.scram("mallory", ScramHash::Sha512).is_none());
        assert!(!format!("{users:?}").contains("s3cret"));
    }
}
