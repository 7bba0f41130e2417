//! End-to-end tests of the workspace: traced services (the `e2e-service` binary) on
//! loopback, moto's DynamoDB, Python `aws-xray-sdk` peers, documents received on a UDP
//! listener standing in for the X-Ray daemon. The tests are in `e2e.rs`.
