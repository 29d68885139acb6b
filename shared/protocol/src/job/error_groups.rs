//! A job's failures grouped by error message, exact: folded by the reducer
//! with the tally (so a crash or a replayed ledger counts each failure
//! once) and corrected when a replay replaces a failure. The dashboard's
//! errors panel and `jetflow status` read it from the job state, never
//! from the items bucket.
//!
//! Messages that differ only in an id are one group: an error usually
//! names its item (`agent agent-00640 cannot use template …`), and a
//! group per item would group nothing. So a word with four digits or more,
//! or a hex word of eight characters or more with a digit, stands as `#`
//! in the group's key (`HTTP 422` and `v2` stay as they are); the group
//! keeps the first full message as its example.
//!
//! Bounded: at most [`MAX_GROUPS`] keys are kept apart, with [`SAMPLES`]
//! item ids each; failures with any other key are only counted (`other`).
//! Keys and examples are cut to [`MESSAGE_LEN`] characters.

use serde::{Deserialize, Serialize};

/// Messages kept apart; the rest count in `other`.
pub const MAX_GROUPS: usize = 50;
/// Item ids kept per message.
pub const SAMPLES: usize = 3;
/// Characters of a message that tell groups apart.
pub const MESSAGE_LEN: usize = 200;

/// Failed items by error message.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorGroups {
    /// Groups, most failures first (ties: first seen first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ErrorGroup>,
    /// Failures whose message is in no group (more than `MAX_GROUPS` messages).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other: u64,
}

/// The failures with one message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorGroup {
    /// The message with its ids as `#` (cut to `MESSAGE_LEN` characters).
    pub error: String,
    /// The first message seen in full (cut to `MESSAGE_LEN` characters).
    pub example: String,
    /// Failed items with it now.
    pub count: u64,
    /// The first items seen with it (at most `SAMPLES`).
    pub items: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ErrorGroups {
    /// Whether no failure is counted.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.other == 0
    }

    /// Failures counted, in groups and out.
    pub fn total(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum::<u64>() + self.other
    }

    /// Item `item` failed with `error`.
    pub fn add(&mut self, raw: &str, item: &str) {
        let error = key(raw);
        match self.groups.iter().position(|g| g.error == error) {
            Some(at) => {
                let group = &mut self.groups[at];
                group.count += 1;
                if group.items.len() < SAMPLES && !group.items.iter().any(|i| i == item) {
                    group.items.push(item.to_string());
                }
                self.rise(at);
            }
            None if self.groups.len() < MAX_GROUPS => self.groups.push(ErrorGroup {
                error,
                example: cut(raw),
                count: 1,
                items: vec![item.to_string()],
            }),
            None => self.other += 1,
        }
    }

    /// A failure of `item` with `error` was replaced (a replay's new
    /// outcome): it no longer counts. A group left with none goes.
    pub fn remove(&mut self, error: &str, item: &str) {
        let error = key(error);
        let Some(at) = self.groups.iter().position(|g| g.error == error) else {
            self.other = self.other.saturating_sub(1);
            return;
        };
        let group = &mut self.groups[at];
        group.count = group.count.saturating_sub(1);
        group.items.retain(|i| i != item);
        if group.count == 0 {
            self.groups.remove(at);
        } else {
            self.sink(at);
        }
    }

    /// Moves the group at `at` up past groups with fewer failures.
    fn rise(&mut self, mut at: usize) {
        while at > 0 && self.groups[at - 1].count < self.groups[at].count {
            self.groups.swap(at - 1, at);
            at -= 1;
        }
    }

    /// Moves the group at `at` down past groups with more failures.
    fn sink(&mut self, mut at: usize) {
        while at + 1 < self.groups.len() && self.groups[at + 1].count > self.groups[at].count {
            self.groups.swap(at, at + 1);
            at += 1;
        }
    }
}

/// The group a message belongs to: its ids as `#`, cut.
fn key(error: &str) -> String {
    let mut key = String::with_capacity(error.len());
    let mut word = String::new();
    for c in error.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        key.push_str(if is_id(&word) { "#" } else { &word });
        word.clear();
        key.push(c);
    }
    key.pop();
    cut(&key)
}

/// Whether a word reads as an id or a number rather than as a word.
fn is_id(word: &str) -> bool {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    digits >= 4 || (word.len() >= 8 && digits > 0 && word.chars().all(|c| c.is_ascii_hexdigit()))
}

