//! SCRAM credentials managed with Kafka's admin APIs (KIP-554: DescribeUserScramCredentials
//! and AlterUserScramCredentials, what `kafka-configs.sh --entity-type users` and the admin
//! clients use), kept in `<data-dir>/scram-credentials.json`.
//!
//! The store holds what RFC 5802 lets a server keep — salt, iterations, stored key and server
//! key — never a password: the client sends PBKDF2's output (`SaltedPassword`). Changes apply
//! to the next authentication, with or without SASL on the listener at the time (as in Kafka,
//! credentials can be prepared before SASL is turned on).
//!
//! Users of the `--sasl-users` file stay the file's: the APIs describe them but refuse to
//! change them (edit the file and restart). Without `--authorizer`, any client that may
//! connect may call these APIs, as with a Kafka broker without one; with it, they need
//! `DESCRIBE` / `ALTER` on the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::scram::{ScramCredential, ScramHash};
use super::users::SaslUsers;
use crate::error::{Error, Result, io_at};
use crate::storage::{Disk, RealDisk};

/// Kafka's bounds on PBKDF2 iterations for a new credential.
pub const MIN_ITERATIONS: i32 = 4096;
/// See [`MIN_ITERATIONS`].
pub const MAX_ITERATIONS: i32 = 16384;

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const INVALID_REQUEST: i16 = 42;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// A per-user refusal: `(error code, message)`.
pub type Refusal = (i16, String);

/// A user's credentials as described: `(Kafka mechanism number, iterations)` each.
pub type Described = std::result::Result<Vec<(i8, i32)>, Refusal>;

#[derive(Default, Serialize, Deserialize)]
struct StoredFile {
    /// user → mechanism name → credential.
    users: BTreeMap<String, BTreeMap<String, StoredCredential>>,
}

#[derive(Serialize, Deserialize)]
struct StoredCredential {
    iterations: u32,
    salt: String,
    stored_key: String,
    server_key: String,
}

type Users = BTreeMap<String, BTreeMap<&'static str, ScramCredential>>;

/// One alteration of an AlterUserScramCredentials request.
#[derive(Clone, Debug)]
pub enum Alteration {
    /// Remove `user`'s credential for Kafka mechanism number `mechanism`.
    Delete {
        /// The user.
        user: String,
        /// 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
        mechanism: i8,
    },
    /// Set `user`'s credential for `mechanism` from the client's PBKDF2 output.
    Upsert {
        /// The user.
        user: String,
        /// 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
        mechanism: i8,
        /// PBKDF2 iterations the client used.
        iterations: i32,
        /// The salt it used.
        salt: Vec<u8>,
        /// `SaltedPassword`.
        salted_password: Vec<u8>,
    },
}

impl Alteration {
    /// The user it alters.
    pub fn user(&self) -> &str {
        match self {
            Alteration::Delete { user, .. } | Alteration::Upsert { user, .. } => user,
        }
    }

    fn mechanism(&self) -> i8 {
        match self {
            Alteration::Delete { mechanism, .. } | Alteration::Upsert { mechanism, .. } => {
                *mechanism
            }
        }
    }
}

/// The users `alterations` name, each once, in the order they first appear: the order of an
/// AlterUserScramCredentials response.
pub fn users_in_order(alterations: &[Alteration]) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    for user in alterations.iter().map(Alteration::user) {
        if !users.iter().any(|u| u == user) {
            users.push(user.to_owned());
        }
    }
    users
}

/// The credentials set with the admin APIs.
#[derive(Debug)]
pub struct ScramCredentials {
    path: PathBuf,
    users: RwLock<Users>,
}

fn hash_named(name: &str) -> Option<ScramHash> {
    ScramHash::ALL.into_iter().find(|h| h.name() == name)
}

