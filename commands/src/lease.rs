//! One active instance per singleton role (specs/01 §2) — the scheduler, the relay and the roles to come: a Postgres
//! *session* advisory lock `pg_try_advisory_lock(hashtext('strom'), hashtext('<role>:<nats_prefix>'))` held on a
//! dedicated connection (never a pooled one, which would hand the session — and the lock — to other work).
//!
//! A standby tries every `retry`; the holder confirms its session with a ping and steps down as soon as one fails or
//! hangs ([`LEASE_IO_TIMEOUT`]): the server frees the lock when the session ends. TCP keepalives on the lock's session
//! make the server notice a holder whose host vanished without closing the connection (power loss, partition) within
//! about 25 s instead of the operating system's two hours. State a role must not advance after losing its lease (the
//! relay's checkpoint) is saved through the lease's own connection ([`Lease::save_checkpoint`]), so a save succeeds
//! only while the lock is held.
//!
//! Between a lock session dying and its holder's next confirmation, two instances may both act for up to one
//! confirmation interval; each role makes that harmless (tick and event msg ids are deduplicated by JetStream).

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::log::{CheckpointStore, LogPosition, PgCheckpointStore, StoreError};

/// First key of every STROM singleton lock: keeps them apart from other applications' locks on the same database.
pub const LOCK_NAMESPACE: &str = "strom";
/// How often a standby tries to take the lock (specs/01 §2 `LEADER_RETRY_S`): a failover within seconds, while a
/// standby costs the database one cheap query per interval.
pub const LEADER_RETRY: Duration = Duration::from_secs(5);
/// How often a holder confirms its lease. Bounds the overlap after a lost session (see the module docs) to about this
/// long, at one round trip per second.
pub const LEASE_CHECK: Duration = Duration::from_secs(1);
/// Longest a lock-connection round trip (connect + try-lock, ping, checkpoint, close) may take. Locally they take
/// milliseconds; one that hangs means Postgres is unreachable or the connection was cut silently, and the holder must
/// not sit in it (nor a standby in a hung connect): it treats the lease as lost (or not taken).
pub const LEASE_IO_TIMEOUT: Duration = Duration::from_secs(5);

const TRY_LOCK_SQL: &str = "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))";

/// idle + interval × count = 10 + 5 × 3 = 25 s until the server drops a vanished peer (ignored over a Unix socket,
/// where a vanished peer is noticed at once).
const KEEPALIVE_SQL: &str = "SELECT set_config('tcp_keepalives_idle', '10', false),
       set_config('tcp_keepalives_interval', '5', false),
       set_config('tcp_keepalives_count', '3', false)";

/// The second key of `role`'s lock for the deployment using NATS prefix `prefix`: each prefix (each test, each
/// deployment sharing a database) has its own leader.
pub fn lock_name(role: &str, prefix: &str) -> String {
    format!("{role}:{prefix}")
}

/// Why the lease could not be taken or confirmed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lock's connection could not be opened, or failed: the lease is lost.
    #[error("leader lock connection failed (lease lost): {0}")]
    Lock(#[source] sqlx::Error),
    /// A round trip on the lock's connection took too long: presumed cut, the lease lost.
    #[error(
        "leader lock connection did not answer within {LEASE_IO_TIMEOUT:?} (lease presumed lost)"
    )]
    TimedOut,
    /// A checkpoint could not be read or saved under the lease.
    #[error("checkpoint under the lease failed: {0}")]
    Checkpoint(#[source] StoreError),
}

/// How an instance of a singleton role decides whether it is the active one.
#[derive(Debug, Clone)]
pub enum Singleton {
    /// Always active. For the memory backend: embedded mode is one process, with no other instance to coordinate
    /// with (specs/01 §6), so there is nothing to lock.
    Single,
    /// Active while holding the advisory lock `lock_name` on a connection opened with `options`.
    Postgres {
        /// Boxed: it is large, and `Single` is nothing.
        options: Box<PgConnectOptions>,
        lock_name: String,
    },
}

impl Singleton {
    /// The advisory lock of `role` for NATS prefix `prefix`, on connections like `options` (a pool's
    /// `connect_options()`).
    pub fn postgres(options: PgConnectOptions, role: &str, prefix: &str) -> Self {
        Self::Postgres {
            options: Box::new(options),
            lock_name: lock_name(role, prefix),
        }
    }

