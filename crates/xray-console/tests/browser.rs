//! The page in headless Chromium, driven through chromedriver's WebDriver API: the seed
//! demo's map, the `fault` filter, a bad filter's message, a trace's timeline, the
//! auto-refresh, and a 30-node map without overlaps. Screenshots go to
//! `target/artifacts/console-*.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); fails with
//! that instruction when they are missing. `CHROMIUM` and `CHROMEDRIVER` override the paths.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, now, temp_dir};
use serde_json::{Value, json};
use xray_console::demo::{Outcome, seed_trace};
use xray_console::{Console, Store, StoreConfig};

fn tool(var: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.exists(),
        "{} not found: run `{}` once (it installs Debian's chromium), or set {var}",
        path.display(),
        xray_testkit::peers::TEST_COMMAND
    );
    path
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| xray_testkit::workspace_root().join("target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    dir
}

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session over plain HTTP.
struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status();
        let v: Value = r.json().await.expect("webdriver JSON");
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Evaluates `script` until it returns something other than null/false, or panics
    /// with `what` after 10 s.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.script(script, json!([])).await;
            if !(v.is_null() || v == json!(false)) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(b64.as_str().expect("base64"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = artifacts().join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let take = chunk.len().saturating_sub(1);
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}

async fn start_browser(profile: &Path) -> (Driver, Session) {
    let chromium = tool("CHROMIUM", xray_testkit::peers::CHROMIUM);
    let chromedriver = tool("CHROMEDRIVER", xray_testkit::peers::CHROMEDRIVER);
    let port = xray_testkit::free_port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = http.get(format!("{}/status", driver.base)).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1500",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args}
    }}});
    let r: Value = http
        .post(format!("{}/session", driver.base))
        .json(&caps)
        .send()
        .await
        .expect("new session")
        .json()
        .await
        .expect("session JSON");
    let id = r["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("chromium did not start: {r}"))
        .to_owned();
    let url = format!("{}/session/{id}", driver.base);
    (driver, Session { http, url })
}

