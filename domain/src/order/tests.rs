//! Given/when/then tests of the Order aggregate: placing (accepted or risk-rejected), filling, cancelling.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

use super::*;
use crate::error::ErrorKind;

const AGENT_ID: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

fn order() -> TestFramework<Order> {
    TestFramework::with(())
}

fn t(seconds: i64) -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(seconds)
}

fn order_id() -> String {
    paper_order_id(AGENT_ID, 1, 3)
}

fn limits() -> RiskLimits {
    RiskLimits {
        max_position_qty: dec!(10),
        max_order_qty: dec!(5),
        max_notional: dec!(1000),
        max_daily_loss: None,
    }
}

fn context(position_qty: Decimal, cash: Decimal) -> RiskContext {
    RiskContext {
        position_qty,
        cash,
        limits: limits(),
    }
}

fn observed(price: Decimal) -> ObservedPrice {
    ObservedPrice {
        price,
        observed_at: t(0),
    }
}

fn fees() -> FillModel {
    FillModel {
        slippage_bps: dec!(10),
        fee_bps: dec!(5),
    }
}

fn place(side: Side, qty: Decimal, price: Decimal, risk_context: RiskContext) -> OrderCommand {
    OrderCommand::PlaceOrder {
        order_id: order_id(),
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        symbol: Symbol::parse("BTC-USD").unwrap(),
        side,
        qty,
        observation: observed(price),
        risk_context,
        fill_model: fees(),
        at: t(1),
    }
}

fn placed(side: Side, qty: Decimal, price: Decimal, risk_context: RiskContext) -> OrderEvent {
    OrderEvent::OrderPlaced {
        order_id: order_id(),
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        symbol: Symbol::parse("BTC-USD").unwrap(),
        side,
        qty,
        observation: observed(price),
        risk_context,
        fill_model: fees(),
        placed_at: t(1),
    }
}

fn rejected(
    side: Side,
    qty: Decimal,
    price: Decimal,
    risk_context: RiskContext,
    code: RiskCode,
    reason: &str,
) -> OrderEvent {
    OrderEvent::OrderRejected {
        order_id: order_id(),
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        symbol: Symbol::parse("BTC-USD").unwrap(),
        side,
        qty,
        observation: observed(price),
        risk_context,
        fill_model: fees(),
        reason_code: code,
        reason: reason.into(),
        rejected_at: t(1),
    }
}

fn buy_placed() -> OrderEvent {
    placed(Side::Buy, dec!(2), dec!(100), context(dec!(0), dec!(1000)))
}

fn buy_rejected() -> OrderEvent {
    rejected(
        Side::Sell,
        dec!(1),
        dec!(100),
        context(dec!(0), dec!(1000)),
        RiskCode::InsufficientPosition,
        "sell qty 1 exceeds position 0 (long-only)",
    )
}

fn filled() -> OrderEvent {
    OrderEvent::OrderFilled {
        price: dec!(100.1),
        qty: dec!(2),
        fee: dec!(0.1001),
        filled_at: t(2),
    }
}

fn cancelled() -> OrderEvent {
    OrderEvent::OrderCancelled {
        reason: "agent stopped".into(),
        cancelled_at: t(2),
    }
}

fn invalid(field: &str) -> impl Fn(OrderError) {
    let field = field.to_owned();
    move |error| assert_eq!(error.field(), Some(field.as_str()), "{error:?}")
}

fn expect_error<F: Fn(OrderError)>(given: Vec<OrderEvent>, when: OrderCommand, check: F) {
    check(
        order()
            .given(given)
            .when(when)
            .inspect_result()
            .expect_err("expected a refusal"),
    );
}

// ---- PlaceOrder --------------------------------------------------------------------------------------

#[test]
fn placing_an_order_within_the_limits_accepts_it() {
    order()
        .given_no_previous_events()
        .when(place(
            Side::Buy,
            dec!(2),
            dec!(100),
            context(dec!(0), dec!(1000)),
        ))
        .then_expect_events(vec![buy_placed()]);
}

#[test]
fn placing_an_order_a_risk_rule_refuses_records_the_rejection_and_its_reason() {
    order()
        .given_no_previous_events()
        .when(place(
            Side::Sell,
            dec!(1),
            dec!(100),
            context(dec!(0), dec!(1000)),
        ))
        .then_expect_events(vec![buy_rejected()]);
}

#[test]
fn the_risk_check_prices_the_order_as_it_will_fill() {
    // 2 × 100 × 1.001 = 200.2, fee 0.1001: 200.3001 > 200.3 cash, though 2 × 100 = 200 would fit.
    order()
        .given_no_previous_events()
        .when(place(
            Side::Buy,
            dec!(2),
            dec!(100),
            context(dec!(0), dec!(200.3)),
        ))
        .then_expect_events(vec![rejected(
            Side::Buy,
            dec!(2),
            dec!(100),
            context(dec!(0), dec!(200.3)),
            RiskCode::InsufficientCash,
            "cost 200.3001 (incl. fee 0.1001) exceeds cash 200.3",
        )]);
}

