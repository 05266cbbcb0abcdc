//! The shared idempotency store on Valkey/Redis (`STROM_VALKEY_URL`): one JSON record per key under
//! `<prefix>:idem:<record key>`, claimed with `SET NX PX` so concurrent API processes agree on who runs a request.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::{
    Claim, IdempotencyError, IdempotencyStore, Record, StoredResponse, IN_FLIGHT_TTL, RECORD_TTL,
};

/// A claim that finds the key gone between `SET NX` and `GET` (it expired in between) tries again this often:
/// two rounds need an expiry to hit that exact gap twice.
const CLAIM_ATTEMPTS: usize = 3;
/// How long connecting to Valkey may take at startup before `strom serve` gives up with an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Records in Valkey/Redis. Cheap to clone (the connection manager is shared and reconnects by itself).
#[derive(Clone)]
pub struct RedisIdempotencyStore {
    conn: ConnectionManager,
    prefix: String,
    in_flight_ttl: Duration,
    record_ttl: Duration,
}

impl RedisIdempotencyStore {
    /// Connects to `url`; keys are `<prefix>:idem:<record key>`.
    ///
    /// # Errors
    /// The URL is malformed or the server does not answer within the connect timeout.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, IdempotencyError> {
        Self::connect_with_ttls(url, prefix, IN_FLIGHT_TTL, RECORD_TTL).await
    }

    /// As [`Self::connect`], with custom TTLs (tests).
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn connect_with_ttls(
        url: &str,
        prefix: &str,
        in_flight_ttl: Duration,
        record_ttl: Duration,
    ) -> Result<Self, IdempotencyError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new(client))
            .await
            .map_err(|_| {
                IdempotencyError::Backend(format!(
                    "no answer from {url} within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(backend)?;
        Ok(Self {
            conn,
            prefix: format!("{prefix}:idem:"),
            in_flight_ttl,
            record_ttl,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn backend(e: redis::RedisError) -> IdempotencyError {
    IdempotencyError::Backend(e.to_string())
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl IdempotencyStore for RedisIdempotencyStore {
    async fn claim(&self, key: &str, body_hash: &str) -> Result<Claim, IdempotencyError> {
        let key = self.key(key);
        let marker = serde_json::to_string(&Record::InFlight {
            body_hash: body_hash.to_owned(),
        })?;
        let mut conn = self.conn.clone();
        for _ in 0..CLAIM_ATTEMPTS {
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&marker)
                .arg("NX")
                .arg("PX")
                .arg(millis(self.in_flight_ttl))
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            if set.is_some() {
                return Ok(Claim::Claimed);
            }
            let existing: Option<String> = conn.get(&key).await.map_err(backend)?;
            if let Some(text) = existing {
                return Ok(Claim::Existing(serde_json::from_str(&text)?));
            }
        }
        Err(IdempotencyError::Backend(format!(
            "key {key} kept expiring while being claimed"
        )))
    }

    async fn complete(
        &self,
        key: &str,
        body_hash: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        let record = serde_json::to_string(&Record::Completed {
            body_hash: body_hash.to_owned(),
            response: response.clone(),
        })?;
        let mut conn = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(self.key(key))
            .arg(record)
            .arg("PX")
            .arg(millis(self.record_ttl))
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.del(self.key(key)).await.map_err(backend)?;
        Ok(())
    }
}
