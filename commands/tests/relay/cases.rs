//! Relay behaviour every backend must show (Postgres + JetStream and memory store + memory bus alike).

use std::sync::Arc;
use std::time::Duration;

use strom_commands::relay::{RelayConfig, RelayState};

use crate::faults::FlakyBus;
use crate::{
    assert_published_exactly_once, fast_config, stream_messages, wait_until, Running, Stack,
};

pub async fn every_committed_event_is_published_once_in_aggregate_order_and_checkpointed(
    stack: &Stack,
) {
    stack.append_round_robin(&["a", "b", "c"], 10).await;
    let running = Running::spawn(stack.relay(fast_config()));
    let logged = assert_published_exactly_once(stack, 30).await;

    let last = logged.last().unwrap().position;
    wait_until("the checkpoint reaches the last event", || async {
        stack.checkpoint().await == Some(last)
    })
    .await;
    let stats = running.relay.stats();
    assert_eq!(stats.published, 30);
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.failures, 0);
    running.stop().await;
}

pub async fn a_relay_dying_between_publish_and_checkpoint_is_replaced_without_loss_or_duplicates(
    stack: &Stack,
) {
    stack.append_round_robin(&["a", "b", "c"], 8).await;
    let config = fast_config();
    let page = config.page_size;

    // The first relay publishes one page and commits it, publishes the next and dies before committing.
    let doomed = stack.relay(config.clone());
    let mut active = doomed.try_activate().await.unwrap().expect("no one else");
    let first = active.handle_next_page().await.unwrap().expect("a page");
    assert_eq!(first.events, page);
    active.commit_checkpoint(first).await.unwrap();
    let second = active.handle_next_page().await.unwrap().expect("a page");
    assert_eq!(second.events, page);
    assert_eq!(doomed.stats().duplicates, 0);
    drop(active);
    drop(doomed);
    assert_eq!(stream_messages(stack.bus.as_ref()).await, 2 * page as u64);
    assert_eq!(stack.checkpoint().await, Some(first.last));

    let successor = Running::spawn(stack.relay(config));
    assert_published_exactly_once(stack, 24).await;
    let stats = successor.relay.stats();
    assert_eq!(
        stats.duplicates, page as u64,
        "exactly the uncommitted page is published again, and dropped by the stream"
    );
    assert_eq!(stats.published, 24 - 2 * page as u64);
    successor.stop().await;
}

pub async fn failed_publishes_and_lost_acks_are_retried_without_loss_or_duplicates(stack: &Stack) {
    stack.append_round_robin(&["a", "b", "c", "d"], 15).await;
    // Publish calls (counted across retries) that never reach the stream, and calls that are stored but whose
    // ack is lost. At least 8 calls apart, so no two fall into one attempt at a page (at most 7 calls).
    let flaky = Arc::new(FlakyBus::new(
        Arc::clone(&stack.bus),
        &[3, 30, 47],
        &[12, 21, 38],
    ));
    let running = Running::spawn(stack.relay_over(flaky.clone(), fast_config()));
    assert_published_exactly_once(stack, 60).await;

    let stats = running.relay.stats();
    assert_eq!(flaky.faults(), 6, "every planned fault happened");
    assert!(stats.failures >= 6, "each fault failed a step: {stats:?}");
    assert!(
        stats.duplicates >= 3,
        "a stored message whose ack was lost is published again: {stats:?}"
    );
    running.stop().await;
}

pub async fn a_stopped_relay_resumes_from_its_checkpoint(stack: &Stack) {
    stack.append_round_robin(&["a", "b"], 5).await;
    let first = Running::spawn(stack.relay(fast_config()));
    first.wait_for_state(RelayState::Active).await;
    let logged = assert_published_exactly_once(stack, 10).await;
    let last = logged.last().unwrap().position;
    wait_until("the checkpoint reaches the last event", || async {
        stack.checkpoint().await == Some(last)
    })
    .await;
    first.stop().await;

    stack.append_round_robin(&["a", "b", "c"], 3).await;
    let second = Running::spawn(stack.relay(fast_config()));
    assert_published_exactly_once(stack, 19).await;
    let stats = second.relay.stats();
    assert_eq!(
        (stats.published, stats.duplicates),
        (9, 0),
        "only the new events"
    );
    second.stop().await;
}

pub async fn a_commit_of_this_process_makes_an_idle_relay_publish_at_once(stack: &Stack) {
    // With an hour between polls, only the wake-up can explain a prompt publish.
    let config = RelayConfig {
        poll_interval: Duration::from_secs(3600),
        ..fast_config()
    };
    let running = Running::spawn(stack.relay(config).woken_by(stack.commits()));
    running.wait_for_state(RelayState::Active).await;
    wait_until("the relay found the log empty and idles", || async {
        running.relay.stats().reads >= 1
    })
    .await;

    let reads_before = running.relay.stats().reads;
    stack.command("woken").await;
    wait_until("the commit's signal woke the relay", || async {
        running.relay.stats().reads > reads_before
    })
    .await;
    // Another session's open transaction may hold the watermark back at that read; wake it until it is past.
    wait_until("the event is published", || async {
        stack.commits().notify();
        stream_messages(stack.bus.as_ref()).await == 1
    })
    .await;
    assert_published_exactly_once(stack, 1).await;
    running.stop().await;
}
