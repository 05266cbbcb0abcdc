//! Who may relay: a lease that a relay holds while it is the active instance, and through which it loads and saves
//! its checkpoint (so a relay that lost the lease cannot move the checkpoint).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::RelayError;
use crate::store::{CheckpointStore, LogPosition, PgCheckpointStore};

/// First key of every STROM singleton-role advisory lock (specs/01 §2: `hashtext('strom')`), so STROM's locks
/// stay apart from any other application's on the same database.
pub const LOCK_NAMESPACE: &str = "strom";
/// The role part of the relay's lock key, `hashtext('relay:<nats_prefix>')`: one active relay per bus prefix
/// (the prefix names the stream it feeds; tests and deployments sharing a database use distinct prefixes).
pub const LOCK_ROLE: &str = "relay";

const TRY_LOCK_SQL: &str = "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))";

/// Longest a round trip on the lock's connection (confirm, load, save) may take before the relay treats the lease
/// as lost. A healthy local round trip takes milliseconds; a connection silently cut by the network would otherwise
/// hang the relay until the operating system gives up on it, minutes later.
pub const LEASE_ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalive settings of the lock's session, so that the server notices a relay whose host vanished without
/// closing the connection (power loss, partition) after about idle + interval × count = 10 + 5 × 3 = 25 s and frees
/// the lock for a standby. Postgres's defaults follow the operating system's, which is two hours. (Ignored over a
/// Unix socket, where a vanished peer is noticed at once.)
const LOCK_KEEPALIVE_SQL: &str = "SELECT set_config('tcp_keepalives_idle', '10', false),
       set_config('tcp_keepalives_interval', '5', false),
       set_config('tcp_keepalives_count', '3', false)";

/// Decides which relay is active.
#[async_trait]
pub(crate) trait Leadership: Send + Sync {
    /// Tries once to become the active relay: `Some(lease)` if this relay is now the only active one.
    async fn try_acquire(&self) -> Result<Option<Box<dyn Lease>>, RelayError>;
}

/// Held by the active relay. Dropping it gives leadership up (for Postgres: closes the lock's connection).
#[async_trait]
pub(crate) trait Lease: Send {
    /// Fails if the lease is (or may be) lost; the relay must then stop publishing.
    async fn confirm(&mut self) -> Result<(), RelayError>;
    /// The checkpoint `name`, read under the lease.
    async fn load(&mut self, name: &str) -> Result<Option<LogPosition>, RelayError>;
    /// Saves the checkpoint `name`; fails, saving nothing, if the lease is lost.
    async fn save(&mut self, name: &str, position: LogPosition) -> Result<(), RelayError>;
    /// Gives the lease up at once (instead of waiting for the connection to be noticed as closed).
    async fn release(self: Box<Self>);
}

/// Postgres: a session-level `pg_try_advisory_lock` held on a dedicated connection for as long as the relay is
/// active. When the process dies or the connection breaks, Postgres ends the session and frees the lock, and a
/// standby gets it on its next try. The checkpoint is saved through the same connection, so a save succeeds only
/// while the session, hence the lock, is alive: a relay that lost its lock cannot move the checkpoint (it can at
/// worst publish one page twice, which JetStream's msg-id deduplication drops).
pub(crate) struct PgLeadership {
    pub(crate) options: PgConnectOptions,
    /// `relay:<nats_prefix>`.
    pub(crate) key: String,
}

#[async_trait]
impl Leadership for PgLeadership {
    async fn try_acquire(&self) -> Result<Option<Box<dyn Lease>>, RelayError> {
        let mut conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(RelayError::Lock)?;
        let acquired: bool = sqlx::query_scalar(TRY_LOCK_SQL)
            .bind(LOCK_NAMESPACE)
            .bind(&self.key)
            .fetch_one(&mut conn)
            .await
            .map_err(RelayError::Lock)?;
        if acquired {
            within_timeout(sqlx::query(LOCK_KEEPALIVE_SQL).execute(&mut conn))
                .await?
                .map_err(RelayError::Lock)?;
            Ok(Some(Box::new(PgLease { conn })))
        } else {
            conn.close().await.ok();
            Ok(None)
        }
    }
}

struct PgLease {
    conn: PgConnection,
}

#[async_trait]
impl Lease for PgLease {
    async fn confirm(&mut self) -> Result<(), RelayError> {
        // The lock lives exactly as long as this session; a round trip proves the session is still there.
        within_timeout(self.conn.ping())
            .await?
            .map_err(RelayError::Lock)
    }

    async fn load(&mut self, name: &str) -> Result<Option<LogPosition>, RelayError> {
        within_timeout(PgCheckpointStore::load_in(&mut self.conn, name))
            .await?
            .map_err(RelayError::LockCheckpoint)
    }

    async fn save(&mut self, name: &str, position: LogPosition) -> Result<(), RelayError> {
        within_timeout(PgCheckpointStore::save_in(&mut self.conn, name, position))
            .await?
            .map_err(RelayError::LockCheckpoint)
    }

    async fn release(self: Box<Self>) {
        // Closing ends the session, which frees the session-level lock.
        self.conn.close().await.ok();
    }
}

/// Runs one round trip on the lock's connection, or fails with [`RelayError::LockTimedOut`].
async fn within_timeout<T>(round_trip: impl Future<Output = T>) -> Result<T, RelayError> {
    tokio::time::timeout(LEASE_ROUND_TRIP_TIMEOUT, round_trip)
        .await
        .map_err(|_| RelayError::LockTimedOut(LEASE_ROUND_TRIP_TIMEOUT))
}

/// Memory: always granted. The memory event store lives inside one process, and a process runs one relay role
/// (embedded mode is single-process, specs/01 §6), so there is no other instance to exclude; even a second relay
/// over the same memory store would only publish duplicates, which the bus's msg-id deduplication drops.
pub(crate) struct Unshared {
    pub(crate) checkpoints: Arc<dyn CheckpointStore>,
}

#[async_trait]
impl Leadership for Unshared {
    async fn try_acquire(&self) -> Result<Option<Box<dyn Lease>>, RelayError> {
        Ok(Some(Box::new(UnsharedLease {
            checkpoints: Arc::clone(&self.checkpoints),
        })))
    }
}

struct UnsharedLease {
    checkpoints: Arc<dyn CheckpointStore>,
}

#[async_trait]
impl Lease for UnsharedLease {
    async fn confirm(&mut self) -> Result<(), RelayError> {
        Ok(())
    }

    async fn load(&mut self, name: &str) -> Result<Option<LogPosition>, RelayError> {
        self.checkpoints
            .load(name)
            .await
            .map_err(RelayError::Checkpoint)
    }

    async fn save(&mut self, name: &str, position: LogPosition) -> Result<(), RelayError> {
        self.checkpoints
            .save(name, position)
            .await
            .map_err(RelayError::Checkpoint)
    }

    async fn release(self: Box<Self>) {}
}
