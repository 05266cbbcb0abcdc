//! The Postgres read model against real Postgres: same rows as the memory model, idempotent pages, atomic pages
//! and rebuilds, the same query results as memory, and live-incremental == rebuild-from-zero, byte for byte.

use std::sync::Arc;

use serde_json::json;
use strom_commands::log::{EventLog, LogPosition, PgEventLog};
use strom_commands::service::AggregateService;
use strom_commands::store::EventStore;
use strom_domain::order::OrderStatus;
use strom_domain::Agent;
use strom_projections::{
    diff_dumps, fold_events, rebuild_from, AgentFilter, AgentQueries, MemoryReadModel, OrderView,
    PgReadModel, PnlQuery, PositionView, ProjectionSink, Projector, RebuildSink, SinkError,
    AGENTS_PROJECTOR,
};
use strom_tests::scenario::{self, AgentDriver, TWO_AGENTS_IDS};

use crate::support::{read_all, test_db, wait_visible, TestDb};

/// Events `scenario::two_agents` records (alice's last is her sequence 17).
const TWO_AGENTS_EVENTS: usize = 24;

/// Events `scenario::paper_trading` records.
const PAPER_TRADING_EVENTS: usize = 21;

async fn two_agents_in(db: &TestDb) -> PgEventLog {
    let agents = AggregateService::<Agent>::new(EventStore::postgres(db.pool.clone()));
    scenario::two_agents(&agents).await.unwrap();
    PgEventLog::new(db.pool.clone())
}

fn projector(db: &TestDb, log: PgEventLog, model: &PgReadModel) -> Projector {
    let _ = db;
    Projector::new(AGENTS_PROJECTOR, Arc::new(log), Arc::new(model.clone()))
}

#[tokio::test]
async fn the_postgres_tables_hold_exactly_the_rows_of_the_memory_fold() {
    let db = test_db().await;
    let log = two_agents_in(&db).await;
    let events = read_all(&log, TWO_AGENTS_EVENTS).await;
    assert_eq!(events.len(), TWO_AGENTS_EVENTS);
    let model = PgReadModel::new(db.pool.clone());
    projector(&db, log, &model).catch_up().await.unwrap();

    let (memory, errors) = fold_events(&events);
    assert!(errors.is_empty(), "{errors:?}");
    let live = model.dump().await.unwrap();
    let comparison = diff_dumps(&live, &memory.dump());
    assert!(comparison.is_equal(), "{comparison:#?}");
    assert_eq!(live.agents.len(), 2);
    assert_eq!(live.agent_runs.len(), 11);
    assert_eq!(
        model.checkpoint().await.unwrap(),
        events.last().unwrap().position
    );
}

#[tokio::test]
async fn applying_the_same_page_twice_changes_nothing_in_postgres() {
    let db = test_db().await;
    let log = two_agents_in(&db).await;
    let events = read_all(&log, TWO_AGENTS_EVENTS).await;
    let model = PgReadModel::new(db.pool.clone());
    let page = &events[..12];
    let first = model.apply_page(page).await.unwrap();
    let once = model.dump().await.unwrap();
    assert_eq!(model.apply_page(page).await.unwrap(), first);
    assert_eq!(model.dump().await.unwrap(), once);
    // The rest still applies after the repeat, and the result is the full model.
    model.apply_page(&events).await.unwrap();
    let (memory, _) = fold_events(&events);
    assert!(diff_dumps(&model.dump().await.unwrap(), &memory.dump()).is_equal());
}

