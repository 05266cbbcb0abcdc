//! One active instance per singleton role (specs/01 §2): a Postgres *session* advisory lock
//! `pg_try_advisory_lock(hashtext('strom'), hashtext('<role>:<nats_prefix>'))`, held on a dedicated connection (never a
//! pooled one, which would hand the session — and the lock — to other work). A standby retries every
//! `retry` interval; the holder pings its connection, and steps down as soon as the ping fails, since the server
//! released the lock when the session ended.
//!
//! Between the lock connection dying and the holder's next ping, two instances may both act for up to one ping
//! interval. For the scheduler that is harmless: both publish the same tick message ids and JetStream keeps one.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// First key of every STROM advisory lock: keeps them apart from other applications' locks on the same database.
pub const LOCK_NAMESPACE: &str = "strom";
/// The scheduler's role name in its lock key (the relay uses `relay`, projectors `projector:<name>`).
pub const SCHEDULER_ROLE: &str = "scheduler";
/// How often a standby tries to take the lock (specs/01 §2 `LEADER_RETRY_S`): a failover within seconds, while a
/// standby costs the database one cheap query per interval.
pub const LEADER_RETRY: Duration = Duration::from_secs(5);
/// How often the holder checks that its lock connection is alive. Bounds the overlap after a lost connection (see
/// the module docs) to about this long, at one round trip per second.
pub const LOCK_CHECK: Duration = Duration::from_secs(1);

/// Longest a lock-connection operation (connect + try-lock, ping, close) may take. Locally they take milliseconds; one
/// that hangs means Postgres is unreachable, and the holder must not sit in a hung ping (nor a standby in a hung
/// connect): it gives up and treats the lock as lost (or not taken).
pub const LOCK_IO_TIMEOUT: Duration = Duration::from_secs(5);

const TRY_LOCK_SQL: &str = "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))";

/// The second key of `role`'s lock for the deployment using NATS prefix `prefix`: each prefix (each test, each
/// deployment sharing a database) has its own leader.
pub fn lock_name(role: &str, prefix: &str) -> String {
    format!("{role}:{prefix}")
}

/// How an instance decides whether it is the active one.
#[derive(Debug, Clone)]
pub enum Leadership {
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

impl Leadership {
    /// The advisory lock of `role` for NATS prefix `prefix`, on connections like `options` (a pool's
    /// `connect_options()`).
    pub fn postgres(options: PgConnectOptions, role: &str, prefix: &str) -> Self {
        Self::Postgres {
            options: Box::new(options),
            lock_name: lock_name(role, prefix),
        }
    }

    /// Waits until this instance may act, trying every `retry`. `None` if `shutdown` came first.
    pub(crate) async fn acquire(
        &self,
        retry: Duration,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<LeaderGuard> {
        let (options, lock_name) = match self {
            Self::Single => return Some(LeaderGuard { connection: None }),
            Self::Postgres { options, lock_name } => (options, lock_name),
        };
        let mut logged_standby = false;
        loop {
            match try_lock(options, lock_name).await {
                Ok(Some(connection)) => {
                    tracing::info!(lock = %lock_name, "took the leader lock; this instance is active");
                    return Some(LeaderGuard {
                        connection: Some(connection),
                    });
                }
                Ok(None) if !logged_standby => {
                    tracing::info!(lock = %lock_name, "another instance holds the leader lock; standing by");
                    logged_standby = true;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(lock = %lock_name, error = %e, "cannot reach Postgres for the leader lock")
                }
            }
            tokio::select! {
                () = &mut *shutdown => return None,
                () = tokio::time::sleep(retry) => {}
            }
        }
    }
}

async fn try_lock(
    options: &PgConnectOptions,
    lock_name: &str,
) -> Result<Option<PgConnection>, sqlx::Error> {
    match tokio::time::timeout(LOCK_IO_TIMEOUT, try_lock_once(options, lock_name)).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "taking the leader lock timed out",
        ))),
    }
}

async fn try_lock_once(
    options: &PgConnectOptions,
    lock_name: &str,
) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut connection = PgConnection::connect_with(options).await?;
    let locked: bool = sqlx::query_scalar(TRY_LOCK_SQL)
        .bind(LOCK_NAMESPACE)
        .bind(lock_name)
        .fetch_one(&mut connection)
        .await?;
    if locked {
        Ok(Some(connection))
    } else {
        connection.close().await.ok();
        Ok(None)
    }
}

/// Proof of being the active instance; dropping it (closing the connection) releases the lock.
pub(crate) struct LeaderGuard {
    connection: Option<PgConnection>,
}

impl LeaderGuard {
    /// Whether the lock is still held: the session is alive (a session lock lasts as long as its session).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(connection) => {
                match tokio::time::timeout(LOCK_IO_TIMEOUT, connection.ping()).await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "leader lock connection lost; stepping down");
                        false
                    }
                    Err(_) => {
                        tracing::warn!("leader lock connection does not answer; stepping down");
                        false
                    }
                }
            }
        }
    }

    /// Releases the lock now (by ending the session).
    pub async fn release(self) {
        if let Some(connection) = self.connection {
            // Closing a dead connection may hang; dropping it closes the socket, which ends the session too.
            let _ = tokio::time::timeout(LOCK_IO_TIMEOUT, connection.close()).await;
        }
    }
}
