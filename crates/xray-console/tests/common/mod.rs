//! Shared by the integration tests: a store in a fresh temporary folder, filled with the
//! seed-shaped sample traces, and a console on a free loopback port.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use xray_console::demo::{DemoTrace, seed_traces};
use xray_console::{Console, Store, StoreConfig};

/// A folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xray-console-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .floor()
}

/// A console over a store holding `count` sample traces that started in the last minutes.
pub struct Fixture {
    pub dir: TempDir,
    pub store: Store,
    pub traces: Vec<DemoTrace>,
    pub console: Console,
}

impl Fixture {
    pub async fn start(count: u32) -> Fixture {
        let dir = TempDir::new("fixture");
        let store = Store::open(StoreConfig::at(dir.0.join("local.db"))).expect("open store");
        let traces = seed_traces(count, now() - 600.0);
        for t in &traces {
            let report = store
                .insert(t.documents.iter().map(String::as_str))
                .expect("insert");
            assert_eq!(report.stored, t.documents.len(), "{:?}", report.rejected);
        }
        let console = Console::bind("127.0.0.1:0".parse().unwrap(), store.clone())
            .await
            .expect("bind console");
        Fixture {
            dir,
            store,
            traces,
            console,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.console.local_addr())
    }
}
