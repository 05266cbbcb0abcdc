//! The store conformance suite: one set of checks, run against the memory adapter and against Postgres.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use strom_commands::log::{verify_chains, EventEnvelope, LogPosition};
use strom_commands::service::{
    AggregateService, CommandError, CommandServices, Executed, MAX_COMMAND_ATTEMPTS,
};
use strom_commands::store::AppendError;
use strom_domain::{Agent, AgentCommand, AgentError, AgentState, Decider, StromEvent};

use crate::follower::a_page_that_fails_is_read_again_never_skipped;
use crate::support::{
    agent_id, assert_chained, create_named, ctx, read_exactly, run, script_events, step_on, t0,
    Backend, Logged,
};

/// Runs each named check once per backend: `memory::<check>` and `postgres::<check>`.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&crate::support::Backend::memory()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&crate::support::Backend::postgres().await).await;
                }
            )*
        }
    };
}

conformance!(
    appended_events_load_back_in_order,
    a_taken_sequence_is_a_conflict_and_nothing_is_written,
    a_skipped_sequence_is_refused_as_an_error_not_a_conflict,
    the_log_is_in_commit_order_across_aggregates,
    every_hash_links_its_stream_and_the_chains_verify,
    one_stream_reads_in_pages_and_verifies_alone,
    reading_in_pages_with_checkpoints_returns_each_event_once,
    concurrent_writers_take_each_sequence_exactly_once,
    rejected_commands_are_returned_not_retried,
    snapshots_round_trip_and_never_move_backwards,
    a_command_decided_on_a_stale_cache_meets_the_conflict_reloads_and_succeeds,
    a_refusal_decided_on_a_stale_cache_is_checked_against_the_store,
    a_page_that_fails_is_read_again_never_skipped,
);

async fn appended_events_load_back_in_order(backend: &Backend) {
    backend.steps("c-1", 3).await;
    backend.step("c-2").await;

    let (agent, version) = backend
        .services
        .agents
        .load(&agent_id("c-1"))
        .await
        .unwrap();
    assert_eq!((agent.last_tick_no(), version), (1, 3));
    let events = backend
        .store
        .events_after::<Agent>(&agent_id("c-1"), 0)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .map(|(sequence, _)| *sequence)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(events, numbered(script_events("c-1", 3), 1));
    let tail = backend
        .store
        .events_after::<Agent>(&agent_id("c-1"), 1)
        .await
        .unwrap();
    assert_eq!(
        tail.iter()
            .map(|(sequence, _)| *sequence)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );

    let logged: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 4).await;
    assert_eq!(logged[0].correlation_id(), Some("corr-c-1"));
    let created = logged
        .iter()
        .find(|e| e.aggregate_id == agent_id("c-2"))
        .unwrap();
    assert_eq!(created.event_type(), "AgentCreated");
    assert_eq!(created.event.event_version(), "2");
    assert_eq!(created.correlation_id(), Some("corr-c-2"));
    assert_eq!(created.metadata.actor.as_deref(), Some("system:test"));
    let ids: BTreeSet<_> = logged.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 4, "event ids are unique");
}

/// `events` with their sequences, from `first`.
fn numbered(events: Vec<StromEvent>, first: u64) -> Vec<(u64, StromEvent)> {
    (first..).zip(events).collect()
}

/// Appends `events` to agent `id` at `expected` straight through the store (no command, no cache).
async fn append(
    backend: &Backend,
    id: &str,
    expected: u64,
    events: &[StromEvent],
) -> Result<(), AppendError> {
    let metadata = strom_domain::EventMetadata::new("raw", "system:test");
    backend
        .store
        .append::<Agent>(id, expected, events, &metadata)
        .await
}

/// How many events agent `id` has in the store.
async fn stored(backend: &Backend, id: &str) -> usize {
    backend
        .store
        .events_after::<Agent>(id, 0)
        .await
        .unwrap()
        .len()
}

async fn a_taken_sequence_is_a_conflict_and_nothing_is_written(backend: &Backend) {
    let id = agent_id("c");
    let events = script_events("c", 3);
    append(backend, &id, 0, &events[..2]).await.unwrap();

    let again = append(backend, &id, 1, &events[1..2]).await;
    assert!(matches!(again, Err(AppendError::Conflict)), "{again:?}");

    // A batch whose first sequence is taken and whose second is new must leave nothing behind.
    let mixed = append(backend, &id, 1, &events[1..3]).await;
    assert!(matches!(mixed, Err(AppendError::Conflict)), "{mixed:?}");
    assert_eq!(stored(backend, &id).await, 2);

    // Two commands that loaded the same version: the second to commit conflicts.
    append(backend, &id, 2, &events[2..3]).await.unwrap();
    let lost = append(backend, &id, 2, &events[2..3]).await;
    assert!(matches!(lost, Err(AppendError::Conflict)), "{lost:?}");
    let _: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 3).await;
}

