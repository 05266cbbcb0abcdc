//! The simulator's publishing role (`strom sim`, and `strom serve` in embedded mode): at every whole multiple of
//! the interval, each symbol's price goes on `<prefix>.md.<symbol>` with message id `<symbol>/<t>` and into the
//! price board. Prices come from the pure `strom_sim::SimFeed`; this module only owns the clock and the bus.
//! A restarted publisher re-sending an instant is deduplicated by the message id.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use strom_sim::{PriceObserved, SimFeed};

use super::{Bus, BusError, Headers, PriceBoard};

/// What one instant's publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickOutcome {
    /// Observations stored for the first time.
    pub published: usize,
    /// Observations the bus already had (a restarted publisher repeating an instant).
    pub duplicates: usize,
}

/// Publishes a [`SimFeed`] on a bus.
pub struct SimPublisher {
    bus: Arc<dyn Bus>,
    board: Arc<dyn PriceBoard>,
    feed: SimFeed,
}

impl SimPublisher {
    /// # Errors
    /// The bus has no price board (run `ensure_topology` first).
    pub async fn new(bus: Arc<dyn Bus>, feed: SimFeed) -> Result<Self, BusError> {
        let board = bus.price_board().await?;
        Ok(Self { bus, board, feed })
    }

    pub fn feed(&self) -> &SimFeed {
        &self.feed
    }

    /// Publishes every symbol's observation at `at` and records it as the latest price.
    ///
    /// # Errors
    /// A symbol is not a valid subject token or KV key, or the bus fails; symbols before the failing one are
    /// already published (publishing `at` again is safe: duplicates are dropped).
    pub async fn publish_at(&self, at: DateTime<Utc>) -> Result<TickOutcome, BusError> {
        let mut outcome = TickOutcome::default();
        for observation in self.feed.observations_at(at) {
            let duplicate = self.publish_one(&observation).await?;
            if duplicate {
                outcome.duplicates += 1;
            } else {
                outcome.published += 1;
            }
            self.board.put(&observation).await?;
        }
        Ok(outcome)
    }

    /// Returns whether the bus already had it.
    async fn publish_one(&self, observation: &PriceObserved) -> Result<bool, BusError> {
        let subject = self.bus.subjects().market_data(&observation.symbol)?;
        let payload = serde_json::to_vec(observation).map_err(|source| BusError::BadPrice {
            symbol: observation.symbol.clone(),
            source,
        })?;
        let ack = self
            .bus
            .publish(
                &subject,
                &SimFeed::msg_id(observation),
                &Headers::new(),
                payload,
            )
            .await?;
        Ok(ack.duplicate)
    }

    /// Publishes at every whole interval of the wall clock until `shutdown` resolves. A failed instant is logged and
    /// skipped (the next one is tried on time); instants missed while the process was stalled are skipped too, as
    /// nobody needs stale observations and any of them can be recomputed from the seed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let interval = i64::from(self.feed.interval_s());
        let mut last: Option<i64> = None;
        loop {
            let now_ms = unix_ms_now();
            let mut t = self
                .feed
                .next_tick_at_or_after(now_ms.div_euclid(1000) + i64::from(now_ms % 1000 != 0));
            if let Some(last) = last {
                t = t.max(last + interval);
                if t > last + interval {
                    tracing::warn!(
                        skipped = (t - last) / interval - 1,
                        "sim publisher fell behind; skipping missed instants"
                    );
                }
            }
            let wait = Duration::from_millis(u64::try_from(t * 1000 - now_ms).unwrap_or(0));
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
            last = Some(t);
            let Some(at) = DateTime::from_timestamp(t, 0) else {
                tracing::error!(t, "clock out of range; sim publisher stops");
                return;
            };
            match self.publish_at(at).await {
                Ok(outcome) => {
                    metrics::counter!("strom_sim_prices_published_total")
                        .increment(outcome.published as u64);
                    tracing::debug!(t, ?outcome, "sim prices published");
                }
                Err(err) => {
                    metrics::counter!("strom_sim_publish_failures_total").increment(1);
                    tracing::warn!(t, error = %err, "sim prices not published");
                }
            }
        }
    }
}

/// Wall-clock Unix time in milliseconds (this role is an edge of the system; the prices themselves never see it).
fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
