//! `GET /api/v1/agents/{id}/stream`: server-sent events for one agent (specs/03 §4). Each committed event of the
//! agent (and of its orders) is sent as `event: <event_type>`, `id: <event_id>`, `data: AgentStreamMessage` —
//! the event's envelope plus the agent's status and `next_tick_at` after it, so a dashboard can run its countdown
//! without refetching. `: keep-alive` comments every [`SSE_KEEP_ALIVE`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use strom_commands::log::{EventEnvelope, LoggedEvent};
use strom_domain::time::rfc3339_millis;
use strom_domain::AgentState;
use strom_projections::fold::{apply_event, EventAt};
use strom_projections::trading::{fold_trading, Traded};
use strom_projections::{AgentRow, AgentView, Book, PnlPointView, PositionView};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::auth::Viewer;
use crate::live::StreamSlot;
use crate::problem::ApiError;
use crate::reads::query_error;
use crate::routes::agents::{agent_id, projected_visible};
use crate::state::AppState;

/// Comment sent on an idle stream so proxies keep it open and clients notice a dead one (specs/03 §4).
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Messages buffered per stream (specs/03 §4). A client that lets this many pile up is not reading; it is
/// disconnected (it reconnects and refetches) instead of making the server hold its backlog.
pub const SSE_STREAM_BUFFER: usize = 256;

/// `data` of every stream message: the event's envelope, the agent's status and countdown after it, its position
/// after it, and the PnL point a run added.
#[derive(Debug, Serialize)]
struct AgentStreamMessage {
    envelope: EventEnvelope,
    status: AgentState,
    #[serde(with = "rfc3339_millis::option")]
    next_tick_at: Option<DateTime<Utc>>,
    position: PositionView,
    pnl_point: Option<PnlPointView>,
}

/// Whether `event` belongs on the stream of `agent_id`: the agent's own events, its orders and fills included.
fn concerns(agent_id: &str, event: &LoggedEvent) -> bool {
    event.aggregate_type() == "Agent" && event.aggregate_id == agent_id
}

/// The message for `event`, with the agent as `row` and `book` hold it after the event (the read model's own folds
/// keep them current, so the stream shows what GET will).
fn message(
    event: &LoggedEvent,
    row: &AgentRow,
    book: &Book,
    pnl_point: Option<PnlPointView>,
    now: DateTime<Utc>,
) -> Option<Event> {
    let data = AgentStreamMessage {
        envelope: event.envelope(),
        status: row.status,
        next_tick_at: AgentView::from(row).next_tick_after(now),
        position: PositionView::from(&book.position),
        pnl_point,
    };
    Event::default()
        .event(event.event_type())
        .id(event.event_id.hyphenated().to_string())
        .json_data(data)
        .ok()
}

/// # Errors
/// 401/403; 404 for an unknown agent or another user's; 429 when the caller has too many streams open.
#[tracing::instrument(skip(state, caller))]
pub async fn stream_agent(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = agent_id(&id)?;
    let row = projected_visible(&state, &caller, &id).await?;
    let book = state
        .reads
        .queries()
        .get_book(&id)
        .await
        .map_err(query_error)?
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "agent {id} exists but the read model has not caught up with it yet; retry"
            ))
        })?;
    let slot = state.live.open_stream(&caller.sub)?;
    // Subscribe before answering: every event committed after the client sees the response reaches it.
    let events = state.live.subscribe();
    let (tx, rx) = mpsc::channel(SSE_STREAM_BUFFER);
    let clock = state.clock.clone();
    tokio::spawn(forward(
        id,
        (row, book),
        events,
        tx,
        slot,
        state.stop.clone(),
        move || clock(),
    ));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE).text("keep-alive")))
}

/// Copies the agent's events from the broadcast into the stream's buffer until the client goes away, falls behind,
/// or the server stops. Holding `slot` keeps the stream counted against the user's limit.
async fn forward(
    agent_id: String,
    (mut row, book): (AgentRow, Book),
    mut events: broadcast::Receiver<Arc<LoggedEvent>>,
    tx: mpsc::Sender<Event>,
    _slot: StreamSlot,
    stop: CancellationToken,
    now: impl Fn() -> DateTime<Utc>,
) {
    let mut books = std::collections::BTreeMap::from([(agent_id.clone(), book)]);
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            () = tx.closed() => return,
            received = events.recv() => match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(agent_id, missed, "SSE stream fell behind the live feed; disconnecting it");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if !concerns(&agent_id, &event) {
            continue;
        }
        let mut pnl_point = None;
        if let Some(agent_event) = event.event.as_agent() {
            let at = EventAt {
                aggregate_id: &event.aggregate_id,
                sequence: event.sequence,
                global_position: event.position.global_position,
            };
            let traded = apply_event(&mut row, at, agent_event)
                .and_then(|_| fold_trading(&mut books, &event));
            match traded {
                Ok(Traded::Pnl(mark)) => {
                    pnl_point = books
                        .get(&agent_id)
                        .map(|book| PnlPointView::from(&book.position.pnl_point(mark)));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(agent_id, error = %e, "SSE stream cannot follow the agent; disconnecting it");
                    return;
                }
            }
        }
        let Some(book) = books.get(&agent_id) else {
            return;
        };
        let Some(message) = message(&event, &row, book, pnl_point, now()) else {
            continue;
        };
        if tx.try_send(message).is_err() {
            tracing::info!(agent_id, "SSE client is not reading; disconnecting it");
            return;
        }
    }
}
