//! An agent's configuration: what it trades, with which strategy, how often, within which risk limits and
//! with how much cash. The wire form of a strategy is `{kind, params}`; [`StrategySpec::resolve`] fills in
//! the documented defaults and checks the ranges, giving the typed [`Strategy`] the decision code uses.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::symbol::Symbol;

/// Longest agent name, in characters: fits a dashboard row and a Telegram line.
pub const MAX_NAME_CHARS: usize = 80;
/// Fastest tick: once a second (the scheduler's resolution).
pub const MIN_FREQUENCY_S: u32 = 1;
/// Slowest tick: once a day; anything slower is a cron job, not an agent.
pub const MAX_FREQUENCY_S: u32 = 86_400;

/// The fast average of `sma_crossover`, in bars; must stay shorter than the slow one.
pub const SMA_FAST: ParamSpec = ParamSpec::integer("fast", 10, 1, 500, "bars in the fast average");
/// The slow average of `sma_crossover`, in bars. Its maximum sets the longest price history any strategy needs
/// (see `agent::MAX_PRICE_WINDOW`), so it bounds the state every agent carries. Its real minimum is `fast + 1`.
pub const SMA_SLOW: ParamSpec = ParamSpec::integer(
    "slow",
    30,
    2,
    2_000,
    "bars in the slow average; must exceed fast",
);
/// The averaging window of `mean_reversion`, in bars.
pub const MEAN_REVERSION_WINDOW: ParamSpec =
    ParamSpec::integer("window", 20, 2, 500, "bars in the moving average");
/// How far from its average the price must move for `mean_reversion` to trade, in percent.
pub const MEAN_REVERSION_THRESHOLD_PCT: ParamSpec = ParamSpec::positive_decimal(
    "threshold_pct",
    Decimal::TWO,
    "distance from the average that triggers a trade, in percent; > 0",
);
/// Units per order of every trading strategy.
pub const STRATEGY_QTY: ParamSpec =
    ParamSpec::positive_decimal("qty", Decimal::ONE, "units per order; > 0");
/// Largest slow window (see [`SMA_SLOW`]).
pub const SMA_SLOW_MAX: u32 = SMA_SLOW.integer_bounds().2;

/// The predefined strategies with their parameters: what `StrategySpec::resolve` accepts and what
/// `GET /api/v1/strategies` serves, declared once.
pub const STRATEGIES: [StrategyInfo; 3] = [
    StrategyInfo {
        kind: StrategyKind::Hold,
        description: "Never trades; records an observation each tick (the default).",
        params: &[],
    },
    StrategyInfo {
        kind: StrategyKind::SmaCrossover,
        description: "Buys when the fast simple moving average crosses above the slow one, sells when it crosses below.",
        params: &[SMA_FAST, SMA_SLOW, STRATEGY_QTY],
    },
    StrategyInfo {
        kind: StrategyKind::MeanReversion,
        description: "Buys when the price falls threshold_pct below its moving average, sells when it rises that far above.",
        params: &[MEAN_REVERSION_WINDOW, MEAN_REVERSION_THRESHOLD_PCT, STRATEGY_QTY],
    },
];

/// One strategy of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StrategyInfo {
    pub kind: StrategyKind,
    pub description: &'static str,
    pub params: &'static [ParamSpec],
}

impl StrategyInfo {
    fn param_names(&self) -> Vec<&'static str> {
        self.params.iter().map(|p| p.name).collect()
    }
}

/// What values a strategy parameter takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A whole number in `min..=max`.
    Integer { default: u32, min: u32, max: u32 },
    /// A decimal > 0 (JSON string, or a number read from its text).
    PositiveDecimal { default: Decimal },
}

/// One strategy parameter: name, range, default and what it means. Serializes as the catalogue entry
/// `{"name", "type": "integer"|"decimal", "default", "min", "max", "description"}` (numbers as strings, `null` where
/// there is no bound).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub description: &'static str,
}

