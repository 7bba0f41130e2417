//! Lambda without `Context::xray_trace_id` (older runtimes, custom loops): the header
//! comes from `_X_AMZN_TRACE_ID`. Its own test binary: it changes the environment.

use xray_model::LAMBDA_ENV_VAR;
use xray_propagation::lambda::{invocation_context, invocation_header};

#[test]
fn header_falls_back_to_the_environment() {
    use opentelemetry::trace::TraceContextExt;

    // SAFETY: the only test in this binary; no other thread reads the environment.
    unsafe { std::env::remove_var(LAMBDA_ENV_VAR) };
    assert_eq!(invocation_header(None), None);

    let env = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    // SAFETY: as above.
    unsafe { std::env::set_var(LAMBDA_ENV_VAR, env) };
    let from_env = invocation_header(None).unwrap();
    assert_eq!(from_env.to_string(), env);

    // A broken runtime value does not win over a good environment value.
    assert_eq!(invocation_header(Some("garbage")), Some(from_env.clone()));

    // The runtime API's value wins when valid.
    let runtime = "Root=1-5759e988-bd862e3fe1be46a994272794;Parent=1111111111111111;Sampled=0";
    let h = invocation_header(Some(runtime)).unwrap();
    assert_eq!(h.to_string(), runtime);

    let cx = invocation_context(&from_env);
    let sc = cx.span().span_context().clone();
    assert!(sc.is_remote() && sc.is_sampled());
    assert_eq!(sc.span_id().to_string(), "53995c3f42cd8ad8");
    unsafe { std::env::remove_var(LAMBDA_ENV_VAR) };
}