/// At most `MESSAGE_LEN` characters of `text`.
fn cut(text: &str) -> String {
    match text.char_indices().nth(MESSAGE_LEN) {
        Some((end, _)) => text[..end].to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(g: &ErrorGroups) -> Vec<(&str, u64)> {
        g.groups
            .iter()
            .map(|g| (g.error.as_str(), g.count))
            .collect()
    }

    #[test]
    fn groups_count_by_message_most_first() {
        let mut g = ErrorGroups::default();
        g.add("HTTP 422", "a");
        g.add("HTTP 503", "b");
        g.add("HTTP 503", "c");
        g.add("HTTP 422", "d");
        g.add("HTTP 503", "e");
        assert_eq!(counts(&g), [("HTTP 503", 3), ("HTTP 422", 2)]);
        assert_eq!(g.groups[0].items, ["b", "c", "e"]);
        assert_eq!(g.total(), 5);
    }

    #[test]
    fn samples_are_bounded_and_distinct() {
        let mut g = ErrorGroups::default();
        for item in ["a", "a", "b", "c", "d"] {
            g.add("boom", item);
        }
        assert_eq!(g.groups[0].items, ["a", "b", "c"]);
        assert_eq!(g.groups[0].count, 5);
    }

    #[test]
    fn messages_past_the_bound_count_as_other() {
        let mut g = ErrorGroups::default();
        for n in 0..MAX_GROUPS + 5 {
            g.add(&format!("error {n}"), "x");
        }
        assert_eq!(g.groups.len(), MAX_GROUPS);
        assert_eq!(g.other, 5);
        assert_eq!(g.total(), (MAX_GROUPS + 5) as u64);
        // A message already kept still counts in its group.
        g.add("error 0", "y");
        assert_eq!(g.groups[0].count, 2);
        assert_eq!(g.other, 5);
    }

    #[test]
    fn a_replaced_failure_comes_out_of_its_group() {
        let mut g = ErrorGroups::default();
        g.add("HTTP 422", "a");
        g.add("HTTP 503", "b");
        g.add("HTTP 503", "c");
        g.remove("HTTP 503", "b");
        g.remove("HTTP 503", "c");
        assert_eq!(counts(&g), [("HTTP 422", 1)]);
        g.remove("HTTP 422", "a");
        assert!(g.is_empty());
        // Removing what is not there changes nothing and never underflows.
        g.remove("HTTP 422", "a");
        assert!(g.is_empty());
    }

    #[test]
    fn order_follows_counts_both_ways() {
        let mut g = ErrorGroups::default();
        g.add("x", "1");
        g.add("y", "2");
        g.add("y", "3");
        assert_eq!(counts(&g), [("y", 2), ("x", 1)]);
        g.remove("y", "2");
        g.remove("y", "3");
        g.add("y", "4");
        g.add("x", "5");
        assert_eq!(counts(&g), [("x", 2), ("y", 1)]);
    }

    #[test]
    fn messages_that_differ_in_an_id_are_one_group() {
        let mut g = ErrorGroups::default();
        let text = |id: &str| {
            format!("HTTP 422: agent agent-{id} cannot use template v2 (request 5d0f0dc1986c)")
        };
        g.add(&text("00640"), "agent-00640");
        g.add(&text("01172"), "agent-01172");
        g.add("HTTP 503: try again", "agent-00007");
        assert_eq!(g.groups.len(), 2);
        assert_eq!(
            g.groups[0].error,
            "HTTP 422: agent agent-# cannot use template v2 (request #)"
        );
        assert_eq!(g.groups[0].example, text("00640"));
        assert_eq!(g.groups[0].count, 2);
        assert_eq!(g.groups[1].error, "HTTP 503: try again");
        // A replaced failure finds its group by its own message.
        g.remove(&text("01172"), "agent-01172");
        assert_eq!(g.groups[0].count, 1);
    }

    #[test]
    fn long_messages_group_by_their_start() {
        let mut g = ErrorGroups::default();
        let long = "é".repeat(MESSAGE_LEN);
        g.add(&format!("{long} id 1"), "a");
        g.add(&format!("{long} id 2"), "b");
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.groups[0].error.chars().count(), MESSAGE_LEN);
    }
}
