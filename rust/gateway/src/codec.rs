//! Frames on the wire: a `ClientFrame` from a binary (protobuf) or text (canonical JSON)
//! WebSocket message, and a `ServerFrame` to one. Decoding never panics on any input (fuzzed in
//! `tests/fuzz_codec.rs`).

use rtbcore_proto::prost::Message as _;
use rtbcore_proto::v1::{BidEvent, ClientFrame, ServerFrame};

/// Which subprotocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Proto,
    Json,
}

/// Why a message did not decode.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// A text message on the binary subprotocol or the reverse (close 1003).
    WrongType,
    /// Bytes that are not a `ClientFrame` (answered with `Error{MALFORMED}`).
    Malformed(String),
}

pub fn decode_binary(wire: Wire, data: &[u8]) -> Result<ClientFrame, DecodeError> {
    match wire {
        Wire::Proto => ClientFrame::decode(data)
            .map_err(|e| DecodeError::Malformed(format!("client frame: {e}"))),
        Wire::Json => Err(DecodeError::WrongType),
    }
}

pub fn decode_text(wire: Wire, text: &str) -> Result<ClientFrame, DecodeError> {
    match wire {
        Wire::Json => serde_json::from_str(text)
            .map_err(|e| DecodeError::Malformed(format!("client frame: {e}"))),
        Wire::Proto => Err(DecodeError::WrongType),
    }
}

/// Appends events to `buf` as they stand in an encoded `ServerFrame` (its repeated field 1).
/// Encoded frames concatenate: the bytes of two frames are the frame holding both's events.
pub fn encode_events_into<'a>(evs: impl IntoIterator<Item = &'a BidEvent>, buf: &mut Vec<u8>) {
    for ev in evs {
        rtbcore_proto::prost::encoding::message::encode(1, ev, buf);
    }
}

/// A server frame as bytes (proto) or text (JSON).
pub enum Encoded {
    Binary(Vec<u8>),
    Text(String),
}

pub fn encode(wire: Wire, events: Vec<BidEvent>) -> Encoded {
    let f = ServerFrame { events };
    match wire {
        Wire::Proto => Encoded::Binary(f.encode_to_vec()),
        // serialising generated messages cannot fail (no maps with non-string keys, no floats
        // that JSON cannot hold: non-finite doubles are written as strings by pbjson)
        Wire::Json => {
            Encoded::Text(serde_json::to_string(&f).unwrap_or_else(|_| "{\"events\":[]}".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_events_concatenate_into_one_frame() {
        let ev = |seq| BidEvent { seq, event_id: format!("a:{seq}"), ..Default::default() };
        let mut buf = Vec::new();
        encode_events_into(&[ev(1), ev(2)], &mut buf);
        encode_events_into(&[ev(3)], &mut buf);
        let Encoded::Binary(whole) = encode(Wire::Proto, vec![ev(1), ev(2), ev(3)]) else {
            panic!("binary")
        };
        assert_eq!(buf, whole);
        assert_eq!(ServerFrame::decode(buf.as_slice()).unwrap().events.len(), 3);
    }

    #[test]
    fn wrong_frame_types_are_told_apart_from_garbage() {
        assert_eq!(decode_text(Wire::Proto, "{}"), Err(DecodeError::WrongType));
        assert_eq!(decode_binary(Wire::Json, b"\x0a"), Err(DecodeError::WrongType));
        assert!(matches!(decode_binary(Wire::Proto, b"\x0a\xff"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_text(Wire::Json, "{"), Err(DecodeError::Malformed(_))));
        assert_eq!(decode_text(Wire::Json, "{}").unwrap(), ClientFrame::default());
    }
}
