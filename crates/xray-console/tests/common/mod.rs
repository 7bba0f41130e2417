//! Shared by the integration tests: a store in a fresh temporary folder, filled with the
//! seed-shaped sample traces, and a console on a free loopback port.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use xray_console::demo::{DemoTrace, seed_traces};
use xray_console::{Console, Store, StoreConfig};

pub(crate) use xray_testkit::TempDir;

/// A fresh temporary folder, removed on drop.
pub(crate) fn temp_dir(tag: &str) -> TempDir {
    xray_testkit::temp_dir(&format!("console-{tag}"))
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .floor()
}

/// A console over a store holding `count` sample traces that started in the last minutes.
pub(crate) struct Fixture {
    pub dir: TempDir,
    pub store: Store,
    pub traces: Vec<DemoTrace>,
    pub console: Console,
}

impl Fixture {
    pub(crate) async fn start(count: u32) -> Fixture {
        let dir = temp_dir("fixture");
        let store = Store::open(StoreConfig::at(dir.path().join("local.db"))).expect("open store");
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

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.console.local_addr())
    }
}
