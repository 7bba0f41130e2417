//! The `binary` benchmark's parts: child processes measured from `/proc` (CPU time, RSS)
//! and killed on drop, a keep-alive OTLP/HTTP load generator and a paced daemon-protocol
//! UDP sender. The stub `PutTraceSegments` API that counts what it receives is
//! `xray_testkit::counting_api`.
//!
//! Everything listens on loopback, on ports the OS picks; nothing here is specific to
//! xray-bridge, so the same workload drives every server compared.

pub mod load;
pub mod pin;
pub mod process;
pub mod workload;
