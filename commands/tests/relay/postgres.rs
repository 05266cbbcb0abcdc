//! What only Postgres + NATS can show: transactions that roll back or commit late, the advisory lock and
//! failover, a cut NATS connection, and the published envelope against its JSON Schema.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgConnection;
use strom_commands::bus::nats::NatsBus;
use strom_commands::bus::CORRELATION_ID_HEADER;
use strom_commands::lease::{lock_name, LOCK_NAMESPACE};
use strom_commands::log::{EventEnvelope, LogPosition};
use strom_commands::relay::{
    RelayConfig, RelayState, EVENT_TYPE_HEADER, EVENT_VERSION_HEADER, RELAY_ROLE, SEQUENCE_HEADER,
};
use strom_domain::codec::encode;

use crate::faults::Proxy;
use crate::support::{agent_id, insert_undecodable_created, script_events, Row};
use crate::{
    assert_published_exactly_once, fast_config, nats_url, read_stream, stream_messages,
    wait_for_stream, wait_until, Running, Stack,
};

/// A connection with a transaction open that has written agent `name`'s `AgentCreated` and not committed yet.
async fn begin_with_created_agent(stack: &Stack, name: &str) -> PgConnection {
    let mut conn = stack.db().connect().await;
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    Row::of(&agent_id(name), 1, &script_events(name, 1)[0])
        .insert(&mut conn)
        .await;
    conn
}

/// The backend holding the relay lock of `stack`'s prefix, if any.
async fn lock_holders(stack: &Stack) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 2
            AND classid = (hashtext($1)::bigint & 4294967295)::oid
            AND objid = (hashtext($2)::bigint & 4294967295)::oid",
    )
    .bind(LOCK_NAMESPACE)
    .bind(lock_name(RELAY_ROLE, stack.bus.subjects().prefix()))
    .fetch_all(&stack.db().pool)
    .await
    .unwrap()
}

/// Ends the lock holder's session, as a network failure or a killed connection would.
async fn terminate_lock_connection(stack: &Stack) {
    let holders = lock_holders(stack).await;
    assert_eq!(holders.len(), 1, "exactly one relay holds the lock");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(holders[0])
        .fetch_one(&stack.db().pool)
        .await
        .unwrap();
    assert!(terminated);
}

#[tokio::test]
async fn a_rolled_back_transactions_events_are_never_published() {
    let stack = Stack::postgres().await;
    let running = Running::spawn(stack.relay(fast_config()));
    running.wait_for_state(RelayState::Active).await;

    let mut ghost = begin_with_created_agent(&stack, "ghost").await;
    stack.append_round_robin(&["real"], 4).await;
    sqlx::query("ROLLBACK").execute(&mut ghost).await.unwrap();
    stack.command("real").await;

    let logged = assert_published_exactly_once(&stack, 5).await;
    assert!(logged.iter().all(|e| e.aggregate_id == agent_id("real")));
    running.stop().await;
    stack.finish().await;
}

#[tokio::test]
async fn events_committed_out_of_position_order_are_all_published_in_aggregate_order() {
    let stack = Stack::postgres().await;
    let running = Running::spawn(stack.relay(fast_config()));
    stack.command("early").await;
    wait_for_stream(stack.bus.as_ref(), 1).await;

    // Takes its transaction id (and a smaller global_position) first, commits last.
    let mut late = begin_with_created_agent(&stack, "late").await;
    stack.append_round_robin(&["x", "y"], 4).await;
    let reads = running.relay.stats().reads;
    wait_until("the relay has read the log three more times", || async {
        running.relay.stats().reads >= reads + 3
    })
    .await;
    assert_eq!(
        stream_messages(stack.bus.as_ref()).await,
        1,
        "nothing committed after the open transaction began is published before it ends"
    );

    sqlx::query("COMMIT").execute(&mut late).await.unwrap();
    let logged = assert_published_exactly_once(&stack, 10).await;
    assert_eq!(
        logged[1].aggregate_id,
        agent_id("late"),
        "the late commit is next in log order"
    );
    running.stop().await;
    stack.finish().await;
}

#[tokio::test]
async fn only_one_of_two_relays_publishes_and_a_standby_takes_over_when_the_active_one_goes() {
    let stack = Stack::postgres().await;
    // The first relay, once it lost the lock, waits an hour before trying again: the takeover is the standby's.
    let slow_to_return = RelayConfig {
        leader_retry: Duration::from_secs(3600),
        ..fast_config()
    };
    let first = Running::spawn(stack.relay(slow_to_return));
    first.wait_for_state(RelayState::Active).await;
    let second = Running::spawn(stack.relay(fast_config()));

    stack.append_round_robin(&["a", "b", "c"], 5).await;
    let logged = assert_published_exactly_once(&stack, 15).await;
    let last = logged.last().unwrap().position;
    wait_until("the checkpoint reaches the last event", || async {
        stack.checkpoint().await == Some(last)
    })
    .await;
    assert_eq!(*second.relay.state().borrow(), RelayState::Standby);
    assert_eq!(
        second.relay.stats(),
        Default::default(),
        "the standby neither read nor published"
    );
    assert_eq!(first.relay.stats().published, 15);

    // The active relay's lock connection dies: it must stop, and the standby take over from the checkpoint.
    terminate_lock_connection(&stack).await;
    second.wait_for_state(RelayState::Active).await;
    first.wait_for_state(RelayState::Standby).await;
    stack.append_round_robin(&["a", "d"], 5).await;
    assert_published_exactly_once(&stack, 25).await;
    assert_eq!(first.relay.stats().published, 15, "the old relay stood by");
    let taken_over = second.relay.stats();
    assert_eq!((taken_over.published, taken_over.duplicates), (10, 0));

    // Now the active relay dies outright (its task and connection vanish); a third one takes over.
    let third = Running::spawn(stack.relay(fast_config()));
    second.kill().await;
    third.wait_for_state(RelayState::Active).await;
    stack.append_round_robin(&["e"], 5).await;
    assert_published_exactly_once(&stack, 30).await;
    assert_eq!(third.relay.stats().published, 5);
    assert_eq!(lock_holders(&stack).await.len(), 1);

    first.stop().await;
    third.stop().await;
    stack.finish().await;
}