impl ParamSpec {
    const fn integer(
        name: &'static str,
        default: u32,
        min: u32,
        max: u32,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind: ParamKind::Integer { default, min, max },
            description,
        }
    }

    const fn positive_decimal(
        name: &'static str,
        default: Decimal,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind: ParamKind::PositiveDecimal { default },
            description,
        }
    }

    /// `(default, min, max)` of an integer parameter (zeros for a decimal one).
    pub const fn integer_bounds(&self) -> (u32, u32, u32) {
        match self.kind {
            ParamKind::Integer { default, min, max } => (default, min, max),
            ParamKind::PositiveDecimal { .. } => (0, 0, 0),
        }
    }

    /// The default of a decimal parameter (zero for an integer one).
    pub const fn decimal_default(&self) -> Decimal {
        match self.kind {
            ParamKind::PositiveDecimal { default } => default,
            ParamKind::Integer { .. } => Decimal::ZERO,
        }
    }
}

impl Serialize for ParamSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (kind, default, min, max) = match self.kind {
            ParamKind::Integer { default, min, max } => (
                "integer",
                default.to_string(),
                Some(min.to_string()),
                Some(max.to_string()),
            ),
            ParamKind::PositiveDecimal { default } => ("decimal", default.to_string(), None, None),
        };
        let mut entry = serializer.serialize_struct("StrategyParam", 6)?;
        entry.serialize_field("name", self.name)?;
        entry.serialize_field("type", kind)?;
        entry.serialize_field("default", &default)?;
        entry.serialize_field("min", &min)?;
        entry.serialize_field("max", &max)?;
        entry.serialize_field("description", self.description)?;
        entry.end()
    }
}

/// The predefined strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    SmaCrossover,
    MeanReversion,
    Hold,
}

impl StrategyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::SmaCrossover => "sma_crossover",
            StrategyKind::MeanReversion => "mean_reversion",
            StrategyKind::Hold => "hold",
        }
    }

    /// This strategy's entry in [`STRATEGIES`].
    pub fn info(self) -> &'static StrategyInfo {
        // Every kind has exactly one entry (a unit test checks it), so the fallback is never taken.
        STRATEGIES
            .iter()
            .find(|info| info.kind == self)
            .unwrap_or(&STRATEGIES[0])
    }
}

/// A strategy as requests and events carry it: `{"kind": "sma_crossover", "params": {"fast": 10, ...}}`.
/// Events always hold the resolved form (every parameter explicit; integers as numbers, decimals as
/// strings), so a later change of defaults never changes what a recorded agent did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    pub kind: StrategyKind,
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl Default for StrategySpec {
    /// `hold`: the M1 default, never trades.
    fn default() -> Self {
        Strategy::Hold.to_spec()
    }
}

/// Simple-moving-average crossover: buy when the fast average crosses above the slow one, sell when it
/// crosses below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmaCrossover {
    pub fast: u32,
    pub slow: u32,
    pub qty: Decimal,
}

/// Mean reversion: buy when the price drops `threshold_pct` below its `window`-bar average, sell when it
/// rises that far above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeanReversion {
    pub window: u32,
    pub threshold_pct: Decimal,
    pub qty: Decimal,
}

/// A validated strategy with all parameters set. Kept in the Agent's state so a run never re-parses JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    Hold,
    SmaCrossover(SmaCrossover),
    MeanReversion(MeanReversion),
}

impl Strategy {
    /// How many of the latest prices the strategy looks at: one more than its longest average, because a
    /// signal is a *change* between the previous bar and this one.
    pub fn required_window(&self) -> usize {
        match self {
            Strategy::Hold => 0,
            Strategy::SmaCrossover(p) => p.slow as usize + 1,
            Strategy::MeanReversion(p) => p.window as usize + 1,
        }
    }

    /// Units per order, if the strategy trades at all.
    pub fn qty(&self) -> Option<Decimal> {
        match self {
            Strategy::Hold => None,
            Strategy::SmaCrossover(p) => Some(p.qty),
            Strategy::MeanReversion(p) => Some(p.qty),
        }
    }

    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::Hold => StrategyKind::Hold,
            Strategy::SmaCrossover(_) => StrategyKind::SmaCrossover,
            Strategy::MeanReversion(_) => StrategyKind::MeanReversion,
        }
    }

    /// The wire form with every parameter explicit.
    pub fn to_spec(&self) -> StrategySpec {
        let mut params = Map::new();
        match self {
            Strategy::Hold => {}
            Strategy::SmaCrossover(p) => {
                params.insert("fast".into(), p.fast.into());
                params.insert("slow".into(), p.slow.into());
                params.insert("qty".into(), p.qty.to_string().into());
            }
            Strategy::MeanReversion(p) => {
                params.insert("window".into(), p.window.into());
                params.insert("threshold_pct".into(), p.threshold_pct.to_string().into());
                params.insert("qty".into(), p.qty.to_string().into());
            }
        }
        StrategySpec {
            kind: self.kind(),
            params,
        }
    }
}

