//! Property tests: ids and headers survive a round trip through their text forms.

use proptest::prelude::*;
use xray_model::{Sampled, SegmentId, TraceHeader, TraceId};

fn sampled() -> impl Strategy<Value = Sampled> {
    prop_oneof![
        Just(Sampled::Yes),
        Just(Sampled::No),
        Just(Sampled::Requested),
        Just(Sampled::Unknown),
    ]
}

fn field() -> impl Strategy<Value = (String, String)> {
    // Extra fields: token keys that are not Root/Parent/Sampled, values without `;`.
    ("[A-Za-z][A-Za-z0-9_.-]{0,12}", "[ -:<-~]{0,20}")
        .prop_filter("reserved key", |(k, _)| {
            !["root", "parent", "sampled"].contains(&k.to_ascii_lowercase().as_str())
        })
        .prop_map(|(k, v)| (k, v.trim().to_owned()))
}

proptest! {
    #[test]
    fn trace_id_text_round_trip(v in any::<u128>()) {
        let id = TraceId::from_u128(v);
        prop_assert_eq!(id.to_string().parse::<TraceId>().unwrap(), id);
        prop_assert_eq!(TraceId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn w3c_hex_and_xray_forms_carry_the_same_bits(v in any::<u128>()) {
        let id = TraceId::from_hex32(&format!("{v:032x}")).unwrap();
        prop_assert_eq!(id.to_u128(), v);
        let text = id.to_string();
        prop_assert_eq!(text.replace('-', "")[1..].to_string(), format!("{v:032x}"));
    }

    #[test]
    fn segment_id_round_trip(v in any::<u64>()) {
        let id = SegmentId::from_u64(v);
        prop_assert_eq!(id.to_string().parse::<SegmentId>().unwrap(), id);
        prop_assert_eq!(SegmentId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn header_round_trip(
        root in any::<u128>(),
        parent in proptest::option::of(any::<u64>()),
        sampled in sampled(),
        fields in proptest::collection::vec(field(), 0..4),
    ) {
        let header = TraceHeader {
            root: TraceId::from_u128(root),
            parent: parent.map(SegmentId::from_u64),
            sampled,
            fields,
        };
        let text = header.to_string();
        prop_assert_eq!(TraceHeader::parse(&text).unwrap(), header);
    }

    #[test]
    fn spaces_and_case_do_not_change_the_meaning(
        root in any::<u128>(),
        parent in any::<u64>(),
        sampled in sampled(),
    ) {
        let header = TraceHeader::new(TraceId::from_u128(root), Some(SegmentId::from_u64(parent)), sampled);
        let spaced = header.to_string().replace(';', " ; ").replace('=', " = ").to_ascii_uppercase();
        prop_assert_eq!(TraceHeader::parse(&spaced).unwrap(), header);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = TraceHeader::parse(&text);
        let _ = xray_model::parse_datagram(text.as_bytes());
    }
}