#[tokio::test]
async fn a_relay_that_lost_its_lock_cannot_move_the_checkpoint() {
    let stack = Stack::postgres().await;
    stack.append_round_robin(&["a"], 3).await;
    let _: Vec<EventEnvelope> =
        crate::support::read_exactly(stack.log().as_ref(), LogPosition::START, 3).await;
    let relay = stack.relay(fast_config());
    let mut active = relay
        .try_activate()
        .await
        .unwrap()
        .expect("the lock is free");
    assert!(
        stack
            .relay(fast_config())
            .try_activate()
            .await
            .unwrap()
            .is_none(),
        "a second relay cannot activate while the first holds the lock"
    );

    let page = active.handle_next_page().await.unwrap().expect("a page");
    terminate_lock_connection(&stack).await;
    let error = active.commit_checkpoint(page).await.unwrap_err();
    assert!(error.lost_lease(), "{error}");
    assert_eq!(stack.checkpoint().await, None);
    drop(active);

    let successor = Running::spawn(stack.relay(fast_config()));
    assert_published_exactly_once(&stack, 3).await;
    wait_until("the successor checkpoints", || async {
        stack.checkpoint().await.is_some()
    })
    .await;
    assert_eq!(successor.relay.stats().duplicates, 3);
    successor.stop().await;
    stack.finish().await;
}

#[tokio::test]
async fn a_cut_nats_connection_is_survived_without_loss_or_duplicates() {
    let stack = Stack::postgres().await;
    let upstream = nats_url()
        .trim_start_matches("nats://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Proxy::start(upstream).await;
    let via_proxy = NatsBus::connect(
        &format!("nats://{}", proxy.addr),
        stack.bus.subjects().clone(),
    )
    .await
    .unwrap();
    let running = Running::spawn(stack.relay_over(Arc::new(via_proxy), fast_config()));

    let mut cut = 0;
    for _round in 1..=3 {
        let before = stream_messages(stack.bus.as_ref()).await;
        stack.append_round_robin(&["a", "b", "c"], 5).await;
        // Cut while the relay is mid-run: it has published something of this round.
        wait_for_stream(stack.bus.as_ref(), before + 1).await;
        cut += proxy.sever();
    }
    assert!(cut >= 1, "the relay's connection was cut");
    assert_published_exactly_once(&stack, 45).await;
    running.stop().await;
    stack.finish().await;
}

#[tokio::test]
async fn published_envelopes_match_the_event_envelope_schema() {
    let stack = Stack::postgres().await;
    let agent_id = "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10";
    let started = strom_domain::AgentEvent::AgentStarted {
        session: 1,
        started_at: "2026-11-22T10:10:00Z".parse().unwrap(),
        frequency_s: 60,
    };
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Agent', $1, 1, 'AgentStarted', '1', $2, $3)",
    )
    .bind(agent_id)
    .bind(encode(&started.into()))
    .bind(json!({"correlation_id": "req-42", "actor": "alice"}))
    .execute(&stack.db().pool)
    .await
    .unwrap();
    let running = Running::spawn(stack.relay(fast_config()));
    assert_published_exactly_once(&stack, 1).await;
    let message = read_stream(stack.bus.as_ref(), 1).await.remove(0);

    assert_eq!(
        message.subject,
        format!("{}.events.agent.{agent_id}", stack.bus.subjects().prefix())
    );
    let header = |name: &str| message.headers.get(name).map(String::as_str);
    assert_eq!(header(CORRELATION_ID_HEADER), Some("req-42"));
    assert_eq!(header(EVENT_TYPE_HEADER), Some("AgentStarted"));
    assert_eq!(header(EVENT_VERSION_HEADER), Some("1"));
    assert_eq!(header(SEQUENCE_HEADER), Some("1"));

    let schema_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../specs/events/EventEnvelope.v1.schema.json"
    );
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let body: Value = serde_json::from_slice(&message.payload).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:?} in {body}");
    let envelope = EventEnvelope::from_json(&message.payload).unwrap();
    assert_eq!(
        envelope.decode().unwrap().metadata.actor.as_deref(),
        Some("alice")
    );
    running.stop().await;
    stack.finish().await;
}

#[tokio::test]
async fn an_undecodable_event_is_published_as_stored_and_not_skipped() {
    let stack = Stack::postgres().await;
    stack.command("before").await;
    insert_undecodable_created(&stack.db().pool, "bad").await;
    stack.command("after").await;
    let running = Running::spawn(stack.relay(fast_config()));

    // The relay carries the stored form: the event is on the bus in its place, and so is the one after it.
    let published = assert_published_exactly_once(&stack, 3).await;
    assert_eq!(
        published
            .iter()
            .map(|e| e.aggregate_id.clone())
            .collect::<Vec<_>>(),
        [agent_id("before"), agent_id("bad"), agent_id("after")]
    );
    // A consumer decoding it gets the error naming it.
    let error = published[1].decode().unwrap_err().to_string();
    assert!(
        error.contains(&format!("Agent/{} sequence 1", agent_id("bad"))),
        "{error}"
    );
    running.stop().await;
    stack.finish().await;
}