impl StrategySpec {
    /// Applies the defaults and checks every parameter.
    ///
    /// # Errors
    /// A [`ValidationError`] naming `strategy.params.<name>` for an unknown, mistyped or out-of-range
    /// parameter.
    pub fn resolve(&self) -> Result<Strategy, ValidationError> {
        let params = Params(&self.params);
        params.allow_only(&self.kind.info().param_names())?;
        match self.kind {
            StrategyKind::Hold => Ok(Strategy::Hold),
            StrategyKind::SmaCrossover => {
                let fast = params.int(&SMA_FAST, None)?;
                let slow = params.int(&SMA_SLOW, Some(fast + 1))?;
                let qty = params.positive_decimal(&STRATEGY_QTY)?;
                Ok(Strategy::SmaCrossover(SmaCrossover { fast, slow, qty }))
            }
            StrategyKind::MeanReversion => {
                let window = params.int(&MEAN_REVERSION_WINDOW, None)?;
                let threshold_pct = params.positive_decimal(&MEAN_REVERSION_THRESHOLD_PCT)?;
                let qty = params.positive_decimal(&STRATEGY_QTY)?;
                Ok(Strategy::MeanReversion(MeanReversion {
                    window,
                    threshold_pct,
                    qty,
                }))
            }
        }
    }
}

/// Reads strategy parameters out of the JSON map, naming the field in every error.
struct Params<'a>(&'a Map<String, Value>);

impl Params<'_> {
    fn field(name: &str) -> String {
        format!("strategy.params.{name}")
    }

    /// Rejects the (bytewise smallest, so the error is stable) parameter the strategy doesn't know.
    fn allow_only(&self, known: &[&str]) -> Result<(), ValidationError> {
        let unknown = self.0.keys().filter(|k| !known.contains(&k.as_str())).min();
        match unknown {
            None => Ok(()),
            Some(name) => Err(ValidationError::new(
                Self::field(name),
                format!("unknown parameter (expected one of: {})", known.join(", ")),
            )),
        }
    }

    /// An integer parameter, its default when absent; `min` overrides the spec's minimum (`slow` > `fast`).
    fn int(&self, spec: &ParamSpec, min: Option<u32>) -> Result<u32, ValidationError> {
        let (default, spec_min, max) = spec.integer_bounds();
        let (name, min) = (spec.name, min.unwrap_or(spec_min));
        let Some(value) = self.0.get(name) else {
            return check_range(name, default, min, max);
        };
        let parsed = value.as_u64().and_then(|n| u32::try_from(n).ok());
        match parsed {
            Some(n) => check_range(name, n, min, max),
            None => Err(ValidationError::new(
                Self::field(name),
                format!("must be an integer in {min}..={max} (got {value})"),
            )),
        }
    }

    fn positive_decimal(&self, spec: &ParamSpec) -> Result<Decimal, ValidationError> {
        let Some(value) = self.0.get(spec.name) else {
            return Ok(spec.decimal_default());
        };
        match decimal_from_json(value) {
            Some(d) if d > Decimal::ZERO => Ok(d),
            _ => Err(ValidationError::new(
                Self::field(spec.name),
                format!("must be a decimal > 0, preferably as a string like \"1.5\" (got {value})"),
            )),
        }
    }
}

fn check_range(name: &str, n: u32, min: u32, max: u32) -> Result<u32, ValidationError> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(ValidationError::new(
            Params::field(name),
            format!("must be in {min}..={max} (got {n})"),
        ))
    }
}

/// A decimal from a JSON string ("1.5") or number (1.5, read from its text so no binary float rounding
/// sneaks in).
fn decimal_from_json(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    text.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// Exposure caps checked before every order (see `check::risk`). All must be > 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLimits {
    /// Largest long position, in units, after any buy.
    pub max_position_qty: Decimal,
    /// Largest single order, in units, either side.
    pub max_order_qty: Decimal,
    /// Largest position value (qty × order price) after any buy.
    pub max_notional: Decimal,
    /// Recorded for the runtime, which may stop an agent after this loss in a day; `check::risk` does not
    /// evaluate it (it needs the day's PnL, which an order does not carry). Always written, as `null`
    /// when unset, so an event shows that no limit was chosen; read as unset when absent.
    #[serde(default)]
    pub max_daily_loss: Option<Decimal>,
}