    /// Tries once: `Some(lease)` if this instance is now the active one.
    ///
    /// # Errors
    /// Postgres could not be reached (or did not answer within [`LEASE_IO_TIMEOUT`]).
    pub async fn try_acquire(&self) -> Result<Option<Lease>, LeaseError> {
        let (options, lock_name) = match self {
            Self::Single => return Ok(Some(Lease { connection: None })),
            Self::Postgres { options, lock_name } => (options, lock_name),
        };
        let mut connection = within_timeout(PgConnection::connect_with(options)).await?;
        let locked: bool = within_timeout(
            sqlx::query_scalar(TRY_LOCK_SQL)
                .bind(LOCK_NAMESPACE)
                .bind(lock_name)
                .fetch_one(&mut connection),
        )
        .await?;
        if !locked {
            let _ = tokio::time::timeout(LEASE_IO_TIMEOUT, connection.close()).await;
            return Ok(None);
        }
        within_timeout(sqlx::query(KEEPALIVE_SQL).execute(&mut connection)).await?;
        Ok(Some(Lease {
            connection: Some(connection),
        }))
    }

    /// Waits until this instance is the active one, trying every `retry`. `None` if `shutdown` came first.
    pub async fn acquire(
        &self,
        retry: Duration,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<Lease> {
        let mut logged_standby = false;
        loop {
            match self.try_acquire().await {
                Ok(Some(lease)) => {
                    if let Self::Postgres { lock_name, .. } = self {
                        tracing::info!(lock = %lock_name, "took the leader lock; this instance is active");
                    }
                    return Some(lease);
                }
                Ok(None) if !logged_standby => {
                    tracing::info!(lock = ?self.lock_name(), "another instance holds the leader lock; standing by");
                    logged_standby = true;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(lock = ?self.lock_name(), error = %e, "cannot reach Postgres for the leader lock")
                }
            }
            tokio::select! {
                () = &mut *shutdown => return None,
                () = tokio::time::sleep(retry) => {}
            }
        }
    }

    fn lock_name(&self) -> Option<&str> {
        match self {
            Self::Single => None,
            Self::Postgres { lock_name, .. } => Some(lock_name),
        }
    }
}

/// Proof of being the active instance; [`Lease::release`] (or dropping it, which closes the connection) gives it up.
pub struct Lease {
    connection: Option<PgConnection>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("postgres", &self.connection.is_some())
            .finish()
    }
}

impl Lease {
    /// Fails if the lease is (or may be) lost: the lock's session does not answer.
    ///
    /// # Errors
    /// [`LeaseError::Lock`] or [`LeaseError::TimedOut`].
    pub async fn confirm(&mut self) -> Result<(), LeaseError> {
        match &mut self.connection {
            None => Ok(()),
            Some(connection) => within_timeout(connection.ping()).await,
        }
    }

    /// [`Lease::confirm`] as a yes/no, logging why not.
    pub async fn still_held(&mut self) -> bool {
        match self.confirm().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "leader lock lost; stepping down");
                false
            }
        }
    }

    /// The checkpoint `name`, read under the lease (Postgres: through the lock's connection; memory: from `local`).
    ///
    /// # Errors
    /// The read failed (for Postgres, the lease may be lost).
    pub async fn load_checkpoint(
        &mut self,
        name: &str,
        local: &dyn CheckpointStore,
    ) -> Result<Option<LogPosition>, LeaseError> {
        match &mut self.connection {
            None => local.load(name).await.map_err(LeaseError::Checkpoint),
            Some(connection) => tokio::time::timeout(
                LEASE_IO_TIMEOUT,
                PgCheckpointStore::load_in(connection, name),
            )
            .await
            .map_err(|_| LeaseError::TimedOut)?
            .map_err(LeaseError::Checkpoint),
        }
    }

    /// Saves the checkpoint `name` under the lease: through the lock's connection, so it fails — saving nothing — once
    /// the lock is gone (memory: into `local`).
    ///
    /// # Errors
    /// The save failed; for Postgres the lease must be presumed lost.
    pub async fn save_checkpoint(
        &mut self,
        name: &str,
        position: LogPosition,
        local: &dyn CheckpointStore,
    ) -> Result<(), LeaseError> {
        match &mut self.connection {
            None => local
                .save(name, position)
                .await
                .map_err(LeaseError::Checkpoint),
            Some(connection) => tokio::time::timeout(
                LEASE_IO_TIMEOUT,
                PgCheckpointStore::save_in(connection, name, position),
            )
            .await
            .map_err(|_| LeaseError::TimedOut)?
            .map_err(LeaseError::Checkpoint),
        }
    }

    /// Gives the lease up now (by ending the lock's session).
    pub async fn release(self) {
        if let Some(connection) = self.connection {
            // Closing a dead connection may hang; dropping it closes the socket, which ends the session too.
            let _ = tokio::time::timeout(LEASE_IO_TIMEOUT, connection.close()).await;
        }
    }
}

/// One round trip on the lock's connection, bounded by [`LEASE_IO_TIMEOUT`].
async fn within_timeout<T>(
    round_trip: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, LeaseError> {
    tokio::time::timeout(LEASE_IO_TIMEOUT, round_trip)
        .await
        .map_err(|_| LeaseError::TimedOut)?
        .map_err(LeaseError::Lock)
}
