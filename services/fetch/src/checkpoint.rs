//! The next-checkpoint rule: where paging stands once a page is published.
//!
//! Pure, so the pager's I/O only carries it out: a page with items becomes
//! the next batch; the source is exhausted when a page names no next cursor,
//! or when an empty page leaves the cursor where it was (a source stuck on
//! one cursor would otherwise be asked for the same page forever).

use jetflow_protocol::job::FetchCheckpoint;

use crate::source::Page;

/// The checkpoint after `page`, read at `current`'s cursor, is published.
/// Its `batches` is one more than `current`'s exactly when `page` is a batch
/// to publish.
pub fn next_checkpoint(current: &FetchCheckpoint, page: &Page) -> FetchCheckpoint {
    let stuck = page.items.is_empty() && page.next_cursor == current.cursor;
    let (batches, fetched) = if page.items.is_empty() {
        (current.batches, current.fetched)
    } else {
        (
            current.batches + 1,
            current.fetched + page.items.len() as u64,
        )
    };
    FetchCheckpoint {
        cursor: page.next_cursor.clone(),
        batches,
        fetched,
        done: page.next_cursor.is_none() || stuck,
    }
}

#[cfg(test)]
mod tests {
    use jetflow_protocol::messages::Item;
    use serde_json::Value;

    use super::*;

    fn page(ids: &[&str], next_cursor: Option<&str>) -> Page {
        Page {
            items: ids
                .iter()
                .map(|id| Item {
                    id: id.to_string(),
                    data: Value::Null,
                    priority: None,
                })
                .collect(),
            next_cursor: next_cursor.map(str::to_string),
        }
    }

    fn at(cursor: Option<&str>, batches: u64, fetched: u64) -> FetchCheckpoint {
        FetchCheckpoint {
            cursor: cursor.map(str::to_string),
            batches,
            fetched,
            done: false,
        }
    }

    #[test]
    fn a_normal_page_is_the_next_batch_and_moves_the_cursor() {
        let next = next_checkpoint(&at(Some("c2"), 2, 20), &page(&["a", "b", "c"], Some("c3")));
        assert_eq!(
            next,
            FetchCheckpoint {
                cursor: Some("c3".into()),
                batches: 3,
                fetched: 23,
                done: false,
            }
        );
    }

    #[test]
    fn the_first_page_starts_from_nothing() {
        let next = next_checkpoint(&FetchCheckpoint::default(), &page(&["a"], Some("c1")));
        assert_eq!(next, at(Some("c1"), 1, 1));
    }

    #[test]
    fn the_last_page_is_published_and_ends_the_source() {
        let next = next_checkpoint(&at(Some("c2"), 2, 20), &page(&["a", "b"], None));
        assert_eq!(
            next,
            FetchCheckpoint {
                cursor: None,
                batches: 3,
                fetched: 22,
                done: true,
            }
        );
    }

    #[test]
    fn an_empty_page_is_no_batch_but_may_move_the_cursor() {
        let next = next_checkpoint(&at(Some("c2"), 2, 20), &page(&[], Some("c3")));
        assert_eq!(next, at(Some("c3"), 2, 20));
    }

    #[test]
    fn an_empty_last_page_ends_the_source() {
        let next = next_checkpoint(&at(Some("c2"), 2, 20), &page(&[], None));
        assert_eq!(
            next,
            FetchCheckpoint {
                cursor: None,
                batches: 2,
                fetched: 20,
                done: true,
            }
        );
    }

    #[test]
    fn an_empty_page_on_a_stuck_cursor_ends_the_source() {
        let next = next_checkpoint(&at(Some("c2"), 2, 20), &page(&[], Some("c2")));
        assert_eq!(
            next,
            FetchCheckpoint {
                cursor: Some("c2".into()),
                batches: 2,
                fetched: 20,
                done: true,
            }
        );
    }

    #[test]
    fn a_full_page_on_the_same_cursor_is_still_a_batch() {
        // Only an empty page counts as stuck: items mean progress was made.
        let next = next_checkpoint(&at(Some("c2"), 2, 20), &page(&["a"], Some("c2")));
        assert_eq!(next, at(Some("c2"), 3, 21));
    }
}