#[test]
fn placing_an_order_that_exists_is_rejected() {
    for (given, state) in [
        (vec![buy_placed()], OrderState::Accepted),
        (vec![buy_rejected()], OrderState::Rejected),
        (vec![buy_placed(), filled()], OrderState::Filled),
    ] {
        order()
            .given(given)
            .when(place(
                Side::Buy,
                dec!(2),
                dec!(100),
                context(dec!(0), dec!(1000)),
            ))
            .then_expect_error(OrderError::OrderAlreadyExists { state });
    }
}

#[test]
fn placing_an_order_for_no_units_is_rejected() {
    expect_error(
        vec![],
        place(Side::Buy, dec!(0), dec!(100), context(dec!(0), dec!(1000))),
        invalid("qty"),
    );
}

#[test]
fn placing_an_order_on_a_non_positive_price_is_rejected() {
    expect_error(
        vec![],
        place(Side::Buy, dec!(1), dec!(-1), context(dec!(0), dec!(1000))),
        invalid("observation.price"),
    );
}

#[test]
fn placing_an_order_with_a_short_position_is_rejected() {
    expect_error(
        vec![],
        place(Side::Buy, dec!(1), dec!(1), context(dec!(-1), dec!(1000))),
        invalid("risk_context.position_qty"),
    );
}

#[test]
fn placing_an_order_with_invalid_limits_is_rejected_naming_the_limit() {
    let mut risk_context = context(dec!(0), dec!(1000));
    risk_context.limits.max_notional = dec!(0);
    expect_error(
        vec![],
        place(Side::Buy, dec!(1), dec!(1), risk_context),
        invalid("risk_context.limits.max_notional"),
    );
}

#[test]
fn placing_an_order_with_an_invalid_fill_model_is_rejected() {
    let mut command = place(Side::Buy, dec!(1), dec!(1), context(dec!(0), dec!(1000)));
    if let OrderCommand::PlaceOrder { fill_model, .. } = &mut command {
        fill_model.slippage_bps = dec!(10000);
    }
    expect_error(vec![], command, invalid("fill_model.slippage_bps"));
}

#[test]
fn placing_an_order_with_an_unsafe_id_is_rejected() {
    let mut command = place(Side::Buy, dec!(1), dec!(1), context(dec!(0), dec!(1000)));
    if let OrderCommand::PlaceOrder { order_id, .. } = &mut command {
        *order_id = "a b".into();
    }
    expect_error(vec![], command, invalid("order_id"));
}

#[test]
fn placing_an_order_whose_value_overflows_is_rejected_not_panicking() {
    let mut risk_context = context(dec!(0), Decimal::MAX);
    risk_context.limits.max_order_qty = Decimal::MAX;
    expect_error(
        vec![],
        place(Side::Buy, Decimal::MAX, dec!(100), risk_context),
        invalid("qty"),
    );
}

// ---- FillOrder ---------------------------------------------------------------------------------------

#[test]
fn filling_an_accepted_order_prices_it_from_its_own_observation() {
    // Buy 2 observed at 100 with 10 bps slippage → 100.1; fee 5 bps of 200.2 = 0.1001.
    order()
        .given(vec![buy_placed()])
        .when(OrderCommand::FillOrder { at: t(2) })
        .then_expect_events(vec![filled()]);
}

#[test]
fn filling_a_sell_moves_the_price_down() {
    let events = order()
        .given(vec![placed(
            Side::Sell,
            dec!(1),
            dec!(100),
            context(dec!(1), dec!(0)),
        )])
        .when(OrderCommand::FillOrder { at: t(2) })
        .inspect_result()
        .unwrap();
    assert_eq!(
        events,
        vec![OrderEvent::OrderFilled {
            price: dec!(99.9),
            qty: dec!(1),
            fee: dec!(0.04995),
            filled_at: t(2)
        }]
    );
}

#[test]
fn filling_a_filled_order_is_rejected() {
    order()
        .given(vec![buy_placed(), filled()])
        .when(OrderCommand::FillOrder { at: t(3) })
        .then_expect_error(OrderError::OrderAlreadyFilled {
            state: OrderState::Filled,
        });
}

#[test]
fn filling_a_rejected_order_is_rejected() {
    order()
        .given(vec![buy_rejected()])
        .when(OrderCommand::FillOrder { at: t(3) })
        .then_expect_error(OrderError::OrderNotOpen {
            state: OrderState::Rejected,
        });
}

#[test]
fn filling_a_cancelled_order_is_rejected() {
    order()
        .given(vec![buy_placed(), cancelled()])
        .when(OrderCommand::FillOrder { at: t(3) })
        .then_expect_error(OrderError::OrderNotOpen {
            state: OrderState::Cancelled,
        });
}

#[test]
fn filling_an_order_that_does_not_exist_is_rejected() {
    order()
        .given_no_previous_events()
        .when(OrderCommand::FillOrder { at: t(3) })
        .then_expect_error(OrderError::OrderNotFound);
}