/// `max_position_qty` and `max_order_qty` of [`RiskLimits::for_starting_cash`]: one unit, the default order
/// size of every strategy, so an agent trades as configured by default and anything larger is refused with
/// a recorded reason rather than silently allowed.
pub const DEFAULT_MAX_QTY: Decimal = Decimal::ONE;

impl RiskLimits {
    /// The limits an agent gets when none are chosen (the API's default, and what `AgentCreated` v1 is
    /// upcast with): one unit per order and held, and a position never worth more than the cash the agent
    /// started with (a fixed amount would be far too loose for a small agent and too tight for a big one).
    /// No daily loss limit.
    pub fn for_starting_cash(starting_cash: Decimal) -> Self {
        Self {
            max_position_qty: DEFAULT_MAX_QTY,
            max_order_qty: DEFAULT_MAX_QTY,
            max_notional: starting_cash,
            max_daily_loss: None,
        }
    }

    /// # Errors
    /// A [`ValidationError`] naming `risk.<limit>` when a limit is not > 0.
    pub fn validate(&self) -> Result<(), ValidationError> {
        positive("risk.max_position_qty", self.max_position_qty)?;
        positive("risk.max_order_qty", self.max_order_qty)?;
        positive("risk.max_notional", self.max_notional)?;
        if let Some(loss) = self.max_daily_loss {
            positive("risk.max_daily_loss", loss)?;
        }
        Ok(())
    }
}

fn positive(field: &str, value: Decimal) -> Result<(), ValidationError> {
    if value > Decimal::ZERO {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be > 0 (got {value})"),
        ))
    }
}

/// Everything a user chooses about an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub name: String,
    pub symbol: Symbol,
    pub strategy: StrategySpec,
    pub frequency_s: u32,
    pub risk: RiskLimits,
    pub starting_cash: Decimal,
    /// Seed for any randomness the agent's run draws; recorded so a replay draws the same.
    pub seed: u64,
}

impl AgentConfig {
    /// # Errors
    /// The first [`ValidationError`] found, naming its field (`name`, `strategy.params.slow`,
    /// `frequency_s`, `risk.max_notional`, `starting_cash`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.normalized_strategy().map(|_| ())
    }

    /// The validated config with its strategy's defaults written out, plus the typed strategy.
    ///
    /// # Errors
    /// As [`AgentConfig::validate`].
    pub fn normalized(mut self) -> Result<(Self, Strategy), ValidationError> {
        let strategy = self.normalized_strategy()?;
        self.strategy = strategy.to_spec();
        Ok((self, strategy))
    }

    fn normalized_strategy(&self) -> Result<Strategy, ValidationError> {
        validate_name(&self.name)?;
        let strategy = self.strategy.resolve()?;
        if !(MIN_FREQUENCY_S..=MAX_FREQUENCY_S).contains(&self.frequency_s) {
            return Err(ValidationError::new(
                "frequency_s",
                format!(
                    "must be in {MIN_FREQUENCY_S}..={MAX_FREQUENCY_S} (got {})",
                    self.frequency_s
                ),
            ));
        }
        self.risk.validate()?;
        positive("starting_cash", self.starting_cash)?;
        Ok(strategy)
    }
}

fn validate_name(name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError::new("name", "must not be blank"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(ValidationError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters (got {chars})"),
        ));
    }
    Ok(())
}

/// `#[serde(default, deserialize_with = "present")]` on an optional request field that has no `null` in the contract
/// (specs/openapi.yaml): absent is `None`, a value is `Some`, and `null` is refused like any value of the wrong type
/// (serde alone would read it as absent).
///
/// # Errors
/// The inner type's error, also for `null`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// An agent as a user asks for it (`CreateAgentRequest`): everything but name, symbol, frequency and cash may be left
/// out and gets its documented default ([`NewAgent::into_config`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    pub name: String,
    pub symbol: Symbol,
    #[serde(default, deserialize_with = "present")]
    pub strategy: Option<StrategySpec>,
    pub frequency_s: u32,
    #[serde(default, deserialize_with = "present")]
    pub risk: Option<RiskLimits>,
    pub starting_cash: Decimal,
    #[serde(default, deserialize_with = "present")]
    pub seed: Option<u64>,
}

