//! The services behind the runnable examples (`cargo run --example hello`), kept in a
//! library so they can be read, reused and tested apart from their `main`.
#![warn(missing_docs)]

pub mod hello {
    //! The `hello` service: `GET /` calls `GET /leaf` on itself through the traced
    //! client and answers 200, `GET /fail` answers 500, `GET /health` answers 200.

    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::get;
    use reqwest_middleware::ClientWithMiddleware;
    use tracing_xray::Propagator;
    use tracing_xray::propagation::client::XrayMiddleware;
    use tracing_xray::propagation::server::XrayServerLayer;

    /// The address `HELLO_ADDR` names, else `127.0.0.1:3000`.
    pub fn address() -> Result<SocketAddr, std::net::AddrParseError> {
        std::env::var("HELLO_ADDR")
            .ok()
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
            .trim()
            .parse()
    }

    struct App {
        client: ClientWithMiddleware,
        leaf_url: String,
    }

    /// The routes, every request traced by the server layer; `base_url` is where the
    /// service itself listens (for `GET /leaf`). `propagator` is the layer's, so both
    /// directions read and write the headers `OTEL_PROPAGATORS` selects.
    pub fn router(base_url: &str, propagator: Propagator) -> Router {
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(XrayMiddleware::new().with_propagator(propagator.clone()))
            .build();
        let app = Arc::new(App {
            client,
            leaf_url: format!("{}/leaf", base_url.trim_end_matches('/')),
        });
        Router::new()
            .route("/", get(root))
            .route("/leaf", get(|| async { "leaf" }))
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose\n") }),
            )
            .route("/health", get(|| async { "ok\n" }))
            .with_state(app)
            .layer(XrayServerLayer::new().with_propagator(propagator))
    }

    async fn root(State(app): State<Arc<App>>) -> (StatusCode, String) {
        match app.client.get(&app.leaf_url).send().await {
            Ok(r) if r.status().is_success() => (StatusCode::OK, "hello\n".to_owned()),
            Ok(r) => (
                StatusCode::BAD_GATEWAY,
                format!("leaf answered {}\n", r.status()),
            ),
            Err(e) => (StatusCode::BAD_GATEWAY, format!("leaf failed: {e}\n")),
        }
    }
}