#[test]
fn a_filled_order_keeps_its_fill_for_settlement() {
    let mut o = Order::default();
    o.apply(buy_placed());
    o.apply(filled());
    assert_eq!(o.state(), OrderState::Filled);
    assert_eq!(
        o.fill(),
        Some(&Fill {
            side: Side::Buy,
            qty: dec!(2),
            price: dec!(100.1),
            fee: dec!(0.1001)
        })
    );
}

// ---- CancelOrder -------------------------------------------------------------------------------------

#[test]
fn cancelling_an_accepted_order_records_why() {
    order()
        .given(vec![buy_placed()])
        .when(OrderCommand::CancelOrder {
            at: t(2),
            reason: "agent stopped".into(),
        })
        .then_expect_events(vec![cancelled()]);
}

#[test]
fn cancelling_an_order_that_is_not_open_is_rejected() {
    for (given, state) in [
        (vec![buy_placed(), filled()], OrderState::Filled),
        (vec![buy_rejected()], OrderState::Rejected),
        (vec![buy_placed(), cancelled()], OrderState::Cancelled),
    ] {
        order()
            .given(given)
            .when(OrderCommand::CancelOrder {
                at: t(3),
                reason: "x".into(),
            })
            .then_expect_error(OrderError::OrderNotOpen { state });
    }
}

#[test]
fn cancelling_without_a_reason_is_rejected() {
    expect_error(
        vec![buy_placed()],
        OrderCommand::CancelOrder {
            at: t(3),
            reason: "".into(),
        },
        invalid("reason"),
    );
}

#[test]
fn cancelling_an_order_that_does_not_exist_is_rejected() {
    order()
        .given_no_previous_events()
        .when(OrderCommand::CancelOrder {
            at: t(3),
            reason: "x".into(),
        })
        .then_expect_error(OrderError::OrderNotFound);
}

// ---- Ids, events and errors on the wire --------------------------------------------------------------

#[test]
fn order_ids_are_derived_from_the_tick_or_the_bar() {
    assert_eq!(paper_order_id("a1", 2, 17), "a1-2-17");
    assert_eq!(backtest_order_id("b1", 99), "b1-99");
}

#[test]
fn events_serialize_externally_tagged_and_round_trip() {
    assert_eq!(
        serde_json::to_value(buy_rejected()).unwrap(),
        json!({"OrderRejected": {
            "order_id": order_id(),
            "agent_id": AGENT_ID,
            "owner": "alice",
            "symbol": "BTC-USD",
            "side": "sell",
            "qty": "1",
            "observation": {"price": "100", "observed_at": "2026-11-22T10:00:00.000Z"},
            "risk_context": {"position_qty": "0", "cash": "1000", "limits": {"max_position_qty": "10", "max_order_qty": "5", "max_notional": "1000", "max_daily_loss": null}},
            "fill_model": {"slippage_bps": "10", "fee_bps": "5"},
            "reason_code": "insufficient_position",
            "reason": "sell qty 1 exceeds position 0 (long-only)",
            "rejected_at": "2026-11-22T10:00:01.000Z"
        }})
    );
    for event in [buy_placed(), buy_rejected(), filled(), cancelled()] {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().next().unwrap(),
            &event.event_type()
        );
        assert_eq!(event.event_version(), "1");
        assert_eq!(serde_json::from_value::<OrderEvent>(json).unwrap(), event);
    }
}

#[test]
fn stored_events_with_unknown_fields_do_not_deserialize() {
    let mut event = serde_json::to_value(buy_placed()).unwrap();
    event["OrderPlaced"]["risk_context"]["limits"]["max_leverage"] = json!("2");
    assert!(serde_json::from_value::<OrderEvent>(event).is_err());
    let mut event = serde_json::to_value(buy_placed()).unwrap();
    event["OrderPlaced"]["fill_model"]["rebate_bps"] = json!("1");
    assert!(serde_json::from_value::<OrderEvent>(event).is_err());
    let mut event = serde_json::to_value(filled()).unwrap();
    event["OrderFilled"]["venue"] = json!("x");
    assert!(serde_json::from_value::<OrderEvent>(event).is_err());
}

#[test]
fn errors_serialize_with_their_code_and_state() {
    let errors = [
        OrderError::OrderAlreadyExists {
            state: OrderState::Filled,
        },
        OrderError::OrderNotFound,
        OrderError::OrderAlreadyFilled {
            state: OrderState::Filled,
        },
        OrderError::OrderNotOpen {
            state: OrderState::Rejected,
        },
        OrderError::ValidationFailed(ValidationError::new("qty", "must be > 0")),
    ];
    let codes: Vec<&str> = errors.iter().map(OrderError::code).collect();
    assert_eq!(
        codes,
        OrderError::all_codes(),
        "one error per variant, in order"
    );
    for error in errors {
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["code"], json!(error.code()));
        if let Some(state) = error.current_state() {
            assert_eq!(json["state"], json!(state));
        }
    }
    assert_eq!(OrderError::OrderNotFound.kind(), ErrorKind::NotFound);
}
