//! Topics: the registry of topics and their partitions, persisted under `<data-dir>/topics/`.
//!
//! Layout: `topics/<name>/topic.json` (id, partition count, config overrides) and
//! `topics/<name>/<partition>/` (segments). `topic.json` is written last, through a temporary
//! file and a rename, so a topic exists on disk exactly when its partitions do; a directory
//! without it is the remains of an interrupted create and is removed on start. Deletion
//! renames the topic away first, so a crash mid-delete never leaves half a topic.

pub mod config;
pub mod partition;
pub mod producer;
pub mod timestamps;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::{Error, Result, io_at};
use crate::metrics::Metrics;
use crate::storage::Recovery;
pub use config::{CompressionType, TopicConfig};
pub use partition::{AppendOutcome, Partition, ReadOutcome};

/// Whether `name` is a legal Kafka topic name.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Serialize, Deserialize)]
struct TopicFile {
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// A topic: its id, effective config and partitions.
#[derive(Debug)]
pub struct Topic {
    name: Arc<str>,
    id: Uuid,
    config: TopicConfig,
    overrides: BTreeMap<String, String>,
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The topic's id (KIP-516).
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// Effective config.
    pub fn config(&self) -> TopicConfig {
        self.config
    }
    /// The configs set on this topic (not inherited from the broker), by name.
    pub fn overrides_map(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }
    /// Whether `name` was set on this topic (not inherited from the broker).
    pub fn overrides(&self, name: &str) -> bool {
        self.overrides.contains_key(name)
    }
    /// The partitions, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// One partition.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let parts = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i).cloned())
    }
    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        let n = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        i32::try_from(n).unwrap_or(i32::MAX)
    }
}

/// What the broker uses when a request leaves something unset.
#[derive(Clone, Copy, Debug)]
pub struct TopicDefaults {
    /// Partitions for new topics that do not say.
    pub partitions: i32,
    /// Most partitions across all topics (`--max-partitions`).
    pub max_total_partitions: usize,
    /// Config for topics without overrides.
    pub config: TopicConfig,
}

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: i32 = 10_000;

/// All topics of the broker.
#[derive(Debug)]
pub struct Topics {
    dir: PathBuf,
    trash: PathBuf,
    /// Its config changes with dynamic broker configs ([`Topics::set_default_config`]).
    defaults: RwLock<TopicDefaults>,
    data_version: Arc<watch::Sender<u64>>,
    /// How opening a partition treats a damaged segment.
    recovery: Recovery,
    metrics: Arc<Metrics>,
    map: RwLock<BTreeMap<String, Arc<Topic>>>,
    admin: Mutex<()>,
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

impl Topics {
    /// Loads every topic under `data_dir/topics`, recovering each partition under
    /// `recovery` (what it cut off is counted in `metrics`).
    ///
    /// # Errors
    /// I/O errors and unreadable `topic.json` files, with their path;
    /// [`Error::CorruptSegment`].
    pub fn open(
        data_dir: &Path,
        defaults: TopicDefaults,
        data_version: Arc<watch::Sender<u64>>,
        recovery: Recovery,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let dir = data_dir.join("topics");
        let trash = data_dir.join("deleted");
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        if trash.exists() {
            fs::remove_dir_all(&trash).map_err(io_at(&trash))?;
        }
        let topics = Topics {
            dir,
            trash,
            defaults: RwLock::new(defaults),
            data_version,
            recovery,
            metrics,
            map: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
        };
        let mut map = BTreeMap::new();
        for entry in fs::read_dir(&topics.dir).map_err(io_at(&topics.dir))? {
            let entry = entry.map_err(io_at(&topics.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let meta = path.join("topic.json");
            if !meta.exists() || !valid_topic_name(&name) {
                tracing::warn!(path = %path.display(), "removing an incomplete topic directory");
                fs::remove_dir_all(&path).map_err(io_at(&path))?;
                continue;
            }
            let text = fs::read_to_string(&meta).map_err(io_at(&meta))?;
            let damaged = |problem: String| Error::Damaged {
                path: meta.clone(),
                problem,
            };
            let file: TopicFile =
                serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
            let id = Uuid::parse_str(&file.id).map_err(|e| damaged(e.to_string()))?;
            let topic = topics.load(&name, id, file.partitions, file.configs)?;
            map.insert(name, Arc::new(topic));
        }
        *topics.map.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(topics)
    }

    fn load(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Topic> {
        let config = TopicConfig::with_overrides(self.defaults().config, &overrides)?;
        let name: Arc<str> = Arc::from(name);
        let parts = (0..partitions)
            .map(|i| self.open_partition(&name, i, config).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topic {
            name,
            id,
            config,
            overrides,
            partitions: RwLock::new(parts),
        })
    }

    fn open_partition(
        &self,
        name: &Arc<str>,
        index: i32,
        config: TopicConfig,
    ) -> Result<Partition> {
        let dir = self.dir.join(&**name).join(index.to_string());
        Partition::open(
            name.clone(),
            index,
            &dir,
            config,
            self.data_version.clone(),
            self.recovery,
            &self.metrics,
        )
    }

    fn write_meta(&self, topic: &Topic, partitions: i32) -> Result<()> {
        self.write_topic_file(topic.name(), topic.id, &topic.overrides, partitions)
    }

    fn write_topic_file(
        &self,
        name: &str,
        id: Uuid,
        overrides: &BTreeMap<String, String>,
        partitions: i32,
    ) -> Result<()> {
        let dir = self.dir.join(name);
        let file = TopicFile {
            id: id.to_string(),
            partitions,
            configs: overrides.clone(),
        };
        let tmp = dir.join("topic.json.tmp");
        let text = serde_json::to_string_pretty(&file).unwrap_or_default();
        fs::write(&tmp, text).map_err(io_at(&tmp))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_at(&tmp))?;
        fs::rename(&tmp, dir.join("topic.json")).map_err(io_at(&dir))?;
        sync_dir(&dir)?;
        sync_dir(&self.dir)
    }

    /// The topic called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The topic with id `id`.
    pub fn by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.list().into_iter().find(|t| t.id == id)
    }

    /// Every topic, by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.list().iter().flat_map(|t| t.partitions()).collect()
    }

