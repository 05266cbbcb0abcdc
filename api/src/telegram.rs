//! The Telegram link store (specs/02 §4, specs/05 §5): one-time link codes (only their sha256 is kept) and the
//! chats linked to users. Security state written directly by the API, not event-sourced; Postgres when the process
//! has a database, memory otherwise (embedded mode).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::{capped_at_trader, Role};

/// How long a link code is good for (specs/05 §5).
pub const LINK_CODE_TTL_S: i64 = 600;
/// Characters of a link code.
pub const LINK_CODE_LEN: usize = 8;
/// The code alphabet: A–Z and 2–9 without the look-alikes I, O, 0 and 1.
const LINK_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Link codes a user may create per window, and failed redemptions a chat may make per window (specs/05 §7).
pub const ATTEMPTS_PER_WINDOW: usize = 5;
/// The window of [`ATTEMPTS_PER_WINDOW`].
pub const ATTEMPT_WINDOW_S: i64 = 600;

/// A fresh link code from the OS CSPRNG.
pub fn new_link_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..LINK_CODE_LEN)
        .map(|_| char::from(LINK_CODE_ALPHABET[rng.gen_range(0..LINK_CODE_ALPHABET.len())]))
        .collect()
}

/// Lower-hex sha256 of a code, as stored. Codes are compared case-insensitively (users retype them).
pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().to_ascii_uppercase().as_bytes()))
}

/// A chat linked to a user (`TelegramLink` in specs/03 §5, plus what the API keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TelegramLink {
    pub chat_id: i64,
    #[serde(skip)]
    pub user_sub: String,
    #[serde(skip)]
    pub roles: Vec<Role>,
    pub telegram_username: Option<String>,
    /// The Telegram user who linked the chat: in a group, the only one the bot obeys.
    pub telegram_user_id: Option<i64>,
    pub linked_at: DateTime<Utc>,
}

/// A stored link code.
#[derive(Debug, Clone)]
struct CodeRow {
    user_sub: String,
    roles: Vec<Role>,
    expires_at: DateTime<Utc>,
    used: bool,
}

#[derive(Default)]
struct Memory {
    codes: HashMap<String, CodeRow>,
    links: HashMap<i64, TelegramLink>,
}

enum Backend {
    Memory(Mutex<Memory>),
    Postgres(sqlx::PgPool),
}

/// The link store, plus the in-process attempt windows that rate-limit it.
pub struct LinkStore {
    backend: Backend,
    code_creations: AttemptWindows<String>,
    failed_redemptions: AttemptWindows<i64>,
}

/// A `telegram_links` row: chat_id, user_sub, roles, telegram_username, telegram_user_id, linked_at.
type LinkRow = (
    i64,
    String,
    Vec<String>,
    Option<String>,
    Option<i64>,
    DateTime<Utc>,
);

fn link_of_row(
    (chat_id, user_sub, roles, telegram_username, telegram_user_id, linked_at): LinkRow,
) -> TelegramLink {
    TelegramLink {
        chat_id,
        user_sub,
        roles: roles_parsed(&roles),
        telegram_username,
        telegram_user_id,
        linked_at,
    }
}

