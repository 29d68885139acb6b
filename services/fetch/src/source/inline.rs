//! `ids` and `items` sources: the items are in the spec; the cursor is an offset.

use jetflow_protocol::{
    job::SourceSpec,
    messages::{by_priority, Item},
};
use serde_json::Value;

use super::{Page, SourceError};

/// The spec's inline items as wire items, in the order they run: higher
/// `priority` first, as listed within one priority. (The order is the
/// cursor's: the spec never changes, so a restarted fetch pages it alike.)
pub fn items(spec: &SourceSpec) -> Vec<Item> {
    let mut items = listed(spec);
    by_priority(&mut items);
    items
}

fn listed(spec: &SourceSpec) -> Vec<Item> {
    match spec {
        SourceSpec::Ids { ids } => ids
            .iter()
            .map(|id| Item {
                id: id.as_string(),
                data: Value::Null,
                priority: None,
            })
            .collect(),
        SourceSpec::Items { items } => items
            .iter()
            .map(|item| Item {
                id: item.id.as_string(),
                data: item.data.clone(),
                priority: item.priority,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The page starting at offset `cursor`.
pub fn page(items: &[Item], cursor: Option<&str>, limit: u32) -> Result<Page, SourceError> {
    let start = match cursor {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| SourceError::Refused(format!("bad inline cursor {c:?}")))?,
    };
    let start = start.min(items.len());
    let end = (start + limit as usize).min(items.len());
    Ok(Page {
        items: items[start..end].to_vec(),
        next_cursor: (end < items.len()).then(|| end.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_offset_to_the_end() {
        let all: Vec<Item> = (0..7)
            .map(|i| Item {
                id: i.to_string(),
                data: Value::Null,
                priority: None,
            })
            .collect();
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let page = page(&all, cursor.as_deref(), 3).unwrap();
            seen.extend(page.items.iter().map(|i| i.id.clone()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, vec!["0", "1", "2", "3", "4", "5", "6"]);
        assert!(page(&all, Some("x"), 3).is_err());
        assert!(page(&[], None, 3).unwrap().next_cursor.is_none());
    }
}
