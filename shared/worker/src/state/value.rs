//! What each shared state operation makes of the value it finds: pure
//! functions, so the rules are tested without a server. The contract is in
//! docs/protocol.md ("Shared job state"); the Python and Node helpers in
//! examples/ follow the same rules.

use serde_json::Value;

/// What an operation does once it has read the current value: the value to
/// write in its place (none: leave it as it is), and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<A> {
    /// The new value, written only if nobody changed the key meanwhile.
    pub write: Option<Value>,
    /// What the operation answers once the write (if any) is stored.
    pub answer: A,
}

/// The answer of a compare-and-swap.
#[derive(Debug, Clone, PartialEq)]
pub struct Swap {
    /// Whether the value was OLD and is now NEW.
    pub swapped: bool,
    /// The value now: NEW if it swapped, else the one found (null when
    /// the name is not set).
    pub current: Value,
}

/// Why an operation cannot apply to the value it found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The value is not of the kind the operation works on.
    #[error("the value is {found}, not {wanted}")]
    WrongType {
        /// The kind found (`a string`).
        found: &'static str,
        /// The kind the operation needs (`an integer`).
        wanted: &'static str,
    },
    /// The counter would leave the 64-bit integers.
    #[error("{current} + {by} overflows a 64-bit integer")]
    Overflow {
        /// The counter.
        current: i64,
        /// The increment.
        by: i64,
    },
}

/// The kind of a JSON value, as errors name it.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a non-integer number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value's canonical JSON text, by which set members and CAS values are
/// compared: no whitespace, object keys sorted, strings and numbers as
/// `serde_json` (and `JSON.stringify`, and Python's `json.dumps` with
/// `ensure_ascii=False`) write them.
pub fn canonical(value: &Value) -> String {
    let mut text = String::new();
    write_canonical(value, &mut text);
    text
}

fn write_canonical(value: &Value, text: &mut String) {
    match value {
        Value::Array(items) => {
            text.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                write_canonical(item, text);
            }
            text.push(']');
        }
        Value::Object(fields) => {
            let mut fields: Vec<_> = fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            text.push('{');
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&Value::String(key.clone()).to_string());
                text.push(':');
                write_canonical(item, text);
            }
            text.push('}');
        }
        scalar => text.push_str(&scalar.to_string()),
    }
}

/// A name that is not set, or set to null, counts as nothing: a counter
/// of 0, an empty list, an empty set.
fn something(current: Option<&Value>) -> Option<&Value> {
    current.filter(|v| !v.is_null())
}

/// `incr`: the counter plus `by` (a name not set counts as 0).
pub fn incremented(current: Option<&Value>, by: i64) -> Result<Applied<i64>, Mismatch> {
    let now = match something(current) {
        None => 0,
        Some(value) => value.as_i64().ok_or(Mismatch::WrongType {
            found: match value {
                Value::Number(n) if n.is_u64() => "an integer beyond 64 bits",
                other => kind(other),
            },
            wanted: "an integer",
        })?,
    };
    let next = now
        .checked_add(by)
        .ok_or(Mismatch::Overflow { current: now, by })?;
    Ok(Applied {
        write: (by != 0 || something(current).is_none()).then(|| Value::from(next)),
        answer: next,
    })
}

fn array<'v>(current: Option<&'v Value>, wanted: &'static str) -> Result<&'v [Value], Mismatch> {
    match something(current) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(Mismatch::WrongType {
            found: kind(other),
            wanted,
        }),
    }
}

/// `append`: the list with `item` at its end; answers the new length.
pub fn appended(current: Option<&Value>, item: &Value) -> Result<Applied<usize>, Mismatch> {
    let mut items = array(current, "a list (an array)")?.to_vec();
    items.push(item.clone());
    let len = items.len();
    Ok(Applied {
        write: Some(Value::Array(items)),
        answer: len,
    })
}

/// `add`: the set with `member` in it, kept sorted by canonical text and
/// without repeats; answers whether `member` is new. A member already in
/// it writes nothing.
pub fn added(current: Option<&Value>, member: &Value) -> Result<Applied<bool>, Mismatch> {
    let items = array(current, "a set (an array)")?;
    let wanted = canonical(member);
    if items.iter().any(|item| canonical(item) == wanted) {
        return Ok(Applied {
            write: None,
            answer: false,
        });
    }
    let mut members: Vec<(String, Value)> = items
        .iter()
        .map(|item| (canonical(item), item.clone()))
        .chain([(wanted, member.clone())])
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|a, b| a.0 == b.0);
    Ok(Applied {
        write: Some(Value::Array(members.into_iter().map(|(_, v)| v).collect())),
        answer: true,
    })
}

