//! The wire codec. jetflow writes MessagePack (compact, fast) for the
//! high-volume messages — batches, tasks, results — and JSON wherever people
//! read: KV values, events. It reads both everywhere, chosen by the
//! `Content-Type` header, or sniffed when the header is absent, so anyone can
//! publish a job with `nats pub` and a JSON body.

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::headers::CONTENT_TYPE;

/// `Content-Type` of MessagePack payloads.
pub const MSGPACK: &str = "application/msgpack";
/// `Content-Type` of JSON payloads.
pub const JSON: &str = "application/json";

/// The two encodings jetflow speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MessagePack, maps with field names (rmp-serde "named").
    MsgPack,
    /// UTF-8 JSON.
    Json,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::MsgPack => "MessagePack",
            Format::Json => "JSON",
        })
    }
}

impl Format {
    /// The `Content-Type` value for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::MsgPack => MSGPACK,
            Format::Json => JSON,
        }
    }

    /// Picks the format of a received payload: the `Content-Type` header when
    /// it names one we know, else a sniff — JSON documents start with `{` or
    /// `[` (after whitespace), which as MessagePack would be a bare integer,
    /// never one of our messages.
    pub fn detect(headers: Option<&HeaderMap>, payload: &[u8]) -> Format {
        let declared = headers
            .and_then(|h| h.get(CONTENT_TYPE))
            .map(|v| v.as_str().to_ascii_lowercase());
        match declared.as_deref() {
            Some(ct) if ct.contains("json") => Format::Json,
            Some(ct) if ct.contains("msgpack") || ct.contains("messagepack") => Format::MsgPack,
            _ => {
                let first = payload.iter().find(|b| !b.is_ascii_whitespace());
                match first {
                    Some(b'{') | Some(b'[') => Format::Json,
                    _ => Format::MsgPack,
                }
            }
        }
    }
}

/// A payload that could not be decoded; the message says why, for the DLQ.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode {format} payload: {reason}")]
pub struct DecodeError {
    /// The format we tried.
    pub format: Format,
    /// The decoder's complaint, with the field path where known.
    pub reason: String,
}

/// Encodes `value` as MessagePack with field names.
pub fn to_msgpack<T: Serialize>(value: &T) -> Bytes {
    // Our wire types are plain structs and enums of strings, numbers, maps and
    // JSON values: encoding them into a Vec cannot fail.
    Bytes::from(rmp_serde::to_vec_named(value).expect("wire types always encode to MessagePack"))
}

/// Encodes `value` as JSON.
pub fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("wire types always encode to JSON"))
}

/// Encodes `value` in `format`.
pub fn encode<T: Serialize>(format: Format, value: &T) -> Bytes {
    match format {
        Format::MsgPack => to_msgpack(value),
        Format::Json => to_json(value),
    }
}

/// Headers that declare `format`, to send along with an encoded payload.
pub fn headers_for(format: Format) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, format.content_type());
    headers
}

/// Decodes a received payload in whichever format it is in.
pub fn decode<T: DeserializeOwned>(
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<T, DecodeError> {
    let format = Format::detect(headers, payload);
    decode_as(format, payload)
}

/// Decodes `payload` as `format`, naming the offending field on failure.
///
/// Tracking the field path costs on every message, and almost every
/// message is fine: decode plainly first, and only a payload that fails is
/// decoded again, with the path, to say where.
pub fn decode_as<T: DeserializeOwned>(format: Format, payload: &[u8]) -> Result<T, DecodeError> {
    let fail = |reason: String| DecodeError { format, reason };
    match format {
        Format::Json => {
            if let Ok(value) = T::deserialize(&mut serde_json::Deserializer::from_slice(payload)) {
                return Ok(value);
            }
            let de = &mut serde_json::Deserializer::from_slice(payload);
            serde_path_to_error::deserialize(de).map_err(|e| fail(describe(e)))
        }
        Format::MsgPack => {
            if let Ok(value) = T::deserialize(&mut rmp_serde::Deserializer::new(payload)) {
                return Ok(value);
            }
            let de = &mut rmp_serde::Deserializer::new(payload);
            serde_path_to_error::deserialize(de).map_err(|e| fail(describe(e)))
        }
    }
}

fn describe<E: std::fmt::Display>(err: serde_path_to_error::Error<E>) -> String {
    let path = err.path().to_string();
    if path == "." || path.is_empty() {
        err.inner().to_string()
    } else {
        format!("{path}: {}", err.inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Sample {
        id: String,
        n: u32,
        data: serde_json::Value,
    }

    fn sample() -> Sample {
        Sample {
            id: "a".into(),
            n: 3,
            data: serde_json::json!({"k": [1, "two", null]}),
        }
    }

    #[test]
    fn msgpack_and_json_round_trip() {
        for format in [Format::MsgPack, Format::Json] {
            let bytes = encode(format, &sample());
            let headers = headers_for(format);
            let back: Sample = decode(Some(&headers), &bytes).unwrap();
            assert_eq!(back, sample());
        }
    }

    #[test]
    fn sniffs_when_no_header() {
        let json = to_json(&sample());
        let msgpack = to_msgpack(&sample());
        assert_eq!(Format::detect(None, &json), Format::Json);
        assert_eq!(Format::detect(None, b"  \n{}"), Format::Json);
        assert_eq!(Format::detect(None, &msgpack), Format::MsgPack);
        let back: Sample = decode(None, &json).unwrap();
        assert_eq!(back, sample());
        let back: Sample = decode(None, &msgpack).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn errors_name_the_field() {
        let err = decode::<Sample>(None, br#"{"id": "a", "n": "x", "data": 1}"#).unwrap_err();
        assert!(err.reason.starts_with("n:"), "{}", err.reason);
        let err = decode::<Sample>(None, br#"{"id": "a"}"#).unwrap_err();
        assert!(err.reason.contains("missing field `n`"), "{}", err.reason);
        assert!(decode::<Sample>(None, b"\xc1garbage").is_err());
    }
}
