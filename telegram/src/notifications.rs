//! The chats' notification subscriptions (`/notify <agent> on`), kept in a small JSON file so a restart of the bot
//! keeps them: each (chat, agent) with the id of the last event of the agent's stream the bot heard, from which the
//! stream resumes (`Last-Event-ID`), so the fills and refusals of the downtime are sent after it too. The bot talks
//! to the API only; this file is its own state, like a cursor (no database, no bus). Written whole, to a temporary
//! file renamed over the old one, so a crash leaves either the old or the new file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub chat_id: i64,
    pub agent_id: String,
    /// The `id:` of the last message of the agent's stream the bot read (its sequence), if any.
    pub last_event_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct File {
    notifications: Vec<Stored>,
}

/// The subscriptions, and the file that keeps them (`None`: in memory only).
pub struct NotificationStore {
    path: Option<PathBuf>,
    entries: Mutex<BTreeMap<(i64, String), Option<String>>>,
}

impl NotificationStore {
    /// Reads `path` (a missing file is no subscriptions).
    ///
    /// # Errors
    /// The file exists but cannot be read or is not what this writes.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let entries = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<File>(&bytes)
                .with_context(|| {
                    format!(
                        "{} is not a notifications file of strom telegram",
                        path.display()
                    )
                })?
                .notifications
                .into_iter()
                .map(|s| ((s.chat_id, s.agent_id), s.last_event_id))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("Failed to read {}", path.display())),
        };
        Ok(Self {
            path: Some(path.to_owned()),
            entries: Mutex::new(entries),
        })
    }

    /// Subscriptions kept in memory only (tests of the core).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every stored subscription, by chat then agent.
    pub fn all(&self) -> Vec<Stored> {
        self.lock()
            .iter()
            .map(|((chat_id, agent_id), last)| Stored {
                chat_id: *chat_id,
                agent_id: agent_id.clone(),
                last_event_id: last.clone(),
            })
            .collect()
    }

    /// Keeps (chat, agent) with `last_event_id`.
    pub fn keep(&self, chat_id: i64, agent_id: &str, last_event_id: Option<&str>) {
        let mut entries = self.lock();
        let last = last_event_id.map(str::to_owned);
        if entries.get(&(chat_id, agent_id.to_owned())) == Some(&last) {
            return;
        }
        entries.insert((chat_id, agent_id.to_owned()), last);
        self.save(&entries);
    }

    /// Forgets (chat, agent).
    pub fn forget(&self, chat_id: i64, agent_id: &str) {
        let mut entries = self.lock();
        if entries.remove(&(chat_id, agent_id.to_owned())).is_some() {
            self.save(&entries);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(i64, String), Option<String>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the file (a failure is logged: the subscriptions still work until the next restart).
    fn save(&self, entries: &BTreeMap<(i64, String), Option<String>>) {
        let Some(path) = &self.path else { return };
        let file = File {
            notifications: entries
                .iter()
                .map(|((chat_id, agent_id), last)| Stored {
                    chat_id: *chat_id,
                    agent_id: agent_id.clone(),
                    last_event_id: last.clone(),
                })
                .collect(),
        };
        let written = (|| -> anyhow::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        })();
        if let Err(e) = written {
            tracing::warn!(error = %e, file = %path.display(), "notifications not saved: a restart would forget the latest");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_survive_a_reopen_with_their_last_event() {
        let dir = std::env::temp_dir().join(format!("strom-notify-{}", uuid::Uuid::new_v4()));
        let path = dir.join("notifications.json");
        let store = NotificationStore::open(&path).unwrap();
        assert!(store.all().is_empty(), "no file yet: none");
        store.keep(7, "a", None);
        store.keep(7, "b", None);
        store.keep(7, "a", Some("42"));
        store.forget(7, "b");
        let reopened = NotificationStore::open(&path).unwrap();
        assert_eq!(
            reopened.all(),
            vec![Stored {
                chat_id: 7,
                agent_id: "a".into(),
                last_event_id: Some("42".into())
            }]
        );
        std::fs::write(&path, "not json").unwrap();
        assert!(
            NotificationStore::open(&path).is_err(),
            "a damaged file is an error, not an empty list"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
