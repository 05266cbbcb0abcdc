//! `GET /api/v1/backtests/stream`: server-sent events for the caller's backtests (every backtest for an admin;
//! specs/03 §4). One message per change, `event: backtest`, `data: Backtest` without its result (the listing's
//! shape, with `attempts` and `progress`): when one of its events is committed (requested, started, completed,
//! failed, cancelled: `id:` is that event's id) and, while it is unfinished, when its progress moved (read from the
//! runner's record once a second, [`PROGRESS_EVERY`]; no `id:`). Each message is the whole state of that backtest,
//! so a client that reconnects loses nothing: the stream starts with the state of every unfinished backtest the
//! caller may see (Last-Event-ID is not needed and ignored). `: keep-alive` comments as on the agent stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use strom_commands::log::LoggedEvent;
use strom_domain::BacktestState;
use strom_projections::backtests::BacktestProgress;
use tokio::sync::{broadcast, mpsc};

use super::backtests::{view, visible, BacktestView};
use super::stream::{SSE_KEEP_ALIVE, SSE_STREAM_BUFFER};
use crate::auth::{Caller, Viewer};
use crate::live::StreamSlot;
use crate::problem::ApiError;
use crate::reads::query_error;
use crate::state::AppState;

/// How often the progress of the unfinished backtests is read: as often as the runner writes it.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Most unfinished backtests of the whole system looked at when a stream opens (the runner's queue, oldest first);
/// the caller's among them are followed from the start, and any other from its next event.
const MAX_UNFINISHED_AT_OPEN: usize = 1_000;

/// # Errors
/// 401/403; 429 when the caller has too many streams open; 503 when the backtests cannot be read.
#[tracing::instrument(skip_all)]
pub async fn stream_backtests(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
) -> Result<impl IntoResponse, ApiError> {
    let slot = state.live.open_stream(&caller.sub)?;
    // Subscribe before reading: every event committed after the unfinished ones are listed reaches the stream.
    let events = state.live.subscribe();
    let followed = state
        .backtests
        .unfinished_backtests(MAX_UNFINISHED_AT_OPEN)
        .await
        .map_err(query_error)?
        .into_iter()
        .filter(|row| visible(&caller, &row.owner))
        .map(|row| row.backtest_id)
        .collect();
    let (tx, rx) = mpsc::channel(SSE_STREAM_BUFFER);
    tokio::spawn(forward(state, caller, followed, events, tx, slot));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE).text("keep-alive")))
}

/// What a client last got for one backtest: a message is sent only when this changes.
type Sent = (BacktestState, Option<BacktestProgress>);

/// Sends the state of the followed backtests once a second (when it changed) and of any visible backtest one of
/// whose events is committed, until the client goes away, falls behind, or the server stops.
async fn forward(
    state: AppState,
    caller: Caller,
    followed: Vec<String>,
    mut events: broadcast::Receiver<Arc<LoggedEvent>>,
    tx: mpsc::Sender<Event>,
    _slot: StreamSlot,
) {
    let mut sent: HashMap<String, Option<Sent>> =
        followed.into_iter().map(|id| (id, None)).collect();
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let changed: Vec<(String, Option<String>)> = tokio::select! {
            () = state.stop.cancelled() => return,
            () = tx.closed() => return,
            // The first tick is at once: the stream starts with the state of every followed backtest.
            _ = ticks.tick() => sent.keys().map(|id| (id.clone(), None)).collect(),
            received = events.recv() => match received {
                Ok(event) if event.aggregate_type() == "Backtest" => {
                    vec![(event.aggregate_id.clone(), Some(event.event_id.hyphenated().to_string()))]
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "backtests SSE stream fell behind the live feed; disconnecting it");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        for (id, event_id) in changed {
            let current = match view(&state, &id).await {
                Ok(Some(current)) if visible(&caller, &current.row.owner) => current,
                // Another user's, or not readable yet: nothing to say about it.
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(backtest_id = id, error = %error, "backtests SSE stream cannot read a backtest");
                    continue;
                }
            };
            let now: Sent = (current.row.status, current.progress);
            if event_id.is_none() && sent.get(&id) == Some(&Some(now)) {
                continue;
            }
            if now.0.is_finished() {
                sent.remove(&id);
            } else {
                sent.insert(id.clone(), Some(now));
            }
            let Some(message) = message(current, event_id) else {
                continue;
            };
            if tx.try_send(message).is_err() {
                tracing::info!("backtests SSE client is not reading; disconnecting it");
                return;
            }
        }
    }
}

/// `event: backtest`, `data:` the backtest without its result, `id:` the event that changed it (if one did).
fn message(mut current: BacktestView, event_id: Option<String>) -> Option<Event> {
    current.result = None;
    let event = Event::default().event("backtest").json_data(current).ok()?;
    Some(match event_id {
        Some(id) => event.id(id),
        None => event,
    })
}