    /// The broker's defaults.
    pub fn defaults(&self) -> TopicDefaults {
        *self.defaults.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `config` the default of every topic (a dynamic broker config changed): each topic
    /// without an override of a setting takes the new value at once, as in Kafka.
    ///
    /// # Errors
    /// I/O errors reopening a partition's log (the topics before it have the new settings).
    pub fn set_default_config(&self, config: TopicConfig) -> Result<()> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let changed = self
            .list()
            .into_iter()
            .map(|t| Ok((TopicConfig::with_overrides(config, &t.overrides)?, t)))
            .collect::<Result<Vec<_>>>()?;
        self.defaults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .config = config;
        for (new, topic) in changed {
            if new != topic.config {
                self.reconfigure(&topic, new, topic.overrides.clone())?;
            }
        }
        Ok(())
    }

    /// Gives every partition of `topic` the settings `config` and replaces the topic in the
    /// map with one that has them and `overrides`.
    fn reconfigure(
        &self,
        topic: &Topic,
        config: TopicConfig,
        overrides: BTreeMap<String, String>,
    ) -> Result<()> {
        let partitions = topic.partitions();
        for p in &partitions {
            let dir = self.dir.join(topic.name()).join(p.index().to_string());
            p.reconfigure(&dir, config, &self.metrics)?;
        }
        let altered = Topic {
            name: topic.name.clone(),
            id: topic.id,
            config,
            overrides,
            partitions: RwLock::new(partitions),
        };
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.name().to_owned(), Arc::new(altered));
        Ok(())
    }

