//! Hash-chain verification: recompute every aggregate's chain and report altered, missing and moved events as data.
//!
//! Each event's hash covers its content, its sequence and the previous event's hash in the same stream, so an
//! edit breaks the edited row's link, a deletion leaves a gap in the sequences, and a moved row still matches its
//! own hash at the position it was written at. What a chain cannot show on its own: events cut off the end of a
//! stream, or a stream tail rewritten by someone who recomputed every later hash (the relay's copy on JetStream is
//! the outside witness for those).

use std::collections::VecDeque;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{chain_hash_text, StoreError, GENESIS_HASH};

/// Rows fetched per page while verifying. Verification holds one page plus a small window per stream, so memory
/// stays flat whatever the log size; 1,000 rows is a few hundred kilobytes and one index range scan.
pub const VERIFY_PAGE: usize = 1_000;

/// How far (in sequence numbers and rows) to look around a broken link for the place a moved event came from.
/// Swaps and single insertions move events by one or two; 8 covers those with room to spare while keeping the
/// search for one broken row to about (2·8)² hashes. An event moved further is still reported, as altered.
pub const REORDER_SEARCH_WINDOW: usize = 8;

/// Most problems one report lists. A wholesale rewrite would otherwise produce one entry per event; past this the
/// report says it is truncated and verification stops searching (it still counts events).
pub const MAX_REPORTED_PROBLEMS: usize = 10_000;

/// One aggregate stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AggregateKey {
    /// e.g. "Agent".
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
}

impl std::fmt::Display for AggregateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

/// Something wrong with a stream's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainProblem {
    /// The event's content does not hash to its stored hash at its position: it was edited in place, or it is a
    /// forgery whose hash does not chain.
    AlteredEvent {
        /// The stream.
        aggregate: AggregateKey,
        /// The event's (current) sequence.
        sequence: u64,
    },
    /// A sequence number is absent before a later event (a deleted event). The event after the gap cannot be
    /// checked, since its predecessor's hash is gone.
    MissingEvent {
        /// The stream.
        aggregate: AggregateKey,
        /// The first absent sequence.
        expected_sequence: u64,
    },
    /// A genuine event (it matches its stored hash) sits at a different sequence from the one it was written at:
    /// events were swapped or renumbered, or one was inserted before it.
    ReorderedOrInserted {
        /// The stream.
        aggregate: AggregateKey,
        /// The sequence the event has now.
        sequence: u64,
        /// The sequence it was written at.
        original_sequence: u64,
    },
}

impl ChainProblem {
    /// The sequence the problem is at (the first absent one for a missing event).
    pub fn sequence(&self) -> u64 {
        match self {
            Self::AlteredEvent { sequence, .. } | Self::ReorderedOrInserted { sequence, .. } => {
                *sequence
            }
            Self::MissingEvent {
                expected_sequence, ..
            } => *expected_sequence,
        }
    }
}

/// The outcome of verifying every chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Streams seen.
    pub streams: u64,
    /// Events seen.
    pub events: u64,
    /// Problems, per stream in sequence order.
    pub problems: Vec<ChainProblem>,
    /// More than [`MAX_REPORTED_PROBLEMS`] problems were found; only the first are listed.
    pub problems_truncated: bool,
}

impl ChainReport {
    /// No problem found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty() && !self.problems_truncated
    }
}

/// The hashed fields of one stored event, as the store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    /// e.g. "Agent".
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// The stored sequence.
    pub sequence: u64,
    /// e.g. "AgentCreated".
    pub event_type: String,
    /// e.g. "1".
    pub event_version: String,
    /// The payload's jsonb text form (what the hash covers).
    pub payload_text: String,
    /// The stored hash.
    pub hash: String,
}

impl ChainRow {
    fn hash_at(&self, prev_hash: &str, sequence: u64) -> String {
        chain_hash_text(
            prev_hash,
            &self.aggregate_type,
            &self.aggregate_id,
            sequence,
            &self.event_type,
            &self.event_version,
            &self.payload_text,
        )
    }

