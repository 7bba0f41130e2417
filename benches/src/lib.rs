//! Shared input and helpers of the side-by-side benchmarks: realistic span batches that
//! both our translator and opentelemetry-aws 0.21 translate in full, a counting allocator,
//! the in-app request and the ways to run it (`sides`), the `binary` bench's load generator, stub API and process measurements, and a no-op
//! executor for futures that finish without waiting.

pub mod alloc;
pub mod binary;
pub mod request;
pub mod sides;
pub mod spans;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that completes without waiting (both UDP clients send synchronously).
pub fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("future waited; the benchmark expects a ready send"),
    }
}