async fn a_skipped_sequence_is_refused_as_an_error_not_a_conflict(backend: &Backend) {
    let (g, h) = (agent_id("g"), agent_id("h"));
    let events = script_events("g", 3);
    append(backend, &g, 0, &events[..1]).await.unwrap();
    let gap = append(backend, &g, 2, &events[2..3]).await;
    assert!(matches!(gap, Err(AppendError::Store(_))), "{gap:?}");
    let first_missing = append(backend, &h, 1, &script_events("h", 2)[1..]).await;
    assert!(
        matches!(first_missing, Err(AppendError::Store(_))),
        "{first_missing:?}"
    );
    assert_eq!(stored(backend, &g).await, 1);
    assert_eq!(stored(backend, &h).await, 0);
}

async fn the_log_is_in_commit_order_across_aggregates(backend: &Backend) {
    let order = ["a", "b", "a", "c", "b", "a", "c", "c", "a"];
    for name in order {
        backend.step(name).await;
    }
    let logged: Vec<Logged> =
        read_exactly(backend.log().as_ref(), LogPosition::START, order.len()).await;
    assert_eq!(
        logged
            .iter()
            .map(|e| e.aggregate_id.clone())
            .collect::<Vec<_>>(),
        order.map(agent_id)
    );
    assert!(logged.windows(2).all(|w| w[0].position < w[1].position));
    assert!(logged
        .windows(2)
        .all(|w| w[0].recorded_at <= w[1].recorded_at));
    for name in ["a", "b", "c"] {
        let sequences: Vec<u64> = logged
            .iter()
            .filter(|e| e.aggregate_id == agent_id(name))
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    }
}

/// Agent names chosen to exercise the escapes and non-ASCII text of the jsonb text form the hash covers (the
/// events around them add nested objects, nulls, decimals as strings and large integers).
pub fn tricky_names() -> Vec<&'static str> {
    vec![
        "quote \" backslash \\ slash /",
        "newline \n tab \t bell \u{7} del \u{7f}",
        "é € 😀 ß 中文",
        "\u{1} control \u{1f} and \u{2028} separator",
        "{\"AgentCreated\": \"shadowing the variant\"}",
    ]
}

/// Creates agent `name` called `names[0]`, then renames it to each following name (it stays stopped).
pub async fn create_and_rename(services: &CommandServices, name: &str, names: &[&str]) {
    let id = agent_id(name);
    let (first, rest) = names.split_first().expect("at least one name");
    services
        .agents
        .execute(&id, || create_named(name, first), &ctx("m"))
        .await
        .unwrap();
    for display_name in rest {
        let rename = || AgentCommand::UpdateAgentConfig {
            patch: serde_json::from_value(serde_json::json!({ "name": display_name }))
                .expect("a patch"),
            at: t0(),
        };
        services
            .agents
            .execute(&id, rename, &ctx("m"))
            .await
            .unwrap();
    }
}

async fn every_hash_links_its_stream_and_the_chains_verify(backend: &Backend) {
    let names = tricky_names();
    create_and_rename(&backend.services, "notes", &names).await;
    for i in 0..names.len() {
        backend.step(&format!("other-{}", i % 2)).await;
    }
    let stored: Vec<EventEnvelope> =
        read_exactly(backend.log().as_ref(), LogPosition::START, 10).await;
    assert_chained(&stored);

    let report = verify_chains(backend.chains().as_ref()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.streams, report.events), (3, 10));
}

