//! Timestamps as events carry them: UTC, RFC 3339 with exactly three fractional digits
//! ("2026-11-22T10:00:00.000Z"). Handlers truncate incoming times to milliseconds so the event applied in
//! memory equals the event read back from any store, byte for byte. [`rfc3339_millis`] is the one serde form of
//! a time on every wire (events, bus messages, API bodies).

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// `t` without its sub-millisecond part: what survives a round trip through an event payload.
#[inline]
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    // Most times are whole milliseconds already (every time read back from an event): no truncation to do.
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        return t;
    }
    truncated_to_millis(t)
}

/// The rare half of [`to_millis`], kept out of line so the check inlines into every run.
#[cold]
fn truncated_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// `t` without its fractional second: sessions start on whole seconds so tick times are exact.
pub fn to_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

/// The event text form of `t`: RFC 3339, UTC "Z", milliseconds.
pub fn format_millis(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `#[serde(with = "crate::time::rfc3339_millis")]` for `DateTime<Utc>` fields of events.
/// Reading accepts any RFC 3339 offset and precision; writing always gives milliseconds and "Z".
pub mod rfc3339_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_millis(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                serde::de::Error::custom(format!("invalid RFC 3339 timestamp {text:?}: {e}"))
            })
    }

    /// `#[serde(with = "crate::time::rfc3339_millis::option")]` for `Option<DateTime<Utc>>` (`null` when absent).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Stamp(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Stamp>::deserialize(deserializer)?.map(|Stamp(t)| t))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Stamp {
        #[serde(with = "rfc3339_millis")]
        at: DateTime<Utc>,
    }

    fn parse(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn timestamps_serialize_with_milliseconds_and_z() {
        let stamp = Stamp {
            at: parse("2026-11-22T10:00:00Z"),
        };
        assert_eq!(
            serde_json::to_string(&stamp).unwrap(),
            r#"{"at":"2026-11-22T10:00:00.000Z"}"#
        );
    }

    #[test]
    fn timestamps_read_any_offset_and_precision() {
        let stamp: Stamp = serde_json::from_str(r#"{"at":"2026-11-22T11:00:00.5+01:00"}"#).unwrap();
        assert_eq!(stamp.at, parse("2026-11-22T10:00:00.500Z"));
    }

    #[test]
    fn a_truncated_timestamp_survives_a_round_trip_unchanged() {
        let t = to_millis(parse("2026-11-22T10:00:00.123456789Z"));
        assert_eq!(t, parse("2026-11-22T10:00:00.123Z"));
        let back: Stamp =
            serde_json::from_str(&serde_json::to_string(&Stamp { at: t }).unwrap()).unwrap();
        assert_eq!(back.at, t);
    }

    #[test]
    fn to_seconds_drops_the_fraction() {
        assert_eq!(
            to_seconds(parse("2026-11-22T10:00:07.999Z")),
            parse("2026-11-22T10:00:07Z")
        );
    }

    #[test]
    fn garbage_timestamps_are_an_error_not_a_panic() {
        assert!(serde_json::from_str::<Stamp>(r#"{"at":"yesterday"}"#).is_err());
    }
}