    fn key(&self) -> ChainKey {
        ChainKey {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
        }
    }
}

/// A place in aggregate order: (aggregate_type, aggregate_id, sequence).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainKey {
    /// e.g. "Agent".
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// The sequence within the stream.
    pub sequence: u64,
}

impl ChainKey {
    /// Whether an event at (`aggregate_type`, `aggregate_id`, `sequence`) comes after this key in byte order.
    pub fn is_before(&self, aggregate_type: &str, aggregate_id: &str, sequence: u64) -> bool {
        (
            self.aggregate_type.as_str(),
            self.aggregate_id.as_str(),
            self.sequence,
        ) < (aggregate_type, aggregate_id, sequence)
    }
}

/// Stored events in aggregate order, for verification.
#[async_trait]
pub trait ChainSource: Send + Sync {
    /// Up to `limit` rows after `after` (from the start when `None`), ordered by aggregate then sequence. The
    /// store's own text ordering is fine as long as it is consistent between calls.
    ///
    /// # Errors
    /// The store could not be read.
    async fn read_chain_rows_after(
        &self,
        after: Option<&ChainKey>,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError>;
}

/// Verifies every chain in `source`.
///
/// # Errors
/// The store could not be read. Problems with the chains are not errors: they are in the report.
pub async fn verify_chains(source: &dyn ChainSource) -> Result<ChainReport, StoreError> {
    verify_chains_with_progress(source, |_| {}).await
}

/// [`verify_chains`], calling `progress` with the report so far after each page (for a progress bar). Dropping the
/// future stops verification; it only reads.
///
/// # Errors
/// The store could not be read.
pub async fn verify_chains_with_progress(
    source: &dyn ChainSource,
    mut progress: impl FnMut(&ChainReport) + Send,
) -> Result<ChainReport, StoreError> {
    let mut verifier = ChainVerifier::new();
    let mut after: Option<ChainKey> = None;
    loop {
        let rows = source
            .read_chain_rows_after(after.as_ref(), VERIFY_PAGE)
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(last.key());
        for row in rows {
            verifier.push(row);
        }
        progress(verifier.report());
    }
    Ok(verifier.finish())
}

/// Whether a row's hash links to the stored hash of the row before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Verified,
    /// The row follows a gap (or out-of-order input): there is no predecessor hash to check against.
    Unverifiable,
    Broken,
}

#[derive(Debug)]
struct Slot {
    row: ChainRow,
    link: Link,
    classified: bool,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

/// Verifies chains fed row by row in aggregate order, holding only a window of each stream.
///
/// A row whose link is broken is classified once [`REORDER_SEARCH_WINDOW`] rows after it have arrived (or its
/// stream ended): if its content and stored hash fit another position near by, it moved; if they fit its own
/// position after a different predecessor, it is genuine and a neighbour moved; otherwise it was altered.
#[derive(Debug)]
pub struct ChainVerifier {
    max_problems: usize,
    report: ChainReport,
    current: Option<AggregateKey>,
    window: VecDeque<Slot>,
    stream_problems: Vec<ChainProblem>,
    next_expected: u64,
}

impl ChainVerifier {
    /// Nothing verified yet.
    pub fn new() -> Self {
        Self {
            max_problems: MAX_REPORTED_PROBLEMS,
            report: ChainReport::default(),
            current: None,
            window: VecDeque::new(),
            stream_problems: Vec::new(),
            next_expected: 1,
        }
    }

    /// The report so far (problems of the stream in progress are added when it ends).
    pub fn report(&self) -> &ChainReport {
        &self.report
    }