async fn one_stream_reads_in_pages_and_verifies_alone(backend: &Backend) {
    let names = tricky_names();
    backend.step("other-0").await;
    create_and_rename(&backend.services, "notes", &names).await;
    backend.step("other-1").await;
    let id = agent_id("notes");
    let mut stream: Vec<EventEnvelope> = Vec::new();
    loop {
        let after = stream.last().map_or(0, |e| e.sequence);
        let page = backend
            .store
            .stream_envelopes_after(Agent::TYPE, &id, after, 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        stream.extend(page);
    }
    let sequences: Vec<u64> = stream.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=names.len() as u64).collect::<Vec<_>>());
    assert!(stream.iter().all(|e| e.aggregate_id == id));
    assert_chained(&stream);

    let verification = backend.store.verify_stream(Agent::TYPE, &id).await.unwrap();
    assert!(verification.report.is_intact(), "{verification:?}");
    assert_eq!(
        (verification.report.streams, verification.report.events),
        (1, names.len() as u64)
    );
    assert_eq!(
        verification.head_hash,
        stream.last().map(|e| e.hash.clone())
    );

    let unknown = backend
        .store
        .verify_stream(Agent::TYPE, "nobody")
        .await
        .unwrap();
    assert_eq!((unknown.report.events, unknown.head_hash), (0, None));
    assert!(backend
        .store
        .stream_envelopes_after("NoSuchType", &id, 0, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn reading_in_pages_with_checkpoints_returns_each_event_once(backend: &Backend) {
    /// Small enough that 23 events take several pages, with a short last one.
    const PAGE: usize = 5;
    const EVENTS: usize = 23;
    for i in 0..EVENTS {
        backend.step(&format!("p-{}", i % 4)).await;
    }
    let everything: Vec<Logged> =
        read_exactly(backend.log().as_ref(), LogPosition::START, EVENTS).await;

    let checkpoints = backend.checkpoints();
    assert_eq!(checkpoints.load("pager").await.unwrap(), None);
    let mut seen: Vec<Logged> = Vec::new();
    let started = std::time::Instant::now();
    while seen.len() < EVENTS {
        // A fresh reader each page, resuming only from the saved checkpoint (as after a restart).
        let after = checkpoints.load("pager").await.unwrap().unwrap_or_default();
        let page = backend.log().read_after(after, PAGE).await.unwrap();
        assert!(page.len() <= PAGE);
        if let Some(last) = page.last() {
            checkpoints.save("pager", last.position).await.unwrap();
        } else {
            assert!(
                started.elapsed() < crate::support::CATCH_UP_DEADLINE,
                "stuck"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        seen.extend(page);
    }
    assert_eq!(seen, everything);
    let last = checkpoints.load("pager").await.unwrap().unwrap();
    assert_eq!(last, everything.last().unwrap().position);
    assert!(backend
        .log()
        .read_after(last, PAGE)
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_writers_take_each_sequence_exactly_once(backend: &Backend) {
    /// More writers than pool connections, so commits really race.
    const WRITERS: usize = 24;
    backend.steps("hot", 2).await;
    let hot = agent_id("hot");
    // Each attempt claims the next tick number when it decides. Every tick in the state it decides on was claimed
    // before that state was read, so a decision is never refused as already run: it commits or conflicts.
    let claimed = AtomicU64::new(0);
    let results = futures::future::join_all((0..WRITERS).map(|i| {
        let (hot, claimed) = (&hot, &claimed);
        async move {
            // A service each, like separate processes: no writer sees another's cache.
            let agents = AggregateService::<Agent>::new(backend.store.clone());
            agents
                .execute(
                    hot,
                    || run(claimed.fetch_add(1, Ordering::SeqCst) + 1),
                    &ctx(&format!("w-{i}")),
                )
                .await
        }
    }))
    .await;

    let mut successes = 0;
    for result in &results {
        match result {
            Ok(_) => successes += 1,
            Err(CommandError::Conflict {
                attempts,
                aggregate_id,
                ..
            }) => {
                assert_eq!(*attempts, MAX_COMMAND_ATTEMPTS);
                assert_eq!(aggregate_id, &hot);
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(successes > 0);

    let (agent, version) = backend.services.agents.load(&hot).await.unwrap();
    assert_eq!(version, 2 + successes);
    let logged: Vec<Logged> = read_exactly(
        backend.log().as_ref(),
        LogPosition::START,
        2 + successes as usize,
    )
    .await;
    let sequences: Vec<u64> = logged.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=2 + successes).collect::<Vec<_>>());
    // Each run was decided on the state it was committed after: no lost update, ticks only go up.
    let ticks: Vec<u64> = logged
        .iter()
        .filter_map(|e| match e.event.as_agent() {
            Some(strom_domain::AgentEvent::AgentRunRecorded { tick_no, .. }) => Some(*tick_no),
            _ => None,
        })
        .collect();
    assert_eq!(ticks.len() as u64, successes);
    assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{ticks:?}");
    assert_eq!(agent.last_tick_no(), *ticks.last().unwrap());
    let stored: Vec<EventEnvelope> =
        read_exactly(backend.log().as_ref(), LogPosition::START, logged.len()).await;
    assert_chained(&stored);
}

/// Starts agent `id` at [`t0`].
async fn start(
    agents: &AggregateService<Agent>,
    id: &str,
    correlation_id: &str,
) -> Result<Executed<Agent>, CommandError<AgentError>> {
    agents
        .execute(
            id,
            || AgentCommand::StartAgent { at: t0() },
            &ctx(correlation_id),
        )
        .await
}

async fn rejected_commands_are_returned_not_retried(backend: &Backend) {
    let id = agent_id("r");
    let result = start(&backend.services.agents, &id, "r").await;
    assert!(
        matches!(
            result,
            Err(CommandError::Rejected(AgentError::AgentNotFound))
        ),
        "{result:?}"
    );
    let (_, version) = backend.services.agents.load(&id).await.unwrap();
    assert_eq!(version, 0);
    assert_eq!(
        backend.services.agents.events_replayed(),
        0,
        "nothing was reloaded to try again"
    );
}

async fn snapshots_round_trip_and_never_move_backwards(backend: &Backend) {
    let id = agent_id("snap");
    backend.steps("snap", 3).await;
    let (at_three, _) = backend.services.agents.load(&id).await.unwrap();
    let mut at_two = Agent::default();
    for event in script_events("snap", 2) {
        at_two.evolve(event.as_agent().unwrap());
    }
    assert_eq!(
        backend.store.load_snapshot::<Agent>(&id).await.unwrap(),
        None
    );
    backend.store.save_snapshot(&id, &at_two, 2).await.unwrap();
    assert_eq!(
        backend.store.load_snapshot::<Agent>(&id).await.unwrap(),
        Some((at_two.clone(), 2))
    );
    backend
        .store
        .save_snapshot(&id, &at_three, 3)
        .await
        .unwrap();
    assert_eq!(
        backend.store.load_snapshot::<Agent>(&id).await.unwrap(),
        Some((at_three.clone(), 3))
    );
    assert!(backend
        .store
        .events_after::<Agent>(&id, 3)
        .await
        .unwrap()
        .is_empty());
    // An older state (a slow process saving late) does not replace a newer snapshot.
    backend.store.save_snapshot(&id, &at_two, 2).await.unwrap();
    assert_eq!(
        backend.store.load_snapshot::<Agent>(&id).await.unwrap(),
        Some((at_three.clone(), 3))
    );
    // A fresh service starts from it and reads nothing more.
    let fresh = AggregateService::<Agent>::new(backend.store.clone());
    assert_eq!(fresh.load(&id).await.unwrap(), (at_three, 3));
    assert_eq!(fresh.events_replayed(), 0);
}

async fn a_command_decided_on_a_stale_cache_meets_the_conflict_reloads_and_succeeds(
    backend: &Backend,
) {
    let (this, other) = (&backend.services, backend.another_process());
    let id = agent_id("stale");
    step_on(this, "stale").await;
    step_on(this, "stale").await;
    // The other process records run 1; this one's cache still says "started, nothing run".
    let elsewhere = step_on(&other, "stale").await;
    assert_eq!(elsewhere.version, 3);
    let replayed_before = this.agents.events_replayed();

    let executed = this
        .agents
        .execute(&id, || run(2), &ctx("late"))
        .await
        .expect("the conflict is met, the agent reloaded and the command decided again");
    assert_eq!(executed.version, 4);
    assert_eq!(executed.state.last_tick_no(), 2);
    assert!(
        this.agents.events_replayed() > replayed_before,
        "the stale state was reloaded from the store"
    );
    let (agent, version) = other.agents.load(&id).await.unwrap();
    assert_eq!((agent.last_tick_no(), version), (2, 4));
    let logged: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 4).await;
    assert_eq!(
        logged.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

async fn a_refusal_decided_on_a_stale_cache_is_checked_against_the_store(backend: &Backend) {
    let (this, other) = (&backend.services, backend.another_process());
    let id = agent_id("refused");
    step_on(this, "refused").await;
    step_on(this, "refused").await;
    // The other process stops the agent; this one's cache still says "running".
    other
        .agents
        .execute(
            &id,
            || AgentCommand::StopAgent {
                at: t0(),
                reason: "elsewhere".into(),
            },
            &ctx("stop"),
        )
        .await
        .unwrap();

    let started = start(&this.agents, &id, "start")
        .await
        .expect("the refusal (already running) is decided again on the stored state");
    assert_eq!(started.version, 4);
    assert_eq!(started.state.session(), 2);
    assert_eq!(started.state.state(), AgentState::Running);

    // A refusal that the store confirms is returned.
    let again = start(&this.agents, &id, "again").await;
    assert!(
        matches!(
            again,
            Err(CommandError::Rejected(
                AgentError::AgentAlreadyRunning { .. }
            ))
        ),
        "{again:?}"
    );
    let _: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 4).await;
}