fn roles_text(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

fn roles_parsed(roles: &[String]) -> Vec<Role> {
    roles.iter().filter_map(|r| Role::parse(r)).collect()
}

impl LinkStore {
    /// Postgres when a pool is given, memory otherwise.
    pub fn new(pool: Option<sqlx::PgPool>) -> Self {
        Self {
            backend: match pool {
                Some(pool) => Backend::Postgres(pool),
                None => Backend::Memory(Mutex::default()),
            },
            code_creations: AttemptWindows::default(),
            failed_redemptions: AttemptWindows::default(),
        }
    }

    /// Seconds until `sub` may create another code, if it has used up its window.
    pub fn code_creation_wait(&self, sub: &str, now: DateTime<Utc>) -> Option<u64> {
        self.code_creations.wait(&sub.to_owned(), now)
    }

    /// Counts one code creation of `sub`.
    pub fn note_code_creation(&self, sub: &str, now: DateTime<Utc>) {
        self.code_creations.note(sub.to_owned(), now);
    }

    /// Seconds until `chat_id` may try another redemption, if its failures used up the window.
    pub fn redemption_wait(&self, chat_id: i64, now: DateTime<Utc>) -> Option<u64> {
        self.failed_redemptions.wait(&chat_id, now)
    }

    /// Counts one failed redemption from `chat_id`.
    pub fn note_failed_redemption(&self, chat_id: i64, now: DateTime<Utc>) {
        self.failed_redemptions.note(chat_id, now);
    }

    /// Stores a new code (its hash) for `sub` with `roles` capped at trader, valid [`LINK_CODE_TTL_S`] from `now`.
    /// Returns when it expires.
    ///
    /// # Errors
    /// The database fails.
    pub async fn create_code(
        &self,
        hash: &str,
        sub: &str,
        roles: &[Role],
        now: DateTime<Utc>,
    ) -> anyhow::Result<DateTime<Utc>> {
        let roles = capped_at_trader(roles);
        let expires_at = now + Duration::seconds(LINK_CODE_TTL_S);
        match &self.backend {
            Backend::Memory(m) => {
                lock(m).codes.insert(
                    hash.to_owned(),
                    CodeRow {
                        user_sub: sub.to_owned(),
                        roles,
                        expires_at,
                        used: false,
                    },
                );
            }
            Backend::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO telegram_link_codes (code_hash, user_sub, roles, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(hash)
                .bind(sub)
                .bind(roles_text(&roles))
                .bind(now)
                .bind(expires_at)
                .execute(pool)
                .await?;
            }
        }
        tracing::info!(actor = sub, "telegram link code created");
        Ok(expires_at)
    }

    /// Redeems the code with `hash` for `chat_id`: a valid, unused, unexpired code is marked used and the chat is
    /// linked (re-linked if it was linked to someone else). `None` for an unknown, used or expired code.
    ///
    /// # Errors
    /// The database fails.
    pub async fn redeem(
        &self,
        hash: &str,
        chat_id: i64,
        telegram_username: Option<String>,
        telegram_user_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<TelegramLink>> {
        let link = match &self.backend {
            Backend::Memory(m) => {
                let mut m = lock(m);
                let Some(code) = m
                    .codes
                    .get_mut(hash)
                    .filter(|c| !c.used && c.expires_at > now)
                else {
                    return Ok(None);
                };
                code.used = true;
                let link = TelegramLink {
                    chat_id,
                    user_sub: code.user_sub.clone(),
                    roles: code.roles.clone(),
                    telegram_username,
                    telegram_user_id,
                    linked_at: now,
                };
                m.links.insert(chat_id, link.clone());
                link
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row: Option<(String, Vec<String>)> = sqlx::query_as(
                    "UPDATE telegram_link_codes SET used_at = $2, used_by_chat_id = $3 \
                     WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     RETURNING user_sub, roles",
                )
                .bind(hash)
                .bind(now)
                .bind(chat_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user_sub, roles)) = row else {
                    return Ok(None);
                };
                sqlx::query(
                    "INSERT INTO telegram_links \
                     (chat_id, user_sub, roles, telegram_username, telegram_user_id, linked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chat_id) DO UPDATE SET user_sub = $2, \
                     roles = $3, telegram_username = $4, telegram_user_id = $5, linked_at = $6",
                )
                .bind(chat_id)
                .bind(&user_sub)
                .bind(&roles)
                .bind(&telegram_username)
                .bind(telegram_user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                TelegramLink {
                    chat_id,
                    user_sub,
                    roles: roles_parsed(&roles),
                    telegram_username,
                    telegram_user_id,
                    linked_at: now,
                }
            }
        };
        tracing::info!(actor = %link.user_sub, chat_id, "telegram chat linked");
        Ok(Some(link))
    }

    /// The link of `chat_id`, if linked.
    ///
    /// # Errors
    /// The database fails.
    pub async fn link_of_chat(&self, chat_id: i64) -> anyhow::Result<Option<TelegramLink>> {
        Ok(match &self.backend {
            Backend::Memory(m) => lock(m).links.get(&chat_id).cloned(),
            Backend::Postgres(pool) => {
                let row: Option<LinkRow> = sqlx::query_as(
                    "SELECT chat_id, user_sub, roles, telegram_username, telegram_user_id, linked_at FROM telegram_links \
                     WHERE chat_id = $1",
                )
                .bind(chat_id)
                .fetch_optional(pool)
                .await?;
                row.map(link_of_row)
            }
        })
    }

    /// The chats linked to `sub`, oldest link first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn links_of_user(&self, sub: &str) -> anyhow::Result<Vec<TelegramLink>> {
        Ok(match &self.backend {
            Backend::Memory(m) => {
                let mut links: Vec<TelegramLink> = lock(m)
                    .links
                    .values()
                    .filter(|l| l.user_sub == sub)
                    .cloned()
                    .collect();
                links.sort_by_key(|l| (l.linked_at, l.chat_id));
                links
            }
            Backend::Postgres(pool) => {
                let rows: Vec<LinkRow> = sqlx::query_as(
                    "SELECT chat_id, user_sub, roles, telegram_username, telegram_user_id, linked_at FROM telegram_links \
                     WHERE user_sub = $1 ORDER BY linked_at, chat_id",
                )
                .bind(sub)
                .fetch_all(pool)
                .await?;
                rows.into_iter().map(link_of_row).collect()
            }
        })
    }

    /// Unlinks `chat_id` if it is linked to `sub`; whether it was.
    ///
    /// # Errors
    /// The database fails.
    pub async fn unlink(&self, chat_id: i64, sub: &str) -> anyhow::Result<bool> {
        let removed = match &self.backend {
            Backend::Memory(m) => {
                let mut m = lock(m);
                if m.links.get(&chat_id).is_some_and(|l| l.user_sub == sub) {
                    m.links.remove(&chat_id);
                    true
                } else {
                    false
                }
            }
            Backend::Postgres(pool) => {
                sqlx::query("DELETE FROM telegram_links WHERE chat_id = $1 AND user_sub = $2")
                    .bind(chat_id)
                    .bind(sub)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    > 0
            }
        };
        if removed {
            tracing::info!(actor = sub, chat_id, "telegram chat unlinked");
        }
        Ok(removed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sliding windows of attempt times per key: at most [`ATTEMPTS_PER_WINDOW`] per [`ATTEMPT_WINDOW_S`].
struct AttemptWindows<K> {
    seen: Mutex<HashMap<K, VecDeque<DateTime<Utc>>>>,
}

impl<K> Default for AttemptWindows<K> {
    fn default() -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: std::hash::Hash + Eq> AttemptWindows<K> {
    fn wait(&self, key: &K, now: DateTime<Utc>) -> Option<u64> {
        let mut seen = lock(&self.seen);
        let times = seen.get_mut(key)?;
        let window = Duration::seconds(ATTEMPT_WINDOW_S);
        while times.front().is_some_and(|t| *t + window <= now) {
            times.pop_front();
        }
        if times.len() < ATTEMPTS_PER_WINDOW {
            return None;
        }
        let oldest = *times.front()?;
        Some(
            u64::try_from((oldest + window - now).num_seconds())
                .unwrap_or(0)
                .max(1),
        )
    }

    fn note(&self, key: K, now: DateTime<Utc>) {
        lock(&self.seen).entry(key).or_default().push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet_and_hash_case_insensitively() {
        let code = new_link_code();
        assert_eq!(code.len(), LINK_CODE_LEN);
        assert!(
            code.bytes().all(|b| LINK_CODE_ALPHABET.contains(&b)),
            "{code}"
        );
        assert_eq!(code_hash(&code), code_hash(&code.to_ascii_lowercase()));
        assert_ne!(code_hash("AAAAAAAA"), code_hash("AAAAAAAB"));
    }

    #[tokio::test]
    async fn a_code_links_once_and_expires() {
        let store = LinkStore::new(None);
        let now = Utc::now();
        store
            .create_code(
                &code_hash("ABCDEFGH"),
                "alice",
                &[Role::Viewer, Role::Admin],
                now,
            )
            .await
            .unwrap();
        store
            .create_code(&code_hash("HGFEDCBA"), "alice", &[Role::Trader], now)
            .await
            .unwrap();
        let link = store
            .redeem(&code_hash("abcdefgh"), 7, None, Some(7), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (link.user_sub.as_str(), link.roles.as_slice()),
            ("alice", &[Role::Viewer, Role::Trader][..])
        );
        assert!(store
            .redeem(&code_hash("ABCDEFGH"), 8, None, None, now)
            .await
            .unwrap()
            .is_none());
        let late = now + Duration::seconds(LINK_CODE_TTL_S);
        assert!(store
            .redeem(&code_hash("HGFEDCBA"), 8, None, None, late)
            .await
            .unwrap()
            .is_none());
        assert!(!store.unlink(7, "bob").await.unwrap());
        assert!(store.unlink(7, "alice").await.unwrap());
        assert!(store.link_of_chat(7).await.unwrap().is_none());
    }

    #[test]
    fn attempt_windows_allow_five_then_say_how_long_to_wait() {
        let windows = AttemptWindows::<i64>::default();
        let now = Utc::now();
        for _ in 0..ATTEMPTS_PER_WINDOW {
            assert_eq!(windows.wait(&1, now), None);
            windows.note(1, now);
        }
        assert_eq!(windows.wait(&1, now), Some(600));
        assert_eq!(windows.wait(&2, now), None);
        assert_eq!(windows.wait(&1, now + Duration::seconds(600)), None);
    }
}
