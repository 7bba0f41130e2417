//! Local mode (`--export local`): the documents go into `xray-console`'s SQLite store and
//! the console page shows them; nothing is sent to AWS.

use xray_console::{Store, StoreConfig};

use crate::config::Settings;

/// Opens (or creates) the store at `settings.store` with the console's default limits.
/// SQLite is blocking, so this runs off the async workers.
///
/// # Errors
///
/// A message when the store cannot be opened (see `xray_console::Store::open`).
pub async fn open_store(settings: &Settings) -> Result<Store, String> {
    let config = StoreConfig::at(settings.store.clone());
    tokio::task::spawn_blocking(move || Store::open(config))
        .await
        .map_err(|e| format!("local store: {e}"))?
        .map_err(|e| e.to_string())
}
