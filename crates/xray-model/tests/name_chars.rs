//! `is_name_char` is exactly the published schema's `name` pattern, for every character of
//! the Basic Multilingual Plane (the generated table in `src/name_chars.rs` comes from
//! that pattern through `cargo xtask name-chars`; this test keeps them from drifting).

use xray_model::limits::is_name_char;

#[test]
fn is_name_char_matches_the_schema_pattern_on_the_whole_bmp() {
    let schema: serde_json::Value =
        serde_json::from_str(xray_testkit::SEGMENT_SCHEMA).expect("schema");
    let pattern = schema["properties"]["name"]["pattern"]
        .as_str()
        .expect("name pattern");
    let re = regex::Regex::new(pattern).expect("the pattern compiles");
    let mut buf = [0u8; 4];
    let (mut checked, mut accepted) = (0, 0);
    let mut wrong = Vec::new();
    for c in (0..=0xFFFF).filter_map(char::from_u32) {
        let schema_says = re.is_match(c.encode_utf8(&mut buf));
        if schema_says != is_name_char(c) {
            wrong.push(format!("U+{:04X} schema={schema_says}", c as u32));
        }
        checked += 1;
        accepted += usize::from(schema_says);
    }
    assert!(
        wrong.is_empty(),
        "is_name_char disagrees with the schema: {wrong:?}"
    );
    // Every BMP scalar value was asked (0x10000 code points less 0x800 surrogates), and
    // the pattern is neither empty nor everything.
    assert_eq!(checked, 0x10000 - 0x800);
    assert!(
        accepted > 40_000 && accepted < checked,
        "{accepted} accepted"
    );
}