    /// Checks the next row; rows must come in aggregate order, each stream by ascending sequence.
    pub fn push(&mut self, row: ChainRow) {
        let same_stream = self.current.as_ref().is_some_and(|k| {
            k.aggregate_type == row.aggregate_type && k.aggregate_id == row.aggregate_id
        });
        if !same_stream {
            self.finish_stream();
            self.current = Some(AggregateKey {
                aggregate_type: row.aggregate_type.clone(),
                aggregate_id: row.aggregate_id.clone(),
            });
            self.next_expected = 1;
            self.report.streams += 1;
        }
        self.report.events += 1;
        let link = self.link_of(&row);
        self.next_expected = self.next_expected.max(row.sequence.saturating_add(1));
        self.window.push_back(Slot {
            row,
            link,
            classified: false,
        });
        if self.window.len() > REORDER_SEARCH_WINDOW {
            self.classify(self.window.len() - 1 - REORDER_SEARCH_WINDOW);
        }
        if self.window.len() > 2 * REORDER_SEARCH_WINDOW + 1 {
            self.window.pop_front();
        }
    }

    /// The final report.
    pub fn finish(mut self) -> ChainReport {
        self.finish_stream();
        self.report
    }

    fn link_of(&mut self, row: &ChainRow) -> Link {
        if row.sequence > self.next_expected {
            let aggregate = self.current.clone().unwrap_or_else(|| AggregateKey {
                aggregate_type: row.aggregate_type.clone(),
                aggregate_id: row.aggregate_id.clone(),
            });
            self.stream_problems.push(ChainProblem::MissingEvent {
                aggregate,
                expected_sequence: self.next_expected,
            });
            return Link::Unverifiable;
        }
        let prev_hash = if row.sequence == 1 {
            GENESIS_HASH
        } else {
            match self.window.back() {
                Some(prev) if prev.row.sequence + 1 == row.sequence => prev.row.hash.as_str(),
                _ => return Link::Unverifiable,
            }
        };
        if row.hash_at(prev_hash, row.sequence) == row.hash {
            Link::Verified
        } else {
            Link::Broken
        }
    }

    fn finish_stream(&mut self) {
        for idx in 0..self.window.len() {
            self.classify(idx);
        }
        self.window.clear();
        let mut problems = std::mem::take(&mut self.stream_problems);
        problems.sort_by_key(ChainProblem::sequence);
        for problem in problems {
            if self.report.problems.len() < self.max_problems {
                self.report.problems.push(problem);
            } else {
                self.report.problems_truncated = true;
            }
        }
    }

    fn classify(&mut self, idx: usize) {
        let slot = &mut self.window[idx];
        if slot.classified {
            return;
        }
        slot.classified = true;
        if slot.link != Link::Broken {
            return;
        }
        let aggregate = AggregateKey {
            aggregate_type: slot.row.aggregate_type.clone(),
            aggregate_id: slot.row.aggregate_id.clone(),
        };
        let sequence = slot.row.sequence;
        if self.report.problems.len() + self.stream_problems.len() >= self.max_problems {
            // Past the cap the entry is dropped anyway; skip the search but keep the count honest.
            self.stream_problems.push(ChainProblem::AlteredEvent {
                aggregate,
                sequence,
            });
            return;
        }
        let problem = match self.placement(idx) {
            Placement::InPlace => return,
            Placement::MovedFrom(original_sequence) => ChainProblem::ReorderedOrInserted {
                aggregate,
                sequence,
                original_sequence,
            },
            Placement::Nowhere => ChainProblem::AlteredEvent {
                aggregate,
                sequence,
            },
        };
        self.stream_problems.push(problem);
    }

