//! Fuzzes the `X-Amzn-Trace-Id` parser: never panics, and what parses writes back to text
//! that parses to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xray_model::TraceHeader;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(header) = TraceHeader::parse(&text) {
        assert_eq!(TraceHeader::parse(&header.to_string()), Ok(header));
    }
});