impl NewAgent {
    /// The full config: strategy `hold`, risk [`RiskLimits::for_starting_cash`] and `default_seed` where none is
    /// given. Validation of the rest happens when the agent is created.
    ///
    /// # Errors
    /// `starting_cash` is not > 0 (checked first: the default risk limits derive from it, so a bad cash is reported
    /// as itself, not as the limit made from it).
    pub fn into_config(self, default_seed: u64) -> Result<AgentConfig, ValidationError> {
        positive("starting_cash", self.starting_cash)?;
        Ok(AgentConfig {
            name: self.name,
            symbol: self.symbol,
            strategy: self.strategy.unwrap_or_default(),
            frequency_s: self.frequency_s,
            risk: self
                .risk
                .unwrap_or_else(|| RiskLimits::for_starting_cash(self.starting_cash)),
            starting_cash: self.starting_cash,
            seed: self.seed.unwrap_or(default_seed),
        })
    }
}

/// A partial update of an agent's config: each `Some` field replaces the current value whole (a new
/// `risk` or `strategy` replaces all of its parts).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfigPatch {
    #[serde(deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(deserialize_with = "present")]
    pub symbol: Option<Symbol>,
    #[serde(deserialize_with = "present")]
    pub strategy: Option<StrategySpec>,
    #[serde(deserialize_with = "present")]
    pub frequency_s: Option<u32>,
    #[serde(deserialize_with = "present")]
    pub risk: Option<RiskLimits>,
    #[serde(deserialize_with = "present")]
    pub starting_cash: Option<Decimal>,
    #[serde(deserialize_with = "present")]
    pub seed: Option<u64>,
}