    /// Where the row at `idx`, whose link to its predecessor is broken, fits in the chain.
    fn placement(&self, idx: usize) -> Placement {
        let row = &self.window[idx].row;
        let lo = idx.saturating_sub(REORDER_SEARCH_WINDOW);
        let hi = (idx + REORDER_SEARCH_WINDOW).min(self.window.len() - 1);
        let neighbours: Vec<&str> = (lo..=hi)
            .filter(|&j| j != idx)
            .map(|j| self.window[j].row.hash.as_str())
            .collect();
        let window = REORDER_SEARCH_WINDOW as u64;
        let first = row.sequence.saturating_sub(window).max(1);
        for original in first..=row.sequence.saturating_add(window) {
            if original == row.sequence {
                continue;
            }
            let moved = if original == 1 {
                row.hash_at(GENESIS_HASH, 1) == row.hash
            } else {
                neighbours
                    .iter()
                    .any(|prev| row.hash_at(prev, original) == row.hash)
            };
            if moved {
                return Placement::MovedFrom(original);
            }
        }
        if neighbours
            .iter()
            .any(|prev| row.hash_at(prev, row.sequence) == row.hash)
        {
            return Placement::InPlace;
        }
        Placement::Nowhere
    }
}

enum Placement {
    /// Genuine and at its own sequence; only its predecessor changed (a neighbour moved).
    InPlace,
    MovedFrom(u64),
    Nowhere,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(id: &str, n: u64) -> Vec<ChainRow> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|sequence| {
                let mut row = ChainRow {
                    aggregate_type: "Counter".into(),
                    aggregate_id: id.into(),
                    sequence,
                    event_type: "Incremented".into(),
                    event_version: "1".into(),
                    payload_text: format!("{{\"by\": {sequence}}}"),
                    hash: String::new(),
                };
                row.hash = row.hash_at(&prev, sequence);
                prev = row.hash.clone();
                row
            })
            .collect()
    }

    fn verify(rows: Vec<ChainRow>) -> ChainReport {
        verify_capped(rows, MAX_REPORTED_PROBLEMS)
    }

    fn verify_capped(rows: Vec<ChainRow>, max_problems: usize) -> ChainReport {
        let mut verifier = ChainVerifier {
            max_problems,
            ..ChainVerifier::new()
        };
        for row in rows {
            verifier.push(row);
        }
        verifier.finish()
    }

    fn key(id: &str) -> AggregateKey {
        AggregateKey {
            aggregate_type: "Counter".into(),
            aggregate_id: id.into(),
        }
    }

    #[test]
    fn untouched_streams_are_intact() {
        let mut rows = stream("a", 30);
        rows.extend(stream("b", 3));
        let report = verify(rows);
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.streams, report.events), (2, 33));
    }

    #[test]
    fn an_edited_payload_is_reported_as_altered_once() {
        let mut rows = stream("a", 20);
        rows[9].payload_text = "{\"by\": 1000}".into();
        assert_eq!(
            verify(rows).problems,
            vec![ChainProblem::AlteredEvent {
                aggregate: key("a"),
                sequence: 10
            }]
        );
    }

    #[test]
    fn a_deleted_event_is_reported_as_missing() {
        let mut rows = stream("a", 5);
        rows.remove(2);
        assert_eq!(
            verify(rows).problems,
            vec![ChainProblem::MissingEvent {
                aggregate: key("a"),
                expected_sequence: 3
            }]
        );
    }

    #[test]
    fn swapped_events_are_reported_as_reordered() {
        let mut rows = stream("a", 12);
        rows[4].sequence = 6;
        rows[5].sequence = 5;
        rows.swap(4, 5);
        assert_eq!(
            verify(rows).problems,
            vec![
                ChainProblem::ReorderedOrInserted {
                    aggregate: key("a"),
                    sequence: 5,
                    original_sequence: 6
                },
                ChainProblem::ReorderedOrInserted {
                    aggregate: key("a"),
                    sequence: 6,
                    original_sequence: 5
                },
            ]
        );
    }

    #[test]
    fn problems_are_capped() {
        let mut rows = stream("a", 25);
        for row in &mut rows {
            row.hash = GENESIS_HASH.into();
        }
        let report = verify_capped(rows, 20);
        assert_eq!(report.problems.len(), 20);
        assert!(report.problems_truncated);
    }
}
