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
    let wanted = format!("event: {event_type}\n");
    let read = async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if frame.contains(&wanted) || frame.starts_with(&wanted[..wanted.len() - 1]) {
                    let data: String = frame
                        .lines()
                        .filter_map(|l| {
                            l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    return serde_json::from_str(&data).unwrap();
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream stays open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(EVENT_DEADLINE, read)
        .await
        .unwrap_or_else(|_| {
            panic!("no {event_type} event within {EVENT_DEADLINE:?}; got so far: {buffer}")
        })
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
