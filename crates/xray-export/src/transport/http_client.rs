//! An HTTP client built when the first call needs it.

use std::fmt;
use std::sync::{Arc, OnceLock};

type Build = dyn Fn() -> Result<reqwest::Client, String> + Send + Sync;

/// A `reqwest::Client` built on first use and shared by every clone: a process that never
/// makes an HTTP call never sets up TLS (root certificates, the crypto provider), which
/// keeps an idle exporter small.
///
/// A failed build is returned to the caller and tried again on the next call.
///
/// ```
/// use xray_export::transport::LazyHttpClient;
/// let lazy = LazyHttpClient::new(|| reqwest::Client::builder().build().map_err(|e| e.to_string()));
/// assert!(lazy.built().is_none());
/// let client = lazy.get().unwrap();
/// assert!(lazy.clone().built().is_some(), "clones share it");
/// # let _ = client;
/// ```
#[derive(Clone)]
pub struct LazyHttpClient {
    cell: Arc<OnceLock<reqwest::Client>>,
    build: Arc<Build>,
}

impl LazyHttpClient {
    /// A client that `build` makes on first use.
    pub fn new<F>(build: F) -> LazyHttpClient
    where
        F: Fn() -> Result<reqwest::Client, String> + Send + Sync + 'static,
    {
        LazyHttpClient {
            cell: Arc::new(OnceLock::new()),
            build: Arc::new(build),
        }
    }

    /// The client, built now if it was not yet.
    ///
    /// # Errors
    ///
    /// The build's message when the client cannot be built.
    pub fn get(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.cell.get() {
            return Ok(client);
        }
        let client = (self.build)()?;
        Ok(self.cell.get_or_init(|| client))
    }

    /// The client if it is built.
    pub fn built(&self) -> Option<&reqwest::Client> {
        self.cell.get()
    }
}

/// `given` (built now if it was not yet), else reqwest's default client: what a transport
/// calls when its first request is about to go out.
pub(crate) fn client_or_default(given: Option<&LazyHttpClient>) -> Result<reqwest::Client, String> {
    match given {
        Some(lazy) => lazy.get().cloned(),
        None => LazyHttpClient::default().get().cloned(),
    }
}

/// reqwest's default client, built on first use.
impl Default for LazyHttpClient {
    fn default() -> LazyHttpClient {
        LazyHttpClient::new(|| {
            reqwest::Client::builder()
                .build()
                .map_err(|e| format!("HTTP client: {e}"))
        })
    }
}

/// A client that is built already.
impl From<reqwest::Client> for LazyHttpClient {
    fn from(client: reqwest::Client) -> LazyHttpClient {
        let lazy = LazyHttpClient::new(|| Err("unreachable: built already".to_owned()));
        let _ = lazy.cell.set(client);
        lazy
    }
}

impl fmt::Debug for LazyHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyHttpClient")
            .field("built", &self.built().is_some())
            .finish()
    }
}
