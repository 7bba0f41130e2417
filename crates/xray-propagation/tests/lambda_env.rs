//! Lambda without `Context::xray_trace_id` (older runtimes, custom loops): the header
//! comes from `_X_AMZN_TRACE_ID`, read here through the variable-map hook so no test
//! changes the process environment.

use xray_model::LAMBDA_ENV_VAR;
use xray_propagation::lambda::{invocation_context, invocation_header, invocation_header_from};

fn lambda_env(value: Option<&str>) -> impl Fn(&str) -> Option<String> + use<> {
    let value = value.map(str::to_owned);
    move |name| {
        if name == LAMBDA_ENV_VAR {
            value.clone()
        } else {
            None
        }
    }
}

#[test]
fn header_falls_back_to_the_environment() {
    use opentelemetry::trace::TraceContextExt;

    assert_eq!(invocation_header_from(None, lambda_env(None)), None);

    let env = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let from_env = invocation_header_from(None, lambda_env(Some(env))).unwrap();
    assert_eq!(from_env.to_string(), env);

    // A broken runtime value does not win over a good environment value.
    assert_eq!(
        invocation_header_from(Some("garbage"), lambda_env(Some(env))),
        Some(from_env.clone())
    );

    // The runtime API's value wins when valid.
    let runtime = "Root=1-5759e988-bd862e3fe1be46a994272794;Parent=1111111111111111;Sampled=0";
    let h = invocation_header_from(Some(runtime), lambda_env(Some(env))).unwrap();
    assert_eq!(h.to_string(), runtime);

    let cx = invocation_context(&from_env);
    let sc = cx.span().span_context().clone();
    assert!(sc.is_remote() && sc.is_sampled());
    assert_eq!(sc.span_id().to_string(), "53995c3f42cd8ad8");
}

#[test]
fn invocation_header_reads_the_process_environment() {
    let process = std::env::var(LAMBDA_ENV_VAR).ok();
    assert_eq!(
        invocation_header(None),
        invocation_header_from(None, lambda_env(process.as_deref()))
    );
}