    /// Creates a topic (`partitions` -1 means the default). With `validate_only`, checks
    /// everything and creates nothing.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`], [`Error::TopicExists`], [`Error::InvalidPartitions`],
    /// [`Error::InvalidReplicationFactor`], a bad config, I/O errors.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic>>> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if !valid_topic_name(name) {
            return Err(Error::InvalidTopicName(name.to_owned()));
        }
        if self.get(name).is_some() {
            return Err(Error::TopicExists(name.to_owned()));
        }
        let partitions = if partitions == -1 {
            self.defaults().partitions
        } else {
            partitions
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(Error::InvalidPartitions(format!(
                "number of partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}"
            )));
        }
        self.check_room(partitions)?;
        if !matches!(replication_factor, -1 | 1) {
            return Err(Error::InvalidReplicationFactor(replication_factor));
        }
        TopicConfig::with_overrides(self.defaults().config, &overrides)?;
        if validate_only {
            return Ok(None);
        }
        let dir = self.dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_at(&dir))?;
        }
        let topic = self.load(name, Uuid::new_v4(), partitions, overrides)?;
        self.write_meta(&topic, partitions)?;
        let topic = Arc::new(topic);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), topic.clone());
        Ok(Some(topic))
    }

    /// Deletes a topic and its data.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], I/O errors.
    pub fn delete(&self, name: &str) -> Result<Uuid> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| Error::TopicNotFound(name.to_owned()))?;
        fs::create_dir_all(&self.trash).map_err(io_at(&self.trash))?;
        let from = self.dir.join(name);
        let to = self.trash.join(format!("{name}.{}", topic.id));
        fs::rename(&from, &to).map_err(io_at(&from))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&to).map_err(io_at(&to))?;
        self.data_version.send_modify(|v| *v += 1);
        Ok(topic.id)
    }

    /// Replaces the config overrides of `name` (AlterConfigs; IncrementalAlterConfigs
    /// computes the new set from [`Topic::overrides_map`]). Checks everything first; with
    /// `validate_only` changes nothing. Otherwise `topic.json` is rewritten, then every
    /// partition takes the new settings at once.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], a bad config ([`TopicConfig::with_overrides`]), I/O errors.
    pub fn alter_config(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .get(name)
            .ok_or_else(|| Error::TopicNotFound(name.to_owned()))?;
        let config = TopicConfig::with_overrides(self.defaults().config, &overrides)?;
        if validate_only {
            return Ok(());
        }
        self.write_topic_file(name, topic.id, &overrides, topic.partition_count())?;
        self.reconfigure(&topic, config, overrides)
    }

    /// Refuses `more` partitions when they would take the broker past `--max-partitions`.
    fn check_room(&self, more: i32) -> Result<()> {
        let held: usize = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|t| usize::try_from(t.partition_count()).unwrap_or(0))
            .sum();
        let more = usize::try_from(more).unwrap_or(0);
        let max = self.defaults().max_total_partitions;
        if held + more > max {
            return Err(Error::InvalidPartitions(format!(
                "the broker holds {held} partitions; {more} more would pass its limit of {max} (--max-partitions): delete topics or raise the limit"
            )));
        }
        Ok(())
    }

    /// Grows `name` to `count` partitions.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::InvalidPartitions`] unless `count` is larger
    /// than the current count, I/O errors.
    pub fn add_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<()> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .get(name)
            .ok_or_else(|| Error::TopicNotFound(name.to_owned()))?;
        let current = topic.partition_count();
        if count <= current || count > MAX_PARTITIONS {
            return Err(Error::InvalidPartitions(format!(
                "topic `{name}` has {current} partitions; the new count must be larger (and at most {MAX_PARTITIONS}), got {count}"
            )));
        }
        self.check_room(count - current)?;
        if validate_only {
            return Ok(());
        }
        let added = (current..count)
            .map(|i| {
                self.open_partition(&topic.name, i, topic.config)
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_meta(&topic, count)?;
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(added);
        self.data_version.send_modify(|v| *v += 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicDefaults {
        TopicDefaults {
            partitions: 2,
            max_total_partitions: 8,
            config: TopicConfig::default(),
        }
    }

    #[test]
    fn the_broker_holds_at_most_max_partitions_across_topics() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::open(
            dir.path(),
            defaults(),
            Arc::new(watch::channel(0).0),
            Recovery::Refuse,
            Arc::default(),
        )
        .unwrap();
        topics.create("a", 5, 1, BTreeMap::new(), false).unwrap();
        let e = topics
            .create("b", 4, 1, BTreeMap::new(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "the broker holds 5 partitions; 4 more would pass its limit of 8 (--max-partitions)"
            ),
            "{e}"
        );
        assert!(topics.get("b").is_none(), "nothing created");
        topics.create("b", 3, 1, BTreeMap::new(), false).unwrap();
        let e = topics
            .add_partitions("a", 6, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--max-partitions"), "{e}");
        assert_eq!(topics.get("a").unwrap().partition_count(), 5);
    }

    #[test]
    fn create_reload_grow_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let version = Arc::new(watch::channel(0).0);
        let topics = Topics::open(
            dir.path(),
            defaults(),
            version.clone(),
            Recovery::Refuse,
            Arc::default(),
        )
        .expect("open");
        let t = topics
            .create("orders", -1, -1, BTreeMap::new(), false)
            .expect("create")
            .expect("created");
        assert_eq!(t.partition_count(), 2);
        let id = t.id();
        assert!(matches!(
            topics.create("orders", 1, 1, BTreeMap::new(), false),
            Err(Error::TopicExists(_))
        ));
        assert!(matches!(
            topics.create("bad/name", 1, 1, BTreeMap::new(), false),
            Err(Error::InvalidTopicName(_))
        ));
        assert!(matches!(
            topics.create("x", 1, 3, BTreeMap::new(), false),
            Err(Error::InvalidReplicationFactor(3))
        ));
        assert!(
            topics
                .create("dry", 1, 1, BTreeMap::new(), true)
                .expect("valid")
                .is_none()
        );
        assert!(topics.get("dry").is_none());
        topics.add_partitions("orders", 3, false).expect("grow");
        assert!(matches!(
            topics.add_partitions("orders", 3, false),
            Err(Error::InvalidPartitions(_))
        ));
        drop(topics);

        std::fs::create_dir_all(dir.path().join("topics/half")).expect("leftover");
        let topics = Topics::open(
            dir.path(),
            defaults(),
            version,
            Recovery::Refuse,
            Arc::default(),
        )
        .expect("reopen");
        let t = topics.get("orders").expect("orders survives");
        assert_eq!((t.id(), t.partition_count()), (id, 3));
        assert!(!dir.path().join("topics/half").exists());
        assert_eq!(topics.delete("orders").expect("delete"), id);
        assert!(topics.get("orders").is_none());
        assert!(!dir.path().join("topics/orders").exists());
        assert!(matches!(
            topics.delete("orders"),
            Err(Error::TopicNotFound(_))
        ));
    }

    #[test]
    fn topic_names() {
        for ok in ["a", "orders.v1", "A_b-9", &"x".repeat(249)] {
            assert!(valid_topic_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad}");
        }
    }
}