#[tokio::test]
async fn a_page_with_an_event_that_cannot_be_folded_writes_nothing() {
    let db = test_db().await;
    let log = two_agents_in(&db).await;
    sqlx::query(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           VALUES ('Agent', $1, 18, 'AgentStarted', '7', '{"AgentStarted": {}}', '{}')"#,
    )
    .bind(TWO_AGENTS_IDS[0])
    .execute(&db.pool)
    .await
    .unwrap();
    wait_visible(&log, TWO_AGENTS_EVENTS + 1).await;
    let model = PgReadModel::new(db.pool.clone());
    // The event does not decode: the log reader refuses the page at the edge, naming the event, and the projector
    // stops before it; nothing of the page is written.
    let err = projector(&db, log, &model).catch_up().await.unwrap_err();
    assert!(
        matches!(
            err,
            SinkError::Store(strom_commands::log::StoreError::Undecodable { sequence: 18, .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("unknown event AgentStarted v7"),
        "{err}"
    );
    assert_eq!(model.checkpoint().await.unwrap(), LogPosition::START);
    assert!(model.dump().await.unwrap().agents.is_empty());
}

#[tokio::test]
async fn postgres_queries_answer_exactly_as_the_memory_queries() {
    let db = test_db().await;
    let log = two_agents_in(&db).await;
    let events = read_all(&log, TWO_AGENTS_EVENTS).await;
    let pg = PgReadModel::new(db.pool.clone());
    pg.apply_page(&events).await.unwrap();
    let memory = MemoryReadModel::new();
    memory.apply_page(&events).await.unwrap();
    let both: [&dyn AgentQueries; 2] = [&pg, &memory];
    let mut results = Vec::new();
    for q in both {
        let mut out = Vec::new();
        for id in TWO_AGENTS_IDS {
            out.push(serde_json::to_value(q.get_agent(id).await.unwrap()).unwrap());
            let mut cursor = None;
            loop {
                let page = q.list_runs(id, Some(4), cursor.as_deref()).await.unwrap();
                out.push(serde_json::to_value(&page).unwrap());
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
        }
        for filter in [AgentFilter::default(), AgentFilter::owned_by("bob")] {
            let first = q.list_agents(&filter, Some(1), None).await.unwrap();
            out.push(serde_json::to_value(&first).unwrap());
            let next = q
                .list_agents(&filter, Some(1), first.next_cursor.as_deref())
                .await
                .unwrap();
            out.push(serde_json::to_value(&next).unwrap());
        }
        results.push(out);
    }
    assert_eq!(results[0], results[1]);
    assert!(results[0]
        .iter()
        .any(|v| v["items"].as_array().is_some_and(|i| i.len() == 4)));
}

/// More commands after the scenario: a third agent with runs, so later batches touch new and old rows.
async fn more_commands(db: &TestDb, round: u64) {
    let agents = AggregateService::<Agent>::new(EventStore::postgres(db.pool.clone()));
    let id = format!("00000000-0000-4000-8000-{round:012}");
    let mut agent = AgentDriver::new(&agents, &id);
    let config = scenario::config(
        &format!("extra {round}"),
        "SOL-USD",
        json!({"kind": "mean_reversion", "params": {"window": 2, "threshold_pct": "1", "qty": "1"}}),
        10,
        1000.into(),
        round,
    );
    agent.create("carol", config, 1_000_000).await.unwrap();
    agent.start(1_001_000).await.unwrap();
    for tick in 1..=4u64 {
        let price = rust_decimal::Decimal::new(2000 + (tick as i64 % 2) * 150, 2);
        let run = scenario::run_command(&id, 1, 1_001_000, 10, tick, "SOL-USD", price, 3);
        agent.run(run).await.unwrap();
    }
}

#[tokio::test]
async fn a_live_projection_built_in_batches_equals_a_rebuild_from_zero_byte_for_byte() {
    let db = test_db().await;
    let log = two_agents_in(&db).await;
    let model = PgReadModel::new(db.pool.clone());
    // Small pages first, as a projector restarted mid-log would see them.
    read_all(&log, TWO_AGENTS_EVENTS).await;
    let mut checkpoint = LogPosition::START;
    for _ in 0..3 {
        let page = log.read_after(checkpoint, 5).await.unwrap();
        checkpoint = model.apply_page(&page).await.unwrap();
    }
    let projector = projector(&db, PgEventLog::new(db.pool.clone()), &model);
    for round in 1..=3 {
        projector.catch_up().await.unwrap();
        more_commands(&db, round).await;
    }
    let expected_events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let expected_events = usize::try_from(expected_events).unwrap();
    read_all(&log, expected_events).await;
    projector.catch_up().await.unwrap();
    let live = model.dump().await.unwrap();
    assert_eq!(live.agents.len(), 5);

    // Rebuild from zero into fresh tables (another schema), reading the same log.
    let fresh = test_db().await;
    let rebuilt = PgReadModel::new(fresh.pool.clone());
    let mut sink = rebuilt.rebuild_sink();
    let mut pages = 0;
    let done = rebuild_from(&log, &mut sink, |_| pages += 1).await.unwrap();
    assert_eq!(done.events, expected_events as u64);
    assert!(pages >= 1);
    let comparison = diff_dumps(&live, &rebuilt.dump().await.unwrap());
    assert!(comparison.is_equal(), "{comparison:#?}");
    assert_eq!(
        rebuilt.checkpoint().await.unwrap(),
        model.checkpoint().await.unwrap()
    );

    // And rebuilding the live tables in place changes nothing either.
    let mut in_place = model.rebuild_sink();
    rebuild_from(&log, &mut in_place, |_| {}).await.unwrap();
    assert_eq!(model.dump().await.unwrap(), live);
}

#[tokio::test]
async fn an_unfinished_rebuild_leaves_the_live_tables_as_they_were() {
    let db = test_db().await;
    let log = two_agents_in(&db).await;
    let events = read_all(&log, TWO_AGENTS_EVENTS).await;
    let model = PgReadModel::new(db.pool.clone());
    model.apply_page(&events).await.unwrap();
    let before = model.dump().await.unwrap();
    let checkpoint = model.checkpoint().await.unwrap();
    {
        let mut sink = model.rebuild_sink();
        sink.begin().await.unwrap();
        let (memory, _) = fold_events(&events[..5]);
        let runs: Vec<_> = memory.all_runs().cloned().collect();
        sink.write_rows(strom_projections::AppendedRows {
            runs,
            ..Default::default()
        })
        .await
        .unwrap();
        // Dropped here without finish(): the transaction rolls back (as on Ctrl-C).
    }
    assert_eq!(model.dump().await.unwrap(), before);
    assert_eq!(model.checkpoint().await.unwrap(), checkpoint);
}

/// The trading queries on Postgres answer exactly as on memory over the paper-trading scenario: orders (every status
/// filter, paged), one order, trades (paged), the position and book, PnL points paged, ranged, and thinned to every
/// `max_points` from 2 past the number of points (the SQL thinning against the Rust one).
#[tokio::test]
async fn postgres_trading_queries_answer_exactly_as_the_memory_queries() {
    let db = test_db().await;
    let agents = AggregateService::<Agent>::new(EventStore::postgres(db.pool.clone()));
    scenario::paper_trading(&agents).await.unwrap();
    let log = PgEventLog::new(db.pool.clone());
    let events = read_all(&log, PAPER_TRADING_EVENTS).await;
    let pg = PgReadModel::new(db.pool.clone());
    pg.apply_page(&events).await.unwrap();
    let memory = MemoryReadModel::new();
    memory.apply_page(&events).await.unwrap();
    let id = scenario::PAPER_TRADING_ID;
    assert_eq!(
        pg.get_book(id).await.unwrap(),
        memory.get_book(id).await.unwrap()
    );
    let both: [&dyn AgentQueries; 2] = [&pg, &memory];
    let mut results = Vec::new();
    for q in both {
        let mut out = Vec::new();
        for status in [None, Some(OrderStatus::Rejected), Some(OrderStatus::Filled)] {
            let mut cursor = None;
            loop {
                let page = q
                    .list_orders(id, status, Some(2), cursor.as_deref())
                    .await
                    .unwrap();
                for order in &page.items {
                    let one = q.get_order(&order.order_id).await.unwrap().unwrap();
                    out.push(serde_json::to_value(OrderView::from(&one)).unwrap());
                }
                out.push(serde_json::to_value(&page).unwrap());
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
        }
        let mut cursor = None;
        loop {
            let page = q.list_trades(id, Some(1), cursor.as_deref()).await.unwrap();
            out.push(serde_json::to_value(&page).unwrap());
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let position = q.get_position(id).await.unwrap().unwrap();
        out.push(serde_json::to_value(PositionView::from(&position)).unwrap());
        let all = q.list_pnl(id, &PnlQuery::default()).await.unwrap();
        out.push(serde_json::to_value(&all).unwrap());
        let mut query = PnlQuery {
            limit: Some(3),
            ..PnlQuery::default()
        };
        loop {
            let page = q.list_pnl(id, &query).await.unwrap();
            out.push(serde_json::to_value(&page).unwrap());
            query.cursor = page.next_cursor;
            if query.cursor.is_none() {
                break;
            }
        }
        for from in [None, Some(all.items[2].at), Some(all.items[5].at)] {
            for max_points in 2..=all.items.len() + 1 {
                let thinned = PnlQuery {
                    from,
                    to: Some(all.items[all.items.len() - 2].at),
                    max_points: Some(max_points),
                    ..PnlQuery::default()
                };
                let page = q.list_pnl(id, &thinned).await.unwrap();
                assert!(page.items.len() <= max_points);
                out.push(serde_json::to_value(&page).unwrap());
            }
        }
        let (points, closed) = q.metrics_series(id).await.unwrap();
        assert_eq!(points.len(), all.items.len());
        assert!(!closed.is_empty(), "the scenario closes trades");
        out.push(serde_json::to_value((&points, &closed)).unwrap());
        results.push(out);
    }
    assert_eq!(results[0], results[1]);
    assert!(results[0].len() > 30, "the comparison covered the listings");
}
