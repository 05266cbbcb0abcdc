//! The in-process idempotency store: a bounded LRU, for embedded mode (one API process, nothing shared).

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use lru::LruCache;
use tokio::time::Instant;

use super::{
    Claim, IdempotencyError, IdempotencyStore, Record, StoredResponse, IN_FLIGHT_TTL, RECORD_TTL,
};

/// Records kept at most (specs/01 §4 `IDEMPOTENCY_MEMORY_MAX`): at a few hundred bytes each, 10,000 are a few
/// megabytes, and a day of a busy single user's POSTs. Beyond it the least recently used record goes first, so a
/// very old key may run again — the same as after its TTL.
pub const IDEMPOTENCY_MEMORY_MAX: usize = 10_000;

/// Bounded LRU of records with expiry times.
pub struct MemoryIdempotencyStore {
    records: Mutex<LruCache<String, (Record, Instant)>>,
    in_flight_ttl: Duration,
    record_ttl: Duration,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIdempotencyStore {
    /// [`IDEMPOTENCY_MEMORY_MAX`] records, the production TTLs.
    pub fn new() -> Self {
        Self::with_limits(IDEMPOTENCY_MEMORY_MAX, IN_FLIGHT_TTL, RECORD_TTL)
    }

    /// Custom bounds (tests use short TTLs).
    pub fn with_limits(capacity: usize, in_flight_ttl: Duration, record_ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            records: Mutex::new(LruCache::new(capacity)),
            in_flight_ttl,
            record_ttl,
        }
    }

    fn with_records<T>(&self, f: impl FnOnce(&mut LruCache<String, (Record, Instant)>) -> T) -> T {
        // A poisoned lock only means another request panicked mid-update of a plain map; the map is still valid.
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut records)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(&self, key: &str, body_hash: &str) -> Result<Claim, IdempotencyError> {
        let now = Instant::now();
        Ok(self.with_records(|records| {
            if let Some((record, expires)) = records.get(key) {
                if *expires > now {
                    return Claim::Existing(record.clone());
                }
            }
            let marker = Record::InFlight {
                body_hash: body_hash.to_owned(),
            };
            records.put(key.to_owned(), (marker, now + self.in_flight_ttl));
            Claim::Claimed
        }))
    }

    async fn complete(
        &self,
        key: &str,
        body_hash: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        let record = Record::Completed {
            body_hash: body_hash.to_owned(),
            response: response.clone(),
        };
        let expires = Instant::now() + self.record_ttl;
        self.with_records(|records| records.put(key.to_owned(), (record, expires)));
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        self.with_records(|records| records.pop(key));
        Ok(())
    }
}
