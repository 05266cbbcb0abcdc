//! `GET /api/v1/agents/{id}/stream`: server-sent events for one agent (specs/03 §4). Each committed event of the
//! agent (and of its orders) is sent as `event: <event_type>`, `id: <sequence>` (its place in the agent's stream),
//! `data: AgentStreamMessage` — the event's envelope plus the agent's status and `next_tick_at` after it, so a
//! dashboard can run its countdown without refetching. `: keep-alive` comments every [`SSE_KEEP_ALIVE`].
//!
//! A client that reconnects with `Last-Event-ID: <sequence>` first gets every event of the agent after it, each with
//! the state after that event, then the live ones: nothing is lost across a reconnection ([`catch_up`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use strom_commands::log::{EventEnvelope, LoggedEvent, MAX_LOG_PAGE};
use strom_domain::time::rfc3339_millis;
use strom_domain::{Agent, AgentState, Decider};
use strom_projections::fold::{apply_event, created_row, EventAt};
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
/// Most events a reconnecting client is sent before the live ones (specs/03 §4). A client further behind gets the
/// live events only and refetches, as it would without `Last-Event-ID`.
pub const SSE_RESUME_MAX_EVENTS: usize = 10_000;
/// Longest agent history folded again to give replayed events the state of their own moment (when the client's
/// `Last-Event-ID` is older than the read model, as it usually is). A longer one resumes with the live events only.
pub const SSE_RESUME_MAX_FOLD: u64 = 50_000;

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
        .id(event.sequence.to_string())
        .json_data(data)
        .ok()
}

/// # Errors
/// 401/403; 404 for an unknown agent or another user's; 429 when the caller has too many streams open; 503 when
/// the store cannot be read.
#[tracing::instrument(skip(state, caller, headers))]
pub async fn stream_agent(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
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
    // A sequence of this agent's stream (what `id:` carries); anything else is ignored, as by a fresh client.
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let slot = state.live.open_stream(&caller.sub)?;
    // Subscribe before reading the store: every event committed after the read reaches the stream.
    let events = state.live.subscribe();
    let clock = state.clock.clone();
    let caught_up = catch_up(&state, &id, (row, book), last_seen, clock()).await?;
    let (tx, rx) = mpsc::channel(SSE_STREAM_BUFFER);
    tokio::spawn(forward(
        id,
        caught_up,
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

/// The agent's state and the messages to send before the live ones.
struct CaughtUp {
    row: AgentRow,
    books: std::collections::BTreeMap<String, Book>,
    /// For a resuming client: the events after its `Last-Event-ID`, oldest first.
    replay: Vec<Event>,
}

/// Brings the read model's `row` and `book` up to the agent's last committed event (the projection may lag), and,
/// for a client resuming after sequence `last_seen`, makes a message of each later event with the state after it.
/// When `last_seen` is older than the read model, the agent's stream is folded again from its start (the same
/// folds as the projector), so each replayed message carries the state of its own moment. Past
/// [`SSE_RESUME_MAX_EVENTS`] missed events, or [`SSE_RESUME_MAX_FOLD`] events to fold again, there is no replay:
/// the client refetches, as after any reconnection.
async fn catch_up(
    state: &AppState,
    agent_id: &str,
    (projected, book): (AgentRow, Book),
    last_seen: Option<u64>,
    now: DateTime<Utc>,
) -> Result<CaughtUp, ApiError> {
    let projected_books = std::collections::BTreeMap::from([(agent_id.to_owned(), book)]);
    let last_seen = last_seen.filter(|seen| {
        let resumable = *seen >= projected.version
            || (projected.version <= SSE_RESUME_MAX_FOLD
                && projected.version - seen <= SSE_RESUME_MAX_EVENTS as u64);
        if !resumable {
            tracing::info!(
                agent_id,
                seen,
                "SSE client too far behind to resume; live events only"
            );
        }
        resumable
    });
    let from_start = last_seen.is_some_and(|seen| seen < projected.version);
    let (mut row, mut books, mut after) = if from_start {
        (None, std::collections::BTreeMap::new(), 0)
    } else {
        let version = projected.version;
        (Some(projected.clone()), projected_books.clone(), version)
    };
    let mut replay = Vec::new();
    let mut resume = last_seen;
    loop {
        let page = state
            .commands
            .store()
            .stream_envelopes_after(<Agent as Decider>::TYPE, agent_id, after, MAX_LOG_PAGE)
            .await
            .map_err(|e| ApiError::Unavailable(format!("event store: {e}")))?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for envelope in &page {
            let event = envelope
                .decode()
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
            let Some(agent_event) = event.event.as_agent() else {
                continue;
            };
            let at = EventAt {
                aggregate_id: &event.aggregate_id,
                sequence: event.sequence,
                global_position: event.position.global_position,
            };
            let folded = match row.as_mut() {
                Some(row) => apply_event(row, at, agent_event).map(|_| ()),
                None => created_row(at, agent_event).map(|created| row = Some(created)),
            };
            let traded = folded
                .and_then(|()| fold_trading(&mut books, &event))
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
            let Some(seen) = resume.filter(|seen| event.sequence > *seen) else {
                continue;
            };
            if replay.len() >= SSE_RESUME_MAX_EVENTS {
                // Still folded to the end (the live events follow on from there), but nothing replayed.
                tracing::info!(
                    agent_id,
                    seen,
                    "SSE client too far behind to resume; live events only"
                );
                replay.clear();
                resume = None;
                continue;
            }
            let (Some(row), Some(book)) = (row.as_ref(), books.get(agent_id)) else {
                continue;
            };
            let pnl_point = match traded {
                Traded::Pnl(mark) => Some(PnlPointView::from(&book.position.pnl_point(mark))),
                _ => None,
            };
            replay.extend(message(&event, row, book, pnl_point, now));
        }
    }
    match row {
        Some(row) if books.contains_key(agent_id) => Ok(CaughtUp { row, books, replay }),
        // Nothing readable (a stream the store no longer has?): the read model as it is, no replay.
        _ => Ok(CaughtUp {
            row: projected,
            books: projected_books,
            replay: Vec::new(),
        }),
    }
}

/// Copies the agent's events from the broadcast into the stream's buffer until the client goes away, falls behind,
/// or the server stops. Holding `slot` keeps the stream counted against the user's limit.
async fn forward(
    agent_id: String,
    CaughtUp {
        mut row,
        mut books,
        replay,
    }: CaughtUp,
    mut events: broadcast::Receiver<Arc<LoggedEvent>>,
    tx: mpsc::Sender<Event>,
    _slot: StreamSlot,
    stop: CancellationToken,
    now: impl Fn() -> DateTime<Utc>,
) {
    for message in replay {
        // Waits for the client to read (the replay may be longer than the buffer); ends if it goes away.
        if tx.send(message).await.is_err() {
            return;
        }
    }
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
        // Not again what the catch-up already folded (and, on a resume, sent).
        if !concerns(&agent_id, &event) || event.sequence <= row.version {
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
