//! SSE: an open stream receives the agent's status changes, each with the countdown target.

use std::time::Duration;

use serde_json::Value;
use strom_api::auth::Role;

use crate::agents::create;
use crate::support::{contract, TestApp};

/// How long the test waits for an event that the server sends within milliseconds of the commit.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// Reads SSE frames until one with `event: <event_type>` arrives; returns its data as JSON.
pub(crate) async fn next_event(
    resp: &mut reqwest::Response,
    buffer: &mut String,
    event_type: &str,
) -> Value {
    next_frame(resp, buffer, Some(event_type)).await.2
}

/// The next SSE frame (the next with `event: <event_type>` when given; keep-alive comments are skipped): its event,
/// its id and its data as JSON.
async fn next_frame(
    resp: &mut reqwest::Response,
    buffer: &mut String,
    event_type: Option<&str>,
) -> (String, Option<String>, Value) {
    let read = async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_owned()))
                };
                let Some(event) = field("event:") else {
                    continue;
                };
                if event_type.is_some_and(|wanted| wanted != event) {
                    continue;
                }
                let data = field("data:").unwrap_or_default();
                return (event, field("id:"), serde_json::from_str(&data).unwrap());
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream stays open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(EVENT_DEADLINE, read)
        .await
        .unwrap_or_else(|_| {
            panic!("no {event_type:?} event within {EVENT_DEADLINE:?}; got so far: {buffer}")
        })
}

/// Opens the agent's stream as `token`, resuming after `last_event_id` when given.
async fn open(
    app: &TestApp,
    token: &str,
    id: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    open_sse(
        app,
        token,
        &format!("/api/v1/agents/{id}/stream"),
        last_event_id,
    )
    .await
}

/// Opens the SSE stream at `path` as `token` (with `Last-Event-ID` when given); asserts it is one.
pub(crate) async fn open_sse(
    app: &TestApp,
    token: &str,
    path: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last);
    }
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    resp
}

#[tokio::test]
async fn the_stream_carries_status_changes_with_the_next_tick_time() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let agent = create(&app, &alice, "streamed").await;
    let id = agent["agent_id"].as_str().unwrap();
    app.eventually(&format!("/api/v1/agents/{id}"), &alice, |_| true)
        .await;
    let mut resp = app
        .client
        .get(format!("{}/api/v1/agents/{id}/stream", app.base))
        .bearer_auth(&alice)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();

    let started = app
        .post_json(&format!("/api/v1/agents/{id}/start"), &alice, None)
        .await;
    assert_eq!(started.status, 200);
    let message = next_event(&mut resp, &mut buffer, "AgentStarted").await;
    contract()
        .validate_at("/components/schemas/AgentStreamMessage", &message)
        .unwrap_or_else(|e| panic!("{e}\n{message}"));
    assert_eq!(message["status"], "running");
    assert_eq!(message["envelope"]["aggregate_id"], id);
    assert_eq!(message["envelope"]["metadata"]["actor"], "alice");
    assert_eq!(message["next_tick_at"], started.body["next_tick_at"]);

    app.post_json(&format!("/api/v1/agents/{id}/stop"), &alice, None)
        .await;
    let message = next_event(&mut resp, &mut buffer, "AgentStopped").await;
    assert_eq!(message["status"], "stopped");
    assert_eq!(message["next_tick_at"], Value::Null);
}

#[tokio::test]
async fn a_user_may_hold_a_bounded_number_of_streams() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let agent = create(&app, &alice, "watched").await;
    let id = agent["agent_id"].as_str().unwrap();
    app.eventually(&format!("/api/v1/agents/{id}"), &alice, |_| true)
        .await;
    let url = format!(
        "{}/api/v1/agents/{}/stream",
        app.base,
        agent["agent_id"].as_str().unwrap()
    );
    let mut open = Vec::new();
    for _ in 0..strom_api::live::SSE_MAX_STREAMS_PER_SUB {
        let resp = app
            .client
            .get(&url)
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        open.push(resp);
    }
    let resp = app
        .client
        .get(&url)
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    drop(open);
}

/// A client that reconnects with `Last-Event-ID` gets what it missed first, each event with the agent's state at
/// its own moment, then the live events; one without (or with an id that is not a sequence) gets the live ones.
#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_misses_nothing() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let agent = create(&app, &alice, "resumed").await;
    let id = agent["agent_id"].as_str().unwrap().to_owned();
    app.eventually(&format!("/api/v1/agents/{id}"), &alice, |_| true)
        .await;

    let mut first = open(&app, &alice, &id, None).await;
    let mut buffer = String::new();
    app.post_json(&format!("/api/v1/agents/{id}/start"), &alice, None)
        .await;
    let (_, started_id, started) = next_frame(&mut first, &mut buffer, None).await;
    assert_eq!(started["envelope"]["event_type"], "AgentStarted");
    assert_eq!(
        started_id.as_deref(),
        Some(started["envelope"]["sequence"].to_string().as_str()),
        "the id is the event's sequence in the agent's stream"
    );
    drop(first);

    // While the client is away: stopped, renamed.
    app.post_json(&format!("/api/v1/agents/{id}/stop"), &alice, None)
        .await;
    let renamed = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            &alice,
            Some(serde_json::json!({"name": "renamed"})),
            &[],
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    app.eventually(&format!("/api/v1/agents/{id}"), &alice, |a| {
        a["name"] == "renamed"
    })
    .await;

    let mut resumed = open(&app, &alice, &id, started_id.as_deref()).await;
    let mut buffer = String::new();
    let (event, _, stopped) = next_frame(&mut resumed, &mut buffer, None).await;
    assert_eq!(event, "AgentStopped");
    assert_eq!(stopped["status"], "stopped");
    let (event, _, _) = next_frame(&mut resumed, &mut buffer, None).await;
    assert_eq!(event, "AgentConfigUpdated");
    // Then live.
    app.post_json(&format!("/api/v1/agents/{id}/start"), &alice, None)
        .await;
    let (event, _, live) = next_frame(&mut resumed, &mut buffer, None).await;
    assert_eq!(event, "AgentStarted");
    assert_eq!(live["status"], "running");

    // From the very first event: each replayed message has the state after its own event, not today's.
    let mut from_start = open(&app, &alice, &id, Some("1")).await;
    let mut buffer = String::new();
    let mut replayed = Vec::new();
    for _ in 0..4 {
        let (event, _, message) = next_frame(&mut from_start, &mut buffer, None).await;
        replayed.push((event, message["status"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        replayed,
        [
            ("AgentStarted".to_owned(), "running".to_owned()),
            ("AgentStopped".to_owned(), "stopped".to_owned()),
            ("AgentConfigUpdated".to_owned(), "stopped".to_owned()),
            ("AgentStarted".to_owned(), "running".to_owned()),
        ]
    );

    // An id that is not a sequence resumes nothing: the next message is a live one.
    let mut fresh = open(&app, &alice, &id, Some("not-a-sequence")).await;
    let mut buffer = String::new();
    app.post_json(&format!("/api/v1/agents/{id}/stop"), &alice, None)
        .await;
    let (event, _, _) = next_frame(&mut fresh, &mut buffer, None).await;
    assert_eq!(event, "AgentStopped");
}
