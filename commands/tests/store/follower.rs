//! The one log follower: a page its handler fails is read again, never skipped; an event that does not decode stops
//! it at that event with an error naming the event, however often it tries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use strom_commands::log::{
    EventEnvelope, FollowError, Follower, FollowerConfig, LogPosition, PageHandler, StoreError,
};

use crate::support::{
    agent_id, insert_undecodable_created, read_exactly, Backend, Logged, CATCH_UP_DEADLINE,
};

/// A follower config with `page_size`-event pages; the intervals only matter to `run`.
fn config(page_size: usize) -> FollowerConfig {
    FollowerConfig {
        page_size,
        idle_poll: Duration::from_millis(10),
        error_backoff_max: Duration::from_millis(400),
        lag_gauge: None,
    }
}

/// Takes pages and remembers every event it took; refuses (as retryable) the calls numbered in `refuse`
/// (1-based). Signals `done` once it has taken `until` events.
struct Recorder {
    refuse: Vec<usize>,
    calls: usize,
    /// The first position of each page offered, refused or not.
    offered: Vec<LogPosition>,
    taken: Vec<Logged>,
    until: usize,
    done: Arc<tokio::sync::Notify>,
}

impl Recorder {
    fn new(refuse: &[usize], until: usize) -> Self {
        Self {
            refuse: refuse.to_vec(),
            calls: 0,
            offered: Vec::new(),
            taken: Vec::new(),
            until,
            done: Arc::default(),
        }
    }
}

#[async_trait]
impl PageHandler for Recorder {
    async fn handle(&mut self, page: &[Logged]) -> Result<LogPosition, FollowError> {
        self.calls += 1;
        self.offered.push(page[0].position);
        if self.refuse.contains(&self.calls) {
            return Err(FollowError::Retry(
                "injected: the page could not be applied".into(),
            ));
        }
        self.taken.extend(page.iter().cloned());
        if self.taken.len() >= self.until {
            self.done.notify_one();
        }
        Ok(page.last().expect("pages are never empty").position)
    }
}

/// 8 events of two agents in the log, and the log read in one go.
async fn eight_events(backend: &Backend) -> Vec<Logged> {
    for i in 0..8 {
        backend.step(["a", "b"][i % 2]).await;
    }
    read_exactly(backend.log().as_ref(), LogPosition::START, 8).await
}

/// The two refused calls are pages 1 and 3 of 3-event pages; each is offered again from the same position.
fn assert_refused_pages_came_again(recorder: &Recorder, everything: &[Logged]) {
    assert_eq!(
        recorder.taken, everything,
        "each event taken once, in log order"
    );
    let p = |i: usize| everything[i].position;
    assert_eq!(recorder.offered, [p(0), p(0), p(3), p(3), p(6)]);
}

pub async fn a_page_that_fails_is_read_again_never_skipped(backend: &Backend) {
    let everything = eight_events(backend).await;
    let mut recorder = Recorder::new(&[1, 3], everything.len());
    let mut follower = Follower::new("test", backend.log(), LogPosition::START, None, config(3));
    let started = Instant::now();
    while recorder.taken.len() < everything.len() {
        let before = follower.position();
        match follower.step(&mut recorder, 1).await {
            // Caught up for now: another session's open transaction holds the watermark back.
            Ok(0) => tokio::time::sleep(Duration::from_millis(10)).await,
            Ok(_) => {}
            Err(FollowError::Retry(e)) => {
                assert!(e.to_string().contains("injected"), "{e}");
                assert_eq!(follower.position(), before, "a failed page moves nothing");
            }
            Err(FollowError::Stop(e)) => panic!("stopped: {e}"),
        }
        assert!(started.elapsed() < CATCH_UP_DEADLINE, "stuck");
    }
    assert_refused_pages_came_again(&recorder, &everything);
    assert_eq!(follower.position(), everything[7].position);
}

#[tokio::test(start_paused = true)]
async fn a_running_follower_backs_off_and_reads_a_failed_page_again() {
    let backend = Backend::memory();
    let everything = eight_events(&backend).await;
    let mut recorder = Recorder::new(&[1, 3], everything.len());
    let done = Arc::clone(&recorder.done);
    let mut follower = Follower::new("test", backend.log(), LogPosition::START, None, config(3));
    follower
        .run(&mut recorder, async move { done.notified().await })
        .await
        .expect("the follower runs until stopped");
    assert_refused_pages_came_again(&recorder, &everything);
}

#[tokio::test]
async fn an_undecodable_event_stops_the_follower_at_that_event_with_an_error_naming_it() {
    let backend = Backend::postgres().await;
    backend.steps("before", 2).await;
    let bad = agent_id("bad");
    insert_undecodable_created(backend.pool(), "bad").await;
    backend.step("after").await;
    // The stored form reads (the relay and exports carry it as stored); the typed form does not.
    let stored: Vec<EventEnvelope> =
        read_exactly(backend.log().as_ref(), LogPosition::START, 4).await;
    let names_it = |error: &dyn std::fmt::Display| {
        let text = error.to_string();
        assert!(text.contains(&format!("Agent/{bad} sequence 1")), "{text}");
        assert!(text.contains("malformed AgentCreated payload"), "{text}");
    };
    names_it(&stored[2].decode().unwrap_err());
    let read = backend.log().read_after(LogPosition::START, 10).await;
    match read {
        Err(e @ StoreError::Undecodable { .. }) => names_it(&e),
        other => panic!("expected the undecodable event, got {other:?}"),
    }

    let mut recorder = Recorder::new(&[], usize::MAX);
    let mut follower = Follower::new("test", backend.log(), LogPosition::START, None, config(1));
    for attempt in 1..=3 {
        let error = follower
            .step(&mut recorder, usize::MAX)
            .await
            .expect_err("the follower cannot pass the event");
        names_it(&error);
        assert_eq!(
            follower.position(),
            stored[1].position,
            "attempt {attempt}: stopped right before it"
        );
    }
    assert_eq!(
        recorder
            .taken
            .iter()
            .map(|e| e.aggregate_id.clone())
            .collect::<Vec<_>>(),
        [agent_id("before"), agent_id("before")],
        "the event after it was never handed out"
    );
    assert_eq!(
        backend
            .log()
            .backlog(follower.position(), 10)
            .await
            .unwrap(),
        2,
        "it and the event after it are still ahead"
    );
}
