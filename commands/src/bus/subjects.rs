//! Names on the bus: subjects, stream names and the KV bucket, all derived from one prefix so a test (or a second
//! deployment on the same NATS) can own a disjoint set by choosing another prefix.

use std::fmt;

use thiserror::Error;

/// Which of the three streams a message lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamKind {
    /// Committed domain events, published by the relay.
    Events,
    /// Agent ticks from the scheduler, a work queue for runtime workers.
    Ticks,
    /// Simulated (later real) market-data observations.
    MarketData,
}

impl StreamKind {
    pub const ALL: [StreamKind; 3] = [Self::Events, Self::Ticks, Self::MarketData];

    /// The subject token after the prefix: `events`, `ticks`, `md`.
    pub fn token(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Ticks => "ticks",
            Self::MarketData => "md",
        }
    }

    /// Position in [`StreamKind::ALL`], for per-kind arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Events => 0,
            Self::Ticks => 1,
            Self::MarketData => 2,
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A name that cannot be used on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what} `{value}`: {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Longest accepted prefix: stream names (`<PREFIX>_EVENTS`) and the KV stream (`KV_<prefix>_prices`) must stay
/// well under JetStream's practical 255-byte file-name limit, and 64 fits `t` + a 32-hex-digit uuid with room.
const MAX_PREFIX_LEN: usize = 64;
/// Longest subject token (aggregate id, agent id, symbol, durable name): generous for UUIDs and symbols while
/// keeping subjects far below NATS's default 1 MiB control-line limits.
const MAX_TOKEN_LEN: usize = 128;

/// Builds every name on the bus from a prefix (default `strom`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// # Errors
    /// The prefix is empty, longer than 64 bytes, or has a character other than `a-z 0-9 _ -`. Lowercase only:
    /// stream names are the upper-cased prefix, so `strom` and `STROM` would share streams but not subjects.
    pub fn new(prefix: impl Into<String>) -> Result<Self, NameError> {
        let prefix = prefix.into();
        let reason = if prefix.is_empty() {
            Some("must not be empty")
        } else if prefix.len() > MAX_PREFIX_LEN {
            Some("must be at most 64 bytes")
        } else if !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            Some("may only contain a-z, 0-9, '_' and '-' (it names subjects, streams and a KV bucket)")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(NameError {
                what: "NATS prefix",
                value: prefix,
                reason,
            }),
            None => Ok(Self { prefix }),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>.events.<aggregate_type lowercase>.<aggregate_id>`.
    ///
    /// # Errors
    /// A part is not a valid subject token (see [`validate_token`]).
    pub fn event(&self, aggregate_type: &str, aggregate_id: &str) -> Result<String, NameError> {
        validate_token("aggregate type", aggregate_type)?;
        validate_token("aggregate id", aggregate_id)?;
        Ok(format!(
            "{}.events.{}.{aggregate_id}",
            self.prefix,
            aggregate_type.to_lowercase()
        ))
    }

    /// `<prefix>.ticks.<agent_id>`.
    ///
    /// # Errors
    /// `agent_id` is not a valid subject token.
    pub fn tick(&self, agent_id: &str) -> Result<String, NameError> {
        validate_token("agent id", agent_id)?;
        Ok(format!("{}.ticks.{agent_id}", self.prefix))
    }

    /// `<prefix>.md.<symbol>`.
    ///
    /// # Errors
    /// `symbol` is not a valid subject token.
    pub fn market_data(&self, symbol: &str) -> Result<String, NameError> {
        validate_token("symbol", symbol)?;
        Ok(format!("{}.md.{symbol}", self.prefix))
    }

    /// `<PREFIX>_EVENTS`, `<PREFIX>_TICKS`, `<PREFIX>_MD`.
    pub fn stream_name(&self, kind: StreamKind) -> String {
        format!(
            "{}_{}",
            self.prefix.to_uppercase(),
            kind.token().to_uppercase()
        )
    }

    /// The subjects a stream captures: `<prefix>.<token>.>`.
    pub fn stream_subjects(&self, kind: StreamKind) -> String {
        format!("{}.{}.>", self.prefix, kind.token())
    }

    /// The stream a concrete subject belongs to, if any.
    pub fn stream_of(&self, subject: &str) -> Option<StreamKind> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        StreamKind::ALL.into_iter().find(|kind| {
            rest.strip_prefix(kind.token())
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| !r.is_empty())
        })
    }

    /// `<prefix>_prices`: latest `PriceObserved` per symbol.
    pub fn price_bucket(&self) -> String {
        format!("{}_prices", self.prefix)
    }
}

/// Checks one subject token (or durable name): non-empty, at most 128 bytes, no `.`, `*`, `>` (subject
/// separators and wildcards), no whitespace or control characters.
///
/// # Errors
/// The token breaks one of those rules; the error names `what` it was.
pub fn validate_token(what: &'static str, value: &str) -> Result<(), NameError> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > MAX_TOKEN_LEN {
        Some("must be at most 128 bytes")
    } else if value.contains(['.', '*', '>']) {
        Some("must not contain '.', '*' or '>' (NATS subject separators and wildcards)")
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NameError {
            what,
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Does a NATS subject pattern (`*` = one token, `>` = one or more trailing tokens) match a concrete subject?
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// Could some subject match both patterns? (Work-queue streams forbid consumers whose filters overlap.)
pub(crate) fn patterns_overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let s = Subjects::new("strom").unwrap();
        assert_eq!(s.event("Agent", "a1").unwrap(), "strom.events.agent.a1");
        assert_eq!(s.tick("a1").unwrap(), "strom.ticks.a1");
        assert_eq!(s.market_data("BTC-USD").unwrap(), "strom.md.BTC-USD");
        assert_eq!(s.stream_name(StreamKind::Events), "STROM_EVENTS");
        assert_eq!(s.stream_name(StreamKind::Ticks), "STROM_TICKS");
        assert_eq!(s.stream_name(StreamKind::MarketData), "STROM_MD");
        assert_eq!(s.stream_subjects(StreamKind::MarketData), "strom.md.>");
        assert_eq!(s.price_bucket(), "strom_prices");
    }

    #[test]
    fn subjects_map_back_to_their_stream() {
        let s = Subjects::new("strom").unwrap();
        assert_eq!(
            s.stream_of("strom.events.agent.a1"),
            Some(StreamKind::Events)
        );
        assert_eq!(s.stream_of("strom.md.X"), Some(StreamKind::MarketData));
        assert_eq!(s.stream_of("strom.md"), None);
        assert_eq!(s.stream_of("stromx.md.X"), None);
        assert_eq!(s.stream_of("other.ticks.a"), None);
    }

    #[test]
    fn bad_prefixes_are_rejected_with_a_reason() {
        for bad in ["", "a.b", "a*", "a>", "a b", "STROM", &"x".repeat(65)] {
            let err = Subjects::new(bad).unwrap_err();
            assert_eq!(err.what, "NATS prefix");
        }
        assert!(Subjects::new("t0123456789abcdef0123456789abcdef").is_ok());
    }

    #[test]
    fn bad_tokens_are_rejected_with_a_clear_message() {
        let s = Subjects::new("strom").unwrap();
        let err = s.market_data("BTC.USD").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid symbol `BTC.USD`: must not contain '.', '*' or '>' (NATS subject separators and wildcards)"
        );
        for bad in ["", "a*", "a>", "a b", "a\tb", "a\nb"] {
            assert!(s.tick(bad).is_err(), "{bad:?}");
        }
        assert!(s.event("Agent", "a b").is_err());
    }

    #[test]
    fn patterns_match_and_overlap_like_nats() {
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(patterns_overlap("a.>", "a.b"));
        assert!(patterns_overlap("a.*", "a.b"));
        assert!(!patterns_overlap("a.b", "a.c"));
        assert!(!patterns_overlap("a.b", "a.b.c"));
    }
}