/// `cas`: `new` in place of the value if it is `old` (a name not set is
/// null), else nothing.
pub fn swapped(current: Option<&Value>, old: &Value, new: &Value) -> Applied<Swap> {
    let found = current.cloned().unwrap_or(Value::Null);
    if canonical(&found) == canonical(old) {
        Applied {
            write: Some(new.clone()),
            answer: Swap {
                swapped: true,
                current: new.clone(),
            },
        }
    } else {
        Applied {
            write: None,
            answer: Swap {
                swapped: false,
                current: found,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_counter_starts_at_zero_and_adds() {
        let first = incremented(None, 5).unwrap();
        assert_eq!((first.write, first.answer), (Some(json!(5)), 5));
        let next = incremented(Some(&json!(5)), -7).unwrap();
        assert_eq!((next.write, next.answer), (Some(json!(-2)), -2));
        assert_eq!(incremented(Some(&Value::Null), 1).unwrap().answer, 1);
        let zero = incremented(Some(&json!(3)), 0).unwrap();
        assert_eq!((zero.write, zero.answer), (None, 3), "incr 0 reads");
    }

    #[test]
    fn a_counter_refuses_what_is_not_an_integer_and_overflow() {
        for (value, found) in [
            (json!("7"), "a string"),
            (json!(1.5), "a non-integer number"),
            (json!([1]), "an array"),
            (json!(u64::MAX), "an integer beyond 64 bits"),
        ] {
            assert_eq!(
                incremented(Some(&value), 1),
                Err(Mismatch::WrongType {
                    found,
                    wanted: "an integer"
                })
            );
        }
        assert_eq!(
            incremented(Some(&json!(i64::MAX)), 1),
            Err(Mismatch::Overflow {
                current: i64::MAX,
                by: 1
            })
        );
        assert_eq!(
            Mismatch::WrongType {
                found: "a string",
                wanted: "an integer"
            }
            .to_string(),
            "the value is a string, not an integer"
        );
    }

    #[test]
    fn a_list_grows_at_its_end() {
        let first = appended(None, &json!("a")).unwrap();
        assert_eq!((first.write, first.answer), (Some(json!(["a"])), 1));
        let next = appended(Some(&json!(["a"])), &json!({"b": 1})).unwrap();
        assert_eq!((next.write, next.answer), (Some(json!(["a", {"b": 1}])), 2));
        let repeat = appended(Some(&json!(["a"])), &json!("a")).unwrap();
        assert_eq!(repeat.answer, 2, "a list keeps repeats");
        assert!(appended(Some(&json!(3)), &json!(1)).is_err());
    }

    #[test]
    fn a_set_is_sorted_unique_and_compares_canonical_json() {
        let first = added(None, &json!("b")).unwrap();
        assert_eq!((first.write, first.answer), (Some(json!(["b"])), true));
        let second = added(Some(&json!(["b"])), &json!("a")).unwrap();
        assert_eq!(
            (second.write, second.answer),
            (Some(json!(["a", "b"])), true)
        );
        let again = added(Some(&json!(["a", "b"])), &json!("a")).unwrap();
        assert_eq!((again.write, again.answer), (None, false));
        // Objects are the same member whatever their key order.
        let set = json!([{"x": 1, "y": 2}]);
        let same: Value = serde_json::from_str(r#"{"y": 2, "x": 1}"#).unwrap();
        assert!(!added(Some(&set), &same).unwrap().answer);
        // Numbers and strings are different members; an unsorted array
        // with repeats (written by hand) becomes a set.
        // (Sorted by canonical text: `"1"` < `"b"` < `1`.)
        let mixed = added(Some(&json!(["b", "b", 1])), &json!("1")).unwrap();
        assert_eq!(mixed.write, Some(json!(["1", "b", 1])));
        assert!(added(Some(&json!({"a": 1})), &json!(1)).is_err());
    }

    #[test]
    fn cas_swaps_only_from_the_value_it_names() {
        let created = swapped(None, &Value::Null, &json!(1));
        assert_eq!(created.write, Some(json!(1)));
        assert!(created.answer.swapped);
        let stale = swapped(Some(&json!(2)), &json!(1), &json!(3));
        assert_eq!(stale.write, None);
        assert_eq!(
            stale.answer,
            Swap {
                swapped: false,
                current: json!(2)
            }
        );
        let object: Value = serde_json::from_str(r#"{"b": [1], "a": "x"}"#).unwrap();
        let by_content = swapped(Some(&object), &json!({"a": "x", "b": [1]}), &json!(0));
        assert!(by_content.answer.swapped);
    }

    #[test]
    fn canonical_text_sorts_keys_and_drops_whitespace() {
        let value: Value =
            serde_json::from_str(r#"{ "b": [1, {"d": null, "c": "é\n"}], "a": true }"#).unwrap();
        assert_eq!(
            canonical(&value),
            r#"{"a":true,"b":[1,{"c":"é\n","d":null}]}"#
        );
    }
}
