//! The rtbcore exchange protocol, generated from `proto/rtbcore/v1/bidding.proto` (the contract,
//! documented field by field there): prost messages for the binary subprotocol and serde
//! implementations following protobuf's canonical JSON mapping for the JSON subprotocol.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/rtbcore.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/rtbcore.v1.serde.rs"));
}

pub use pbjson_types;
pub use prost;

/// The subprotocol of binary frames holding protobuf-encoded `ClientFrame` / `ServerFrame`.
pub const SUBPROTOCOL_PROTO: &str = "rtbcore.v1.proto";
/// The subprotocol of text frames holding the same messages in canonical JSON.
pub const SUBPROTOCOL_JSON: &str = "rtbcore.v1.json";

#[cfg(test)]
mod tests {
    use super::v1::*;
    use prost::Message;

    fn place(micros: i64) -> ClientFrame {
        ClientFrame {
            messages: vec![BidMessage {
                request_id: "r1".into(),
                message: Some(bid_message::Message::PlaceBid(PlaceBid {
                    auction_id: "a1".into(),
                    amount: Some(Money { currency: "USD".into(), micros }),
                    ..Default::default()
                })),
            }],
        }
    }

    #[test]
    fn binary_round_trip() {
        let f = place(2_500_000);
        let back = ClientFrame::decode(f.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn json_uses_the_canonical_mapping() {
        let s = serde_json::to_string(&place(2_500_000)).unwrap();
        // lowerCamelCase names, int64 as a string
        assert!(s.contains(r#""requestId":"r1""#), "{s}");
        assert!(s.contains(r#""placeBid""#), "{s}");
        assert!(s.contains(r#""micros":"2500000""#), "{s}");
        let back: ClientFrame = serde_json::from_str(&s).unwrap();
        assert_eq!(back, place(2_500_000));
    }

    #[test]
    fn json_accepts_numbers_and_rejects_nan_micros() {
        let ok = r#"{"messages":[{"placeBid":{"auctionId":"a","amount":{"micros":7}}}]}"#;
        assert!(serde_json::from_str::<ClientFrame>(ok).is_ok());
        let bad = r#"{"messages":[{"placeBid":{"auctionId":"a","amount":{"micros":"NaN"}}}]}"#;
        assert!(serde_json::from_str::<ClientFrame>(bad).is_err());
    }
}