impl AgentConfigPatch {
    /// # Errors
    /// The patch sets no field at all (field `""`: the whole request).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if *self == Self::default() {
            return Err(ValidationError::new(
                "",
                "a patch must set at least one field",
            ));
        }
        Ok(())
    }

    /// `current` with this patch's fields replaced (not yet validated).
    pub fn apply_to(&self, current: &AgentConfig) -> AgentConfig {
        let c = current.clone();
        AgentConfig {
            name: self.name.clone().unwrap_or(c.name),
            symbol: self.symbol.clone().unwrap_or(c.symbol),
            strategy: self.strategy.clone().unwrap_or(c.strategy),
            frequency_s: self.frequency_s.unwrap_or(c.frequency_s),
            risk: self.risk.clone().unwrap_or(c.risk),
            starting_cash: self.starting_cash.unwrap_or(c.starting_cash),
            seed: self.seed.unwrap_or(c.seed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn spec(value: Value) -> StrategySpec {
        serde_json::from_value(value).unwrap()
    }

    fn field_of(result: Result<Strategy, ValidationError>) -> String {
        result.unwrap_err().field
    }

    pub(crate) fn config() -> AgentConfig {
        AgentConfig {
            name: "btc trend".into(),
            symbol: Symbol::parse("BTC-USD").unwrap(),
            strategy: spec(json!({"kind": "sma_crossover", "params": {"fast": 2, "slow": 3}})),
            frequency_s: 60,
            risk: RiskLimits {
                max_position_qty: dec!(10),
                max_order_qty: dec!(5),
                max_notional: dec!(100000),
                max_daily_loss: None,
            },
            starting_cash: dec!(10000),
            seed: 7,
        }
    }

    #[test]
    fn sma_crossover_defaults_are_ten_thirty_and_one_unit() {
        let resolved = spec(json!({"kind": "sma_crossover"})).resolve().unwrap();
        assert_eq!(
            resolved,
            Strategy::SmaCrossover(SmaCrossover {
                fast: 10,
                slow: 30,
                qty: dec!(1)
            })
        );
        assert_eq!(
            serde_json::to_value(resolved.to_spec()).unwrap(),
            json!({"kind": "sma_crossover", "params": {"fast": 10, "slow": 30, "qty": "1"}})
        );
    }

    #[test]
    fn mean_reversion_defaults_are_twenty_bars_two_percent_one_unit() {
        let resolved = spec(json!({"kind": "mean_reversion", "params": {}}))
            .resolve()
            .unwrap();
        assert_eq!(
            resolved,
            Strategy::MeanReversion(MeanReversion {
                window: 20,
                threshold_pct: dec!(2),
                qty: dec!(1)
            })
        );
    }

    #[test]
    fn hold_takes_no_parameters() {
        assert_eq!(
            spec(json!({"kind": "hold"})).resolve().unwrap(),
            Strategy::Hold
        );
        assert_eq!(
            field_of(spec(json!({"kind": "hold", "params": {"qty": 1}})).resolve()),
            "strategy.params.qty"
        );
    }

    #[test]
    fn sma_slow_must_exceed_fast() {
        let at_fast = spec(json!({"kind": "sma_crossover", "params": {"fast": 5, "slow": 5}}));
        assert_eq!(field_of(at_fast.resolve()), "strategy.params.slow");
        let just_above = spec(json!({"kind": "sma_crossover", "params": {"fast": 5, "slow": 6}}));
        assert!(just_above.resolve().is_ok());
    }

    #[test]
    fn sma_ranges_are_checked_at_both_ends() {
        let ok = spec(json!({"kind": "sma_crossover", "params": {"fast": 500, "slow": 2000}}));
        assert!(ok.resolve().is_ok());
        for (params, field) in [
            (json!({"fast": 0}), "strategy.params.fast"),
            (json!({"fast": 501, "slow": 1000}), "strategy.params.fast"),
            (json!({"fast": 10, "slow": 2001}), "strategy.params.slow"),
            (json!({"fast": -1}), "strategy.params.fast"),
            (json!({"fast": 2.5}), "strategy.params.fast"),
            (json!({"fast": "10"}), "strategy.params.fast"),
            (json!({"qty": "0"}), "strategy.params.qty"),
            (json!({"qty": "-1"}), "strategy.params.qty"),
            (json!({"qty": "lots"}), "strategy.params.qty"),
            (json!({"fsat": 3}), "strategy.params.fsat"),
        ] {
            let s = spec(json!({"kind": "sma_crossover", "params": params}));
            assert_eq!(field_of(s.resolve()), field, "{params}");
        }
    }

    #[test]
    fn mean_reversion_ranges_are_checked() {
        for (params, field) in [
            (json!({"window": 1}), "strategy.params.window"),
            (json!({"window": 501}), "strategy.params.window"),
            (
                json!({"threshold_pct": "0"}),
                "strategy.params.threshold_pct",
            ),
            (json!({"qty": 0}), "strategy.params.qty"),
        ] {
            let s = spec(json!({"kind": "mean_reversion", "params": params}));
            assert_eq!(field_of(s.resolve()), field, "{params}");
        }
        let edges =
            spec(json!({"kind": "mean_reversion", "params": {"window": 2, "threshold_pct": 0.5}}));
        assert!(matches!(
            edges.resolve().unwrap(),
            Strategy::MeanReversion(MeanReversion { window: 2, threshold_pct, .. }) if threshold_pct == dec!(0.5)
        ));
    }

    #[test]
    fn every_strategy_kind_has_one_catalogue_entry_and_defaults_that_validate() {
        for kind in [
            StrategyKind::Hold,
            StrategyKind::SmaCrossover,
            StrategyKind::MeanReversion,
        ] {
            assert_eq!(STRATEGIES.iter().filter(|i| i.kind == kind).count(), 1);
            assert_eq!(kind.info().kind, kind);
            let defaults = StrategySpec {
                kind,
                params: Map::new(),
            };
            assert!(defaults.resolve().is_ok(), "{kind:?}");
        }
        assert_eq!(
            serde_json::to_value(SMA_SLOW).unwrap(),
            json!({"name": "slow", "type": "integer", "default": "30", "min": "2", "max": "2000",
                   "description": "bars in the slow average; must exceed fast"})
        );
    }

    #[test]
    fn unknown_strategy_kinds_do_not_deserialize() {
        assert!(serde_json::from_value::<StrategySpec>(json!({"kind": "martingale"})).is_err());
    }

    #[test]
    fn a_valid_config_normalizes_its_strategy() {
        let (normalized, strategy) = config().normalized().unwrap();
        assert_eq!(strategy.required_window(), 4);
        assert_eq!(normalized.strategy.params["qty"], json!("1"));
    }

    #[test]
    fn config_validation_names_the_field() {
        type Breakage = fn(&mut AgentConfig);
        let cases: Vec<(Breakage, &str)> = vec![
            (|c| c.name = "   ".into(), "name"),
            (|c| c.name = "x".repeat(81), "name"),
            (|c| c.frequency_s = 0, "frequency_s"),
            (|c| c.frequency_s = 86_401, "frequency_s"),
            (|c| c.risk.max_order_qty = dec!(0), "risk.max_order_qty"),
            (
                |c| c.risk.max_position_qty = dec!(-1),
                "risk.max_position_qty",
            ),
            (|c| c.risk.max_notional = dec!(0), "risk.max_notional"),
            (
                |c| c.risk.max_daily_loss = Some(dec!(0)),
                "risk.max_daily_loss",
            ),
            (|c| c.starting_cash = dec!(0), "starting_cash"),
            (
                |c| {
                    c.strategy = StrategySpec {
                        kind: StrategyKind::Hold,
                        params: Map::from_iter([("x".to_string(), json!(1))]),
                    }
                },
                "strategy.params.x",
            ),
        ];
        for (break_it, field) in cases {
            let mut c = config();
            break_it(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn config_limits_are_inclusive() {
        let mut c = config();
        c.name = "é".repeat(80);
        c.frequency_s = 86_400;
        assert!(c.validate().is_ok());
        c.frequency_s = 1;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn max_daily_loss_is_written_as_null_when_unset_and_read_as_unset_when_absent() {
        let json = serde_json::to_value(&config().risk).unwrap();
        assert_eq!(
            json,
            json!({"max_position_qty": "10", "max_order_qty": "5", "max_notional": "100000", "max_daily_loss": null})
        );
        let absent: RiskLimits = serde_json::from_value(
            json!({"max_position_qty": "10", "max_order_qty": "5", "max_notional": "100000"}),
        )
        .unwrap();
        assert_eq!(absent, config().risk);
    }

    #[test]
    fn unknown_fields_are_rejected_not_dropped() {
        let mut risk = serde_json::to_value(&config().risk).unwrap();
        risk["max_leverage"] = json!("2");
        assert!(serde_json::from_value::<RiskLimits>(risk).is_err());
        let mut config = serde_json::to_value(config()).unwrap();
        config["colour"] = json!("red");
        assert!(serde_json::from_value::<AgentConfig>(config).is_err());
        assert!(serde_json::from_value::<AgentConfigPatch>(json!({"nmae": "typo"})).is_err());
        assert!(
            serde_json::from_value::<StrategySpec>(json!({"kind": "hold", "parms": {}})).is_err()
        );
    }

    #[test]
    fn default_limits_follow_the_starting_cash() {
        assert_eq!(
            RiskLimits::for_starting_cash(dec!(2500)),
            RiskLimits {
                max_position_qty: dec!(1),
                max_order_qty: dec!(1),
                max_notional: dec!(2500),
                max_daily_loss: None,
            }
        );
    }

    #[test]
    fn a_new_agent_gets_hold_the_default_risk_and_seed_and_a_bad_cash_is_named_as_itself() {
        let new: NewAgent = serde_json::from_value(json!({
            "name": "n", "symbol": "BTC-USD", "frequency_s": 60, "starting_cash": "2500"
        }))
        .unwrap();
        let config = new.clone().into_config(42).unwrap();
        assert_eq!(config.strategy, StrategySpec::default());
        assert_eq!(config.risk, RiskLimits::for_starting_cash(dec!(2500)));
        assert_eq!(config.seed, 42);
        let broke = NewAgent {
            starting_cash: dec!(0),
            ..new
        };
        assert_eq!(broke.into_config(42).unwrap_err().field, "starting_cash");
        assert!(serde_json::from_value::<NewAgent>(json!({"name": "n", "colour": 1})).is_err());
    }

    #[test]
    fn an_empty_patch_is_refused() {
        assert_eq!(
            AgentConfigPatch::default().validate().unwrap_err().field,
            ""
        );
        let rename = AgentConfigPatch {
            name: Some("x".into()),
            ..Default::default()
        };
        assert!(rename.validate().is_ok());
    }

    #[test]
    fn a_patch_replaces_only_the_fields_it_sets() {
        let patch = AgentConfigPatch {
            frequency_s: Some(5),
            ..Default::default()
        };
        let patched = patch.apply_to(&config());
        assert_eq!(patched.frequency_s, 5);
        assert_eq!(patched.name, config().name);
        let from_json: AgentConfigPatch =
            serde_json::from_value(json!({"name": "renamed"})).unwrap();
        assert_eq!(from_json.apply_to(&config()).name, "renamed");
    }
}
