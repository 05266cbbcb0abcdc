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
use serde_json::Value;
use strom_commands::store::LoggedEvent;
use strom_domain::{AgentEvent, AgentState};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::auth::Viewer;
use crate::live::StreamSlot;
use crate::problem::ApiError;
use crate::routes::agents::{agent_id, projected_visible};
use crate::startup::AppState;
use crate::views::{countdown, millis, millis_opt};
use strom_projections::AgentView;

/// Comment sent on an idle stream so proxies keep it open and clients notice a dead one (specs/03 §4).
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Messages buffered per stream (specs/03 §4). A client that lets this many pile up is not reading; it is
/// disconnected (it reconnects and refetches) instead of making the server hold its backlog.
pub const SSE_STREAM_BUFFER: usize = 256;

/// The EventEnvelope (specs/04 §4.1) of a committed event.
#[derive(Debug, Serialize)]
struct Envelope<'a> {
    event_id: String,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: u64,
    event_type: &'a str,
    event_version: &'a str,
    payload: &'a Value,
    metadata: &'a Value,
    #[serde(serialize_with = "millis")]
    recorded_at: DateTime<Utc>,
    hash: &'a str,
}

/// `data` of every stream message.
#[derive(Debug, Serialize)]
struct AgentStreamMessage<'a> {
    envelope: Envelope<'a>,
    status: AgentState,
    #[serde(serialize_with = "millis_opt")]
    next_tick_at: Option<DateTime<Utc>>,
}

/// The agent as the stream last saw it: the read model's view when the stream opened, then kept current from
/// the agent's own events, so each message carries the countdown after its event.
#[derive(Debug, Clone)]
struct Countdown(AgentView);

impl Countdown {
    fn next_tick_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        countdown(&self.0, now)
    }

    fn status(&self) -> AgentState {
        self.0.status
    }

    fn apply(&mut self, event: &AgentEvent) {
        let view = &mut self.0;
        match event {
            AgentEvent::AgentCreated { frequency_s, .. }
            | AgentEvent::AgentConfigUpdated { frequency_s, .. } => view.frequency_s = *frequency_s,
            AgentEvent::AgentStarted {
                started_at,
                frequency_s,
                session,
            } => {
                view.status = AgentState::Running;
                view.started_at = Some(*started_at);
                view.frequency_s = *frequency_s;
                view.session = *session;
            }
            AgentEvent::AgentStopped { .. } => view.status = AgentState::Stopped,
            AgentEvent::AgentArchived { .. } => view.status = AgentState::Archived,
            AgentEvent::AgentRunRecorded { .. } => {}
        }
    }
}

/// Whether `event` belongs on the stream of `agent_id`: its own events, and its orders' (order ids start with
/// the agent id, specs/04 §3.2).
fn concerns(agent_id: &str, event: &LoggedEvent) -> bool {
    match event.aggregate_type.as_str() {
        "Agent" => event.aggregate_id == agent_id,
        "Order" => event
            .aggregate_id
            .strip_prefix(agent_id)
            .is_some_and(|rest| rest.starts_with('-')),
        _ => false,
    }
}

fn message(event: &LoggedEvent, countdown: &Countdown, now: DateTime<Utc>) -> Option<Event> {
    let data = AgentStreamMessage {
        envelope: Envelope {
            event_id: event.event_id.hyphenated().to_string(),
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: &event.event_type,
            event_version: &event.event_version,
            payload: &event.payload,
            metadata: &event.metadata,
            recorded_at: event.recorded_at,
            hash: &event.hash,
        },
        status: countdown.status(),
        next_tick_at: countdown.next_tick_at(now),
    };
    Event::default()
        .event(&event.event_type)
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
    let agent = projected_visible(&state, &caller, &id).await?;
    let slot = state.live.open_stream(&caller.sub)?;
    // Subscribe before answering: every event committed after the client sees the response reaches it.
    let events = state.live.subscribe();
    let start = Countdown(agent);
    let (tx, rx) = mpsc::channel(SSE_STREAM_BUFFER);
    let clock = state.clock.clone();
    tokio::spawn(forward(
        id,
        start,
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
    mut countdown: Countdown,
    mut events: broadcast::Receiver<Arc<LoggedEvent>>,
    tx: mpsc::Sender<Event>,
    _slot: StreamSlot,
    stop: CancellationToken,
    now: impl Fn() -> DateTime<Utc>,
) {
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
        if event.aggregate_type == "Agent" {
            if let Ok(agent_event) = serde_json::from_value::<AgentEvent>(event.payload.clone()) {
                countdown.apply(&agent_event);
            }
        }
        let Some(message) = message(&event, &countdown, now()) else {
            continue;
        };
        if tx.try_send(message).is_err() {
            tracing::info!(agent_id, "SSE client is not reading; disconnecting it");
            return;
        }
    }
}
