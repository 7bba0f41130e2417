//! Fuzzes the daemon datagram parser: never panics on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xray_model::parse_datagram(data);
});
