//! The instrument an agent trades: `^[A-Z0-9]{1,12}(-[A-Z0-9]{1,12})?$`, e.g. "BTC-USD" or "AAPL".

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Longest base or quote part of a symbol; long enough for every listed ticker we know, short enough to
/// keep NATS subjects and KV keys (`strom.md.<symbol>`) tidy.
pub const MAX_SYMBOL_PART_CHARS: usize = 12;

/// Longest symbol: two parts and the dash.
pub const MAX_SYMBOL_CHARS: usize = 2 * MAX_SYMBOL_PART_CHARS + 1;

/// A validated market symbol. Construct with [`Symbol::parse`]; deserializing validates too, so an event
/// or request can never hold a malformed one.
///
/// Kept inline (at most [`MAX_SYMBOL_CHARS`] ASCII bytes, zero-padded) rather than as a `String`: every run's
/// observation carries one, so a clone is a copy, never an allocation — the backtest kernel records millions of runs.
/// Zero padding keeps the derived order and equality those of the text (every symbol byte is above zero).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol {
    bytes: [u8; MAX_SYMBOL_CHARS],
}

impl Symbol {
    /// # Errors
    /// A [`ValidationError`] on field `symbol` when `text` does not match the pattern.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let mut parts = text.split('-');
        let base = parts.next().unwrap_or_default();
        let quote = parts.next();
        let well_formed = parts.next().is_none() && is_part(base) && quote.is_none_or(is_part);
        if well_formed {
            let mut bytes = [0; MAX_SYMBOL_CHARS];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Ok(Self { bytes })
        } else {
            Err(ValidationError::new(
                "symbol",
                format!(
                    "must be 1..={MAX_SYMBOL_PART_CHARS} of A-Z 0-9, optionally '-' and 1..={MAX_SYMBOL_PART_CHARS} more (got {text:?})"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        let len = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_SYMBOL_CHARS);
        // Only ASCII was ever stored (`parse`), so this never falls back.
        std::str::from_utf8(&self.bytes[..len]).unwrap_or_default()
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Symbol").field(&self.as_str()).finish()
    }
}

fn is_part(part: &str) -> bool {
    (1..=MAX_SYMBOL_PART_CHARS).contains(&part.len())
        && part
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl TryFrom<String> for Symbol {
    type Error = ValidationError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Symbol> for String {
    fn from(symbol: Symbol) -> Self {
        symbol.as_str().to_owned()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_symbols_parse() {
        for text in [
            "BTC-USD",
            "AAPL",
            "A",
            "X1-Y2",
            "ABCDEFGHIJKL-ABCDEFGHIJKL",
            "123",
        ] {
            assert_eq!(Symbol::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn malformed_symbols_are_rejected_naming_the_field() {
        for text in [
            "",
            "btc-usd",
            "BTC-",
            "-USD",
            "BTC--USD",
            "BTC-USD-EUR",
            "BTC_USD",
            "BTC USD",
            "ABCDEFGHIJKLM",
            "ÄPFEL",
            "BTC-ABCDEFGHIJKLM",
        ] {
            let err = Symbol::parse(text).unwrap_err();
            assert_eq!(err.field, "symbol", "{text:?}");
        }
    }

    #[test]
    fn symbols_order_and_compare_as_their_text() {
        let texts = [
            "A", "AB", "AB-C", "ABC", "B", "BTC", "BTC-EUR", "BTC-USD", "Z9",
        ];
        let mut symbols: Vec<Symbol> = texts
            .iter()
            .rev()
            .map(|t| Symbol::parse(t).unwrap())
            .collect();
        symbols.sort();
        let sorted: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
        assert_eq!(sorted, texts);
        assert_eq!(format!("{:?}", symbols[0]), r#"Symbol("A")"#);
    }

    #[test]
    fn symbols_serialize_as_plain_strings_and_validate_when_read() {
        let symbol = Symbol::parse("BTC-USD").unwrap();
        assert_eq!(serde_json::to_string(&symbol).unwrap(), r#""BTC-USD""#);
        assert_eq!(
            serde_json::from_str::<Symbol>(r#""BTC-USD""#).unwrap(),
            symbol
        );
        assert!(serde_json::from_str::<Symbol>(r#""btc""#).is_err());
    }
}