impl ScramCredentials {
    /// Loads `data_dir/scram-credentials.json` (none yet: no users).
    ///
    /// # Errors
    /// An unreadable or damaged file, named.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join("scram-credentials.json");
        let damaged = |problem: String| Error::Damaged {
            path: path.clone(),
            problem,
        };
        let file: StoredFile = match RealDisk.read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoredFile::default(),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let mut users = Users::new();
        for (user, creds) in file.users {
            for (mechanism, c) in creds {
                let hash = hash_named(&mechanism).ok_or_else(|| {
                    damaged(format!("user `{user}`: unknown mechanism `{mechanism}`"))
                })?;
                let credential = ScramCredential::from_stored(
                    hash,
                    c.iterations,
                    [&c.salt, &c.stored_key, &c.server_key],
                )
                .map_err(|problem| damaged(format!("user `{user}`, {mechanism}: {problem}")))?;
                users
                    .entry(user.clone())
                    .or_default()
                    .insert(hash.name(), credential);
            }
        }
        Ok(ScramCredentials {
            path,
            users: RwLock::new(users),
        })
    }

    /// `user`'s credential for `hash`, if set with the admin API.
    pub fn get(&self, user: &str, hash: ScramHash) -> Option<ScramCredential> {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)?
            .get(hash.name())
            .cloned()
    }

    /// DescribeUserScramCredentials: for each of `users` (`None` or empty: every user, from the
    /// file and the store) its `(mechanism, iterations)`, or why not.
    pub fn describe(
        &self,
        users: Option<&[String]>,
        file: Option<&SaslUsers>,
    ) -> Vec<(String, Described)> {
        let stored = self.users.read().unwrap_or_else(|e| e.into_inner());
        let infos = |user: &str| {
            let mut infos: Vec<(i8, i32)> = file
                .map(|f| f.scram_of(user))
                .unwrap_or_default()
                .into_iter()
                .chain(
                    stored
                        .get(user)
                        .into_iter()
                        .flat_map(|m| m.values().cloned()),
                )
                .map(|c| {
                    (
                        c.hash().kafka_type(),
                        i32::try_from(c.iterations()).unwrap_or(i32::MAX),
                    )
                })
                .collect();
            infos.sort_unstable();
            infos
        };
        let all: Vec<String>;
        let wanted = match users {
            Some(list) if !list.is_empty() => list,
            _ => {
                let mut names: BTreeSet<String> = stored.keys().cloned().collect();
                if let Some(f) = file {
                    names.extend(f.scram_user_names());
                }
                all = names.into_iter().collect();
                &all
            }
        };
        wanted
            .iter()
            .map(|user| {
                let outcome = if wanted.iter().filter(|u| *u == user).count() > 1 {
                    Err((
                        DUPLICATE_RESOURCE,
                        "Cannot describe SCRAM credentials for the same user twice in a single request".into(),
                    ))
                } else {
                    let infos = infos(user);
                    if infos.is_empty() {
                        Err((
                            RESOURCE_NOT_FOUND,
                            "Attempt to describe a user credential that does not exist".into(),
                        ))
                    } else {
                        Ok(infos)
                    }
                };
                (user.clone(), outcome)
            })
            .collect()
    }

    /// AlterUserScramCredentials: checks every alteration, applies those of the users whose
    /// alterations all pass (persisted before they take effect), and answers per user, in the
    /// order users first appear.
    ///
    /// # Errors
    /// An I/O error writing the file: nothing changed (every user gets a retriable error
    /// from the caller).
    pub fn alter(
        &self,
        alterations: &[Alteration],
        file: Option<&SaslUsers>,
    ) -> Result<Vec<(String, std::result::Result<(), Refusal>)>> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let mut next = users.clone();
        let order = users_in_order(alterations);
        let mut refused: BTreeMap<String, Refusal> = BTreeMap::new();
        for a in alterations {
            let user = a.user();
            if refused.contains_key(user) {
                continue;
            }
            let twice = alterations
                .iter()
                .filter(|b| b.user() == user && b.mechanism() == a.mechanism())
                .count()
                > 1;
            let outcome = check(a, twice, file).and_then(|hash| {
                let creds = next.entry(user.to_owned()).or_default();
                match a {
                    Alteration::Delete { .. } => {
                        if creds.remove(hash.name()).is_none() {
                            return Err((
                                RESOURCE_NOT_FOUND,
                                "Attempt to delete a user credential that does not exist".into(),
                            ));
                        }
                    }
                    Alteration::Upsert {
                        iterations,
                        salt,
                        salted_password,
                        ..
                    } => {
                        let iterations = u32::try_from(*iterations).unwrap_or(4096);
                        creds.insert(
                            hash.name(),
                            ScramCredential::from_salted(hash, salted_password, salt, iterations),
                        );
                    }
                }
                Ok(())
            });
            if let Err(refusal) = outcome {
                refused.insert(user.to_owned(), refusal);
                // All or nothing per user: back to what it had.
                match users.get(user) {
                    Some(had) => next.insert(user.to_owned(), had.clone()),
                    None => next.remove(user),
                };
            }
        }
        next.retain(|_, creds| !creds.is_empty());
        if order.iter().any(|u| !refused.contains_key(u)) {
            self.persist(&next)?;
        }
        *users = next;
        Ok(order
            .into_iter()
            .map(|u| {
                let outcome = refused.remove(&u).map_or(Ok(()), Err);
                (u, outcome)
            })
            .collect())
    }

    fn persist(&self, users: &Users) -> Result<()> {
        let file = StoredFile {
            users: users
                .iter()
                .map(|(user, creds)| {
                    let creds = creds
                        .iter()
                        .map(|(name, c)| {
                            let [salt, stored_key, server_key] = c.to_stored();
                            (
                                (*name).to_owned(),
                                StoredCredential {
                                    iterations: c.iterations(),
                                    salt,
                                    stored_key,
                                    server_key,
                                },
                            )
                        })
                        .collect();
                    (user.clone(), creds)
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        RealDisk
            .replace(&self.path, &bytes)
            .map_err(io_at(&self.path))
    }
}

/// Kafka's checks of one alteration; the mechanism's hash when it passes.
fn check(
    a: &Alteration,
    twice: bool,
    file: Option<&SaslUsers>,
) -> std::result::Result<ScramHash, Refusal> {
    let user = a.user();
    if user.is_empty() {
        return Err((UNACCEPTABLE_CREDENTIAL, "Username must not be empty".into()));
    }
    let Some(hash) = ScramHash::from_kafka_type(a.mechanism()) else {
        return Err((
            UNSUPPORTED_SASL_MECHANISM,
            format!(
                "Unknown SCRAM mechanism {}; use 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512)",
                a.mechanism()
            ),
        ));
    };
    if twice {
        return Err((
            DUPLICATE_RESOURCE,
            "A user credential cannot be altered twice in the same request".into(),
        ));
    }
    if file.is_some_and(|f| f.contains(user)) {
        return Err((
            INVALID_REQUEST,
            format!(
                "user `{user}` is defined in the --sasl-users file; change it there and restart the broker"
            ),
        ));
    }
    if let Alteration::Upsert {
        iterations,
        salt,
        salted_password,
        ..
    } = a
    {
        if *iterations < MIN_ITERATIONS {
            return Err((
                UNACCEPTABLE_CREDENTIAL,
                format!("Too few iterations: {iterations} (at least {MIN_ITERATIONS})"),
            ));
        }
        if *iterations > MAX_ITERATIONS {
            return Err((
                UNACCEPTABLE_CREDENTIAL,
                format!("Too many iterations: {iterations} (at most {MAX_ITERATIONS})"),
            ));
        }
        if salt.is_empty() || salted_password.is_empty() {
            return Err((
                UNACCEPTABLE_CREDENTIAL,
                "the salt and the salted password must not be empty".into(),
            ));
        }
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> Alteration {
        Alteration::Upsert {
            user: user.into(),
            mechanism,
            iterations,
            salt: b"salt".to_vec(),
            salted_password: vec![7; 32],
        }
    }

    fn codes(outcomes: &[(String, std::result::Result<(), Refusal>)]) -> Vec<(&str, i16)> {
        outcomes
            .iter()
            .map(|(u, o)| (u.as_str(), o.as_ref().map_or_else(|(c, _)| *c, |()| 0)))
            .collect()
    }

    #[test]
    fn kafka_checks_per_user_all_or_nothing_and_persisted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ScramCredentials::open(dir.path()).expect("open");
        let outcomes = store
            .alter(
                &[
                    upsert("ann", 1, 4096),
                    // bob's second alteration fails, so his first is not applied either.
                    upsert("bob", 1, 4096),
                    upsert("bob", 2, 100),
                    upsert("cid", 2, 20000),
                    upsert("dan", 9, 4096),
                    upsert("", 1, 4096),
                    upsert("eve", 1, 4096),
                    Alteration::Delete {
                        user: "eve".into(),
                        mechanism: 1,
                    },
                    Alteration::Delete {
                        user: "fay".into(),
                        mechanism: 2,
                    },
                ],
                None,
            )
            .expect("alter");
        assert_eq!(
            codes(&outcomes),
            vec![
                ("ann", 0),
                ("bob", UNACCEPTABLE_CREDENTIAL),
                ("cid", UNACCEPTABLE_CREDENTIAL),
                ("dan", UNSUPPORTED_SASL_MECHANISM),
                ("", UNACCEPTABLE_CREDENTIAL),
                ("eve", DUPLICATE_RESOURCE),
                ("fay", RESOURCE_NOT_FOUND),
            ]
        );
        assert!(store.get("ann", ScramHash::Sha256).is_some());
        assert!(store.get("bob", ScramHash::Sha256).is_none());

        let reopened = ScramCredentials::open(dir.path()).expect("reopen");
        let ann = reopened.get("ann", ScramHash::Sha256).expect("kept");
        let fresh = ScramCredential::from_salted(ScramHash::Sha256, &[7; 32], b"salt", 4096);
        assert_eq!(ann.to_stored(), fresh.to_stored());
        let described = reopened.describe(None, None);
        assert_eq!(described.len(), 1);
        assert_eq!(described[0].1, Ok(vec![(1, 4096)]));
        let described = reopened.describe(Some(&["zed".into(), "ann".into(), "ann".into()]), None);
        assert_eq!(
            described[0].1.as_ref().map_err(|(c, _)| *c),
            Err(RESOURCE_NOT_FOUND)
        );
        assert_eq!(
            described[1].1.as_ref().map_err(|(c, _)| *c),
            Err(DUPLICATE_RESOURCE)
        );
    }

    #[test]
    fn file_users_stay_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ScramCredentials::open(dir.path()).expect("open");
        let file = SaslUsers::new(
            &[("py".into(), "pw".into())],
            &[crate::security::Mechanism::ScramSha512],
        );
        let outcomes = store
            .alter(&[upsert("py", 2, 4096)], Some(&file))
            .expect("alter");
        assert_eq!(codes(&outcomes), vec![("py", INVALID_REQUEST)]);
        let described = store.describe(Some(&["py".into()]), Some(&file));
        assert_eq!(described[0].1, Ok(vec![(2, 4096)]));
    }

    #[test]
    fn a_damaged_store_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scram-credentials.json");
        std::fs::write(
            &path,
            r#"{"users":{"ann":{"SCRAM-SHA-256":{"iterations":4096,"salt":"c2FsdA==","stored_key":"AA==","server_key":"AA=="}}}}"#,
        )
        .expect("write");
        let err = ScramCredentials::open(dir.path())
            .expect_err("damaged")
            .to_string();
        assert!(
            err.contains("scram-credentials.json") && err.contains("ann"),
            "{err}"
        );
    }
}
