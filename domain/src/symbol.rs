//! The instrument an agent trades: `^[A-Z0-9]{1,12}(-[A-Z0-9]{1,12})?$`, e.g. "BTC-USD" or "AAPL".

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Longest base or quote part of a symbol; long enough for every listed ticker we know, short enough to
/// keep NATS subjects and KV keys (`strom.md.<symbol>`) tidy.
pub const MAX_SYMBOL_PART_CHARS: usize = 12;

/// A validated market symbol. Construct with [`Symbol::parse`]; deserializing validates too, so an event
/// or request can never hold a malformed one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

impl Symbol {
    /// # Errors
    /// A [`ValidationError`] on field `symbol` when `text` does not match the pattern.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let mut parts = text.split('-');
        let base = parts.next().unwrap_or_default();
        let quote = parts.next();
        let well_formed = parts.next().is_none() && is_part(base) && quote.is_none_or(is_part);
        if well_formed {
            Ok(Self(text.to_owned()))
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
        &self.0
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
        symbol.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