fn strings(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    s.sort();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_map_filters_traces_and_a_timeline() {
    let fx = Fixture::start(12).await;
    let profile = temp_dir("chromium-profile");
    let (_driver, browser) = start_browser(profile.path()).await;
    browser.goto(&fx.url("/")).await;

    // The map: every node and edge of the seed shape.
    let nodes = browser
        .wait_for("the map", "const n = [...document.querySelectorAll('#map .node')].map(g => g.dataset.id); return n.length ? n : null;")
        .await;
    assert_eq!(
        strings(&nodes),
        [
            "aws:DynamoDB",
            "client",
            "remote:payments.example.com",
            "service:backend1",
            "service:backend2",
            "service:bff",
            "service:frontend"
        ]
    );
    let edges = browser
        .script("return [...document.querySelectorAll('#map path.edge')].map(p => p.dataset.source + '>' + p.dataset.target);", json!([]))
        .await;
    assert_eq!(
        strings(&edges),
        [
            "client>service:frontend",
            "service:backend1>aws:DynamoDB",
            "service:backend2>aws:DynamoDB",
            "service:backend2>remote:payments.example.com",
            "service:bff>service:backend1",
            "service:bff>service:backend2",
            "service:frontend>service:bff"
        ]
    );
    // Status colours: backend2 has a fault slice, backend1 a throttle and an error slice.
    let slices = browser
        .script("return [...document.querySelectorAll('#map .node[data-id=\"service:backend2\"] circle')].map(c => c.getAttribute('class')).filter(Boolean);", json!([]))
        .await;
    assert!(
        slices.as_array().unwrap().contains(&json!("slice-fault")),
        "{slices}"
    );
    let slices = browser
        .script("return [...document.querySelectorAll('#map .node[data-id=\"service:backend1\"] circle')].map(c => c.getAttribute('class')).filter(Boolean);", json!([]))
        .await;
    assert!(
        slices
            .as_array()
            .unwrap()
            .contains(&json!("slice-throttle")),
        "{slices}"
    );
    let rows = browser
        .wait_for("12 trace rows", "const r = document.querySelectorAll('#trace-list tr'); return r.length === 12 ? r.length : null;")
        .await;
    assert_eq!(rows, 12);
    let shot = browser.screenshot("console-map.png").await;
    eprintln!("screenshot: {}", shot.display());

    // The `fault` filter lists exactly the faulty traces.
    let faulty: Vec<String> = {
        let mut v: Vec<String> = fx
            .traces
            .iter()
            .filter(|t| t.outcome == Outcome::Fault)
            .map(|t| t.id.clone())
            .collect();
        v.sort();
        v
    };
    browser.type_into("#filter", "fault").await;
    browser.click("#apply").await;
    let listed = browser
        .wait_for("the fault filter", &format!("const r = [...document.querySelectorAll('#trace-list tr')].map(t => t.dataset.traceId); return r.length === {} ? r : null;", faulty.len()))
        .await;
    assert_eq!(strings(&listed), faulty);

    // A bad filter shows the 400 message with its position.
    browser.type_into("#filter", "fault AND").await;
    browser.click("#apply").await;
    let message = browser
        .wait_for("the filter error", "const e = document.getElementById('filter-error'); return e.style.display === 'block' ? e.textContent : null;")
        .await;
    let message = message.as_str().unwrap();
    assert!(
        message.contains("expected an expression") && message.contains("at position 10"),
        "{message}"
    );
    browser.screenshot("console-bad-filter.png").await;

    // Back to `fault`, open the first faulty trace: its timeline and panel.
    browser.type_into("#filter", "fault").await;
    browser.click("#apply").await;
    browser
        .wait_for("the fault list again", "return document.getElementById('filter-error').style.display === 'none' && document.querySelectorAll('#trace-list tr').length === 2;")
        .await;
    browser.click("#trace-list tr:first-child").await;
    let timeline = browser
        .wait_for("the timeline", "const r = [...document.querySelectorAll('#timeline .tl-row')].map(x => x.dataset.name + ':' + x.dataset.status); return r.length ? r : null;")
        .await;
    let timeline: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        timeline,
        [
            "frontend:fault",
            "bff:fault",
            "bff:fault",
            "backend1:ok",
            "backend1:ok",
            "DynamoDB:ok",
            "backend2:fault",
            "backend2:fault",
            "payments.example.com:ok",
            "DynamoDB:fault"
        ]
    );
    let panel = browser
        .script(
            "return document.getElementById('doc-panel').textContent;",
            json!([]),
        )
        .await;
    assert!(
        panel.as_str().unwrap().contains("\"status\": 502"),
        "{panel}"
    );
    // The failing DynamoDB call shows its cause.
    browser.click("#timeline .tl-row[data-index=\"9\"]").await;
    let cause = browser
        .wait_for("the cause", "const c = document.querySelector('#doc-panel .block-cause'); return c ? c.textContent : null;")
        .await;
    assert!(
        cause.as_str().unwrap().contains("InternalServerError"),
        "{cause}"
    );
    assert!(
        browser
            .script(
                "return !!document.querySelector('#doc-panel .block-aws');",
                json!([])
            )
            .await
            .as_bool()
            .unwrap()
    );
    browser.screenshot("console-trace.png").await;

    // A new faulty trace shows up by itself.
    let extra = seed_trace(15, now());
    assert_eq!(extra.outcome, Outcome::Fault);
    fx.store
        .insert(extra.documents.iter().map(String::as_str))
        .unwrap();
    let listed = browser
        .wait_for("the auto-refresh", "const r = [...document.querySelectorAll('#trace-list tr')].map(t => t.dataset.traceId); return r.length === 3 ? r : null;")
        .await;
    assert!(strings(&listed).contains(&extra.id));

    browser.call(reqwest::Method::DELETE, "", None).await;
    fx.console.shutdown().await.unwrap();
}

const STATUSES: [u16; 4] = [200, 500, 429, 404];

