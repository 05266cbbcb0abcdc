//! Round trips through the JSON edge: every event type of every aggregate, generated with proptest, encodes and decodes
//! to itself — from a parsed value, from its JSON text and from Postgres's jsonb text form (what the store hashes) —
//! and every older stored version decodes to its upcast current form.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

use super::*;
use crate::agent::RunOutcome;
use crate::backtest::{BacktestSource, BacktestSummary};
use crate::canonical::jsonb_text;
use crate::check::RiskCode;
use crate::config::{
    AgentConfig, MeanReversion, RiskLimits, SmaCrossover, Strategy as AgentStrategy,
};
use crate::fill::FillModel;
use crate::market::{Observation, ObservedPrice, Side};
use crate::symbol::Symbol;

fn decimal() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..=12).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
}

fn positive() -> impl Strategy<Value = Decimal> {
    (1i64..=i64::MAX, 0u32..=8).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
}

/// Times as events carry them: UTC, whole milliseconds, years 1970–2100.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800_000).prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap_or_default())
}

/// Any text, control characters, quotes, backslashes and non-ASCII included (not NUL: Postgres jsonb has no form
/// for it, see `canonical`).
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,24}"
}

fn symbol() -> impl Strategy<Value = Symbol> {
    "[A-Z0-9]{1,12}(-[A-Z0-9]{1,12})?".prop_map(|s| Symbol::parse(&s).expect("pattern is a symbol"))
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn strategy() -> impl Strategy<Value = AgentStrategy> {
    prop_oneof![
        Just(AgentStrategy::Hold),
        (1u32..=500, 1u32..=2000, positive()).prop_map(|(fast, slow, qty)| {
            AgentStrategy::SmaCrossover(SmaCrossover { fast, slow, qty })
        }),
        (2u32..=500, positive(), positive()).prop_map(|(window, threshold_pct, qty)| {
            AgentStrategy::MeanReversion(MeanReversion {
                window,
                threshold_pct,
                qty,
            })
        }),
    ]
}

fn risk() -> impl Strategy<Value = RiskLimits> {
    (
        positive(),
        positive(),
        positive(),
        proptest::option::of(positive()),
    )
        .prop_map(
            |(max_position_qty, max_order_qty, max_notional, max_daily_loss)| RiskLimits {
                max_position_qty,
                max_order_qty,
                max_notional,
                max_daily_loss,
            },
        )
}

fn config() -> impl Strategy<Value = AgentConfig> {
    (
        text(),
        symbol(),
        strategy(),
        1u32..=86_400,
        risk(),
        positive(),
        any::<u64>(),
    )
        .prop_map(
            |(name, symbol, strategy, frequency_s, risk, starting_cash, seed)| AgentConfig {
                name,
                symbol,
                strategy: strategy.to_spec(),
                frequency_s,
                risk,
                starting_cash,
                seed,
            },
        )
}

fn agent_event() -> impl Strategy<Value = AgentEvent> {
    let created =
        (text(), text(), config(), time()).prop_map(|(agent_id, owner, c, created_at)| {
            AgentEvent::AgentCreated {
                agent_id,
                owner,
                name: c.name,
                symbol: c.symbol,
                strategy: c.strategy,
                frequency_s: c.frequency_s,
                risk: c.risk,
                starting_cash: c.starting_cash,
                seed: c.seed,
                created_at,
            }
        });
    let updated = (config(), time()).prop_map(|(c, updated_at)| AgentEvent::AgentConfigUpdated {
        name: c.name,
        symbol: c.symbol,
        strategy: c.strategy,
        frequency_s: c.frequency_s,
        risk: c.risk,
        starting_cash: c.starting_cash,
        seed: c.seed,
        updated_at,
    });
    let started = (any::<u64>(), time(), any::<u32>()).prop_map(|(session, started_at, f)| {
        AgentEvent::AgentStarted {
            session,
            started_at,
            frequency_s: f,
        }
    });
    let stopped = (any::<u64>(), time(), text()).prop_map(|(session, stopped_at, reason)| {
        AgentEvent::AgentStopped {
            session,
            stopped_at,
            reason,
        }
    });
    let archived = time().prop_map(|archived_at| AgentEvent::AgentArchived { archived_at });
    prop_oneof![created, updated, started, stopped, archived, run_recorded()]
}

fn run_recorded() -> impl Strategy<Value = AgentEvent> {
    let outcome = prop_oneof![
        Just(RunOutcome::Observed),
        (side(), decimal(), text()).prop_map(|(side, qty, order_id)| RunOutcome::Signalled {
            side,
            qty,
            order_id
        }),
        text().prop_map(|order_id| RunOutcome::Skipped { order_id }),
    ];
    let observation =
        (symbol(), decimal(), time()).prop_map(|(symbol, price, observed_at)| Observation {
            symbol,
            price,
            observed_at,
        });
    (
        (any::<u64>(), any::<u64>(), time(), time(), time()),
        observation,
        outcome,
        text(),
    )
        .prop_map(
            |(
                (session, tick_no, scheduled_at, started_at, completed_at),
                observation,
                outcome,
                c,
            )| {
                AgentEvent::AgentRunRecorded {
                    session,
                    tick_no,
                    scheduled_at,
                    started_at,
                    completed_at,
                    observation,
                    outcome,
                    correlation_id: c,
                }
            },
        )
}

/// The fields `OrderPlaced` and `OrderRejected` share.
#[derive(Debug, Clone)]
struct Ticket {
    order_id: String,
    symbol: Symbol,
    side: Side,
    qty: Decimal,
    observation: ObservedPrice,
    fill_model: FillModel,
    at: DateTime<Utc>,
}

fn ticket() -> impl Strategy<Value = Ticket> {
    (
        text(),
        symbol(),
        side(),
        decimal(),
        (decimal(), time()).prop_map(|(price, observed_at)| ObservedPrice { price, observed_at }),
        (decimal(), decimal()).prop_map(|(slippage_bps, fee_bps)| FillModel {
            slippage_bps,
            fee_bps,
        }),
        time(),
    )
        .prop_map(
            |(order_id, symbol, side, qty, observation, fill_model, at)| Ticket {
                order_id,
                symbol,
                side,
                qty,
                observation,
                fill_model,
                at,
            },
        )
}

fn risk_code() -> impl Strategy<Value = RiskCode> {
    proptest::sample::select(RiskCode::ALL.to_vec())
}

fn order_event() -> impl Strategy<Value = AgentEvent> {
    let placed = ticket().prop_map(|t| AgentEvent::OrderPlaced {
        order_id: t.order_id,
        symbol: t.symbol,
        side: t.side,
        qty: t.qty,
        observation: t.observation,
        fill_model: t.fill_model,
        placed_at: t.at,
    });
    let rejected = (ticket(), risk_code(), text()).prop_map(|(t, reason_code, reason)| {
        AgentEvent::OrderRejected {
            order_id: t.order_id,
            symbol: t.symbol,
            side: t.side,
            qty: t.qty,
            observation: t.observation,
            fill_model: t.fill_model,
            reason_code,
            reason,
            rejected_at: t.at,
        }
    });
    let filled = (text(), side(), (decimal(), decimal(), decimal()), time()).prop_map(
        |(order_id, side, (price, qty, fee), at)| AgentEvent::OrderFilled {
            order_id,
            side,
            qty,
            price,
            fee,
            filled_at: at,
        },
    );
    prop_oneof![placed, rejected, filled]
}

fn backtest_event() -> impl Strategy<Value = BacktestEvent> {
    let source = prop_oneof![
        (any::<u64>(), text()).prop_map(|(bytes, sha256)| BacktestSource::Csv { bytes, sha256 }),
        (any::<u64>(), time(), time(), any::<u32>()).prop_map(|(seed, from, to, step_s)| {
            BacktestSource::Sim {
                seed,
                from,
                to,
                step_s,
            }
        }),
        text().prop_map(|agent_id| BacktestSource::Observations { agent_id }),
    ];
    let requested = (
        (text(), text(), proptest::option::of(text())),
        config(),
        source,
        (decimal(), decimal()),
        time(),
    )
        .prop_map(
            |((backtest_id, owner, agent_id), config, source, (slippage_bps, fee_bps), at)| {
                BacktestEvent::BacktestRequested {
                    backtest_id,
                    owner,
                    agent_id,
                    config,
                    source,
                    fill_model: FillModel {
                        slippage_bps,
                        fee_bps,
                    },
                    requested_at: at,
                }
            },
        );
    let summary = (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        (decimal(), decimal(), decimal(), decimal(), decimal()),
    )
        .prop_map(
            |(
                (bars, orders, fills),
                (final_cash, final_position, final_equity, pnl, return_pct),
            )| {
                BacktestSummary {
                    bars,
                    orders,
                    fills,
                    final_cash,
                    final_position,
                    final_equity,
                    pnl,
                    return_pct,
                }
            },
        );
    prop_oneof![
        requested,
        time().prop_map(|started_at| BacktestEvent::BacktestStarted { started_at }),
        (summary, time()).prop_map(|(summary, completed_at)| BacktestEvent::BacktestCompleted {
            summary,
            completed_at
        }),
        (text(), time())
            .prop_map(|(error, failed_at)| BacktestEvent::BacktestFailed { error, failed_at }),
        time().prop_map(|cancelled_at| BacktestEvent::BacktestCancelled { cancelled_at }),
    ]
}

fn any_event() -> impl Strategy<Value = StromEvent> {
    prop_oneof![
        agent_event().prop_map(StromEvent::from),
        order_event().prop_map(StromEvent::from),
        backtest_event().prop_map(StromEvent::from),
    ]
}

fn decode_as_stored(event: &StromEvent, payload: Payload<'_>) -> Result<StromEvent, DecodeError> {
    decode(
        event.aggregate_type(),
        event.event_type(),
        event.event_version(),
        payload,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_event_type_round_trips_through_the_edge(event in any_event()) {
        let payload = encode(&event);
        prop_assert_eq!(&decode_as_stored(&event, Payload::Json(&payload)).unwrap(), &event);
        let text = serde_json::to_string(&payload).unwrap();
        prop_assert_eq!(&decode_as_stored(&event, Payload::Text(&text)).unwrap(), &event);
        // What Postgres stores and hashes (jsonb's text form) decodes to the same event too.
        let stored = jsonb_text(&payload);
        prop_assert_eq!(&decode_as_stored(&event, Payload::Text(&stored)).unwrap(), &event);
        prop_assert_eq!(current_version(event.aggregate_type(), event.event_type()), Some(event.event_version()));
    }

    #[test]
    fn an_agent_created_stored_as_version_1_decodes_to_its_upcast_version_2(event in agent_event()) {
        let AgentEvent::AgentCreated { starting_cash, .. } = &event else {
            return Ok(());
        };
        let starting_cash = *starting_cash;
        let mut payload = encode(&StromEvent::Agent(event.clone()));
        let fields = payload["AgentCreated"].as_object_mut().unwrap();
        fields.remove("risk");
        fields.remove("seed");
        let decoded = decode("Agent", "AgentCreated", "1", Payload::Json(&payload)).unwrap();
        let StromEvent::Agent(AgentEvent::AgentCreated { risk, seed, .. }) = &decoded else {
            panic!("decoded {decoded:?}");
        };
        prop_assert_eq!(risk, &RiskLimits::for_starting_cash(starting_cash));
        prop_assert_eq!(*seed, crate::upcast::V1_DEFAULT_SEED);
        let text = serde_json::to_string(&payload).unwrap();
        prop_assert_eq!(&decode("Agent", "AgentCreated", "1", Payload::Text(&text)).unwrap(), &decoded);
    }
}

#[test]
fn unknown_aggregates_versions_and_malformed_payloads_are_errors_that_say_which() {
    let archived =
        serde_json::json!({"AgentArchived": {"archived_at": "2026-11-22T10:00:00.000Z"}});
    assert!(decode("Agent", "AgentArchived", "1", Payload::Json(&archived)).is_ok());
    assert!(matches!(
        decode("Robot", "AgentArchived", "1", Payload::Json(&archived)),
        Err(DecodeError::UnknownAggregateType { .. })
    ));
    assert!(matches!(
        decode("Agent", "AgentArchived", "2", Payload::Json(&archived)),
        Err(DecodeError::UnknownEventVersion { .. })
    ));
    assert!(matches!(
        decode("Agent", "AgentStopped", "1", Payload::Json(&archived)),
        Err(DecodeError::MalformedPayload { .. })
    ));
    let extra =
        serde_json::json!({"AgentArchived": {"archived_at": "2026-11-22T10:00:00.000Z", "x": 1}});
    assert!(matches!(
        decode("Agent", "AgentArchived", "1", Payload::Json(&extra)),
        Err(DecodeError::MalformedPayload { .. })
    ));
    assert!(matches!(
        decode("Agent", "AgentArchived", "1", Payload::Text("{not json")),
        Err(DecodeError::MalformedPayload { .. })
    ));
    let v1_garbage: Value = serde_json::json!({"Something": 1});
    assert!(matches!(
        decode("Agent", "AgentCreated", "1", Payload::Json(&v1_garbage)),
        Err(DecodeError::MalformedPayload { .. })
    ));
}
