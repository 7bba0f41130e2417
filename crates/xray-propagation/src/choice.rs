//! Which propagator an integration (server layer, client middleware, AWS SDK interceptor)
//! runs: OpenTelemetry's global one by default, so `OTEL_PROPAGATORS` and whatever the
//! application installed apply without extra wiring, or one given to the integration.

use std::fmt;
use std::sync::Arc;

use opentelemetry::propagation::TextMapPropagator;

use crate::XrayPropagator;

/// The global propagator, or an integration's own.
#[derive(Clone, Default)]
pub(crate) enum PropagatorChoice {
    /// `opentelemetry::global`'s text-map propagator; `X-Amzn-Trace-Id` alone while none
    /// is installed (the global default is a no-op that reads and writes nothing).
    #[default]
    Global,
    /// Given with `with_propagator`.
    Own(Arc<dyn TextMapPropagator + Send + Sync>),
}

impl PropagatorChoice {
    pub(crate) fn own(propagator: impl TextMapPropagator + Send + Sync + 'static) -> Self {
        PropagatorChoice::Own(Arc::new(propagator))
    }

    /// Runs `f` with the chosen propagator.
    pub(crate) fn with<R>(&self, mut f: impl FnMut(&dyn TextMapPropagator) -> R) -> R {
        match self {
            PropagatorChoice::Own(p) => f(p.as_ref()),
            PropagatorChoice::Global => opentelemetry::global::get_text_map_propagator(|p| {
                if p.fields().next().is_none() {
                    f(&XrayPropagator::new())
                } else {
                    f(p)
                }
            }),
        }
    }
}

impl fmt::Debug for PropagatorChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropagatorChoice::Global => f.write_str("Global"),
            PropagatorChoice::Own(p) => f
                .debug_tuple("Own")
                .field(&p.fields().collect::<Vec<_>>())
                .finish(),
        }
    }
}