/// A 30+ node map: a gateway fanning out to six services, each calling four downstreams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_map_is_laid_out_without_overlaps() {
    let dir = temp_dir("large-map");
    let store = Store::open(StoreConfig::at(dir.path().join("local.db"))).unwrap();
    let t0 = now() - 60.0;
    let mut docs = Vec::new();
    for s in 0..6u32 {
        let trace_id = format!("1-{:08x}-{:024x}", t0 as u64, 0xb16_0000 + s);
        let call = format!("{:016x}", 0x1000 + s);
        docs.push(json!({"name": "gateway", "id": format!("{:016x}", 0x100 + s), "trace_id": trace_id, "start_time": t0, "end_time": t0 + 1.0,
            "subsegments": [{"name": format!("svc-{s}"), "id": call, "namespace": "remote", "start_time": t0, "end_time": t0 + 0.9}]}));
        let subs: Vec<Value> = (0..4u32)
            .map(|d| {
                let (ns, extra) = if d == 0 {
                    ("aws", json!({"operation": "GetItem"}))
                } else {
                    ("remote", Value::Null)
                };
                let mut sub = json!({"name": format!("dep-{s}-{d}"), "id": format!("{:016x}", 0x2000 + s * 16 + d), "namespace": ns,
                    "start_time": t0 + 0.1, "end_time": t0 + 0.2 + f64::from(d) * 0.1, "http": {"response": {"status": STATUSES[d as usize]}}});
                if !extra.is_null() {
                    sub["aws"] = extra;
                }
                sub
            })
            .collect();
        docs.push(json!({"name": format!("svc-{s}"), "id": format!("{:016x}", 0x3000 + s), "parent_id": call, "trace_id": trace_id,
            "start_time": t0 + 0.05, "end_time": t0 + 0.85, "subsegments": subs}));
    }
    let texts: Vec<String> = docs.iter().map(Value::to_string).collect();
    assert_eq!(
        store
            .insert(texts.iter().map(String::as_str))
            .unwrap()
            .stored,
        12
    );
    let map = store.service_map(100).unwrap();
    assert!(map.nodes.len() >= 31, "{}", map.nodes.len());
    let console = Console::bind("127.0.0.1:0".parse().unwrap(), store)
        .await
        .unwrap();

    let profile = temp_dir("chromium-profile");
    let (_driver, browser) = start_browser(profile.path()).await;
    browser
        .goto(&format!("http://{}/", console.local_addr()))
        .await;
    let count = browser
        .wait_for(
            "the large map",
            "const n = document.querySelectorAll('#map .node').length; return n ? n : null;",
        )
        .await;
    assert_eq!(count.as_u64(), Some(map.nodes.len() as u64));
    // No two nodes (circle plus labels, 150 x 90 px) overlap, and all are inside the SVG.
    let overlaps = browser
        .script(
            "const svg = document.getElementById('map');
             const w = +svg.getAttribute('width'), h = +svg.getAttribute('height');
             const b = [...svg.querySelectorAll('.node')].map(g => { const m = /translate\\(([-\\d.]+),([-\\d.]+)\\)/.exec(g.getAttribute('transform')); return {id: g.dataset.id, x: +m[1], y: +m[2]}; });
             const bad = h > 30 + 8 * 96 ? ['too tall: ' + h + ' px'] : [];
             for (const p of b) if (p.x - 24 < 0 || p.y - 24 < 0 || p.x + 24 > w || p.y + 70 > h) bad.push('outside ' + p.id);
             for (let i = 0; i < b.length; i++) for (let j = i + 1; j < b.length; j++)
               if (Math.abs(b[i].x - b[j].x) < 150 && Math.abs(b[i].y - b[j].y) < 90) bad.push(b[i].id + ' / ' + b[j].id);
             return bad;",
            json!([]),
        )
        .await;
    assert_eq!(overlaps, json!([]), "overlapping nodes");
    browser.screenshot("console-large-map.png").await;
    browser.call(reqwest::Method::DELETE, "", None).await;
    console.shutdown().await.unwrap();
}
