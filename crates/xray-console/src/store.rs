//! The SQLite store: documents as received plus indexed columns, traces assembled on
//! read, bounded by age and size (whole traces, the first received removed first).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::facts::{DocFacts, Status};
use crate::filter::Filter;
use crate::servicemap::ServiceMap;
use crate::summary::TraceSummary;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT,
    subsegment INTEGER NOT NULL,
    name TEXT NOT NULL,
    service TEXT,
    origin TEXT,
    start_time REAL NOT NULL,
    end_time REAL,
    error INTEGER NOT NULL,
    throttle INTEGER NOT NULL,
    fault INTEGER NOT NULL,
    any_error INTEGER NOT NULL,
    any_throttle INTEGER NOT NULL,
    any_fault INTEGER NOT NULL,
    http_status INTEGER,
    http_method TEXT,
    http_url TEXT,
    annotations TEXT NOT NULL,
    received_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    UNIQUE (trace_id, id)
);
-- The JSON text lives apart, so that scans of the indexed columns stay small.
CREATE TABLE IF NOT EXISTS bodies (
    seq INTEGER PRIMARY KEY,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_start ON documents (start_time);
CREATE INDEX IF NOT EXISTS documents_service ON documents (service);
CREATE INDEX IF NOT EXISTS documents_http_status ON documents (http_status);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_received REAL NOT NULL,
    bytes INTEGER NOT NULL,
    documents INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_first ON traces (first_seq);
CREATE INDEX IF NOT EXISTS traces_last ON traces (last_received);
";

/// Where the store lives and how much it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The database file (its folder is created when missing).
    pub path: PathBuf,
    /// Traces that received no document for this long are removed (default 24 hours).
    pub max_age: Duration,
    /// The most document JSON kept, in bytes (default 256 MiB); indexes come on top.
    /// Over it, whole traces go, the first received first.
    pub max_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::at(StoreConfig::default_path())
    }
}

impl StoreConfig {
    /// Default limits at `path`.
    pub fn at(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            max_age: Duration::from_secs(24 * 3600),
            max_bytes: 256 << 20,
        }
    }

    /// `$XDG_DATA_HOME/xray-bridge/local.db`, else `$HOME/.local/share/xray-bridge/local.db`,
    /// else `./xray-bridge-local.db`.
    pub fn default_path() -> PathBuf {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(data) = non_empty("XDG_DATA_HOME") {
            return Path::new(&data).join("xray-bridge/local.db");
        }
        if let Some(home) = non_empty("HOME") {
            return Path::new(&home).join(".local/share/xray-bridge/local.db");
        }
        PathBuf::from("xray-bridge-local.db")
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("local store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store's folder could not be created.
    #[error("local store: cannot create {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was written by a newer version with another layout.
    #[error("local store {0}: made by a newer version (schema {1}); use another path")]
    NewerSchema(PathBuf, i64),
}

/// What one insert did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Documents stored (a document with an id already stored replaces it).
    pub stored: usize,
    /// Documents refused, by their index in the batch, with the reason.
    pub rejected: Vec<(usize, String)>,
    /// Traces removed to keep the store within its limits.
    pub evicted_traces: usize,
}

/// The store's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Traces kept.
    pub traces: u64,
    /// Documents kept.
    pub documents: u64,
    /// Bytes of document JSON kept.
    pub bytes: u64,
    /// Changes whenever the store does.
    pub version: u64,
}

/// Traces matching a filter, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TraceList {
    /// The matching traces (at most the limit asked for).
    pub traces: Vec<TraceSummary>,
    /// How many are listed.
    pub count: usize,
    /// How many matched.
    pub matched: usize,
    /// How many traces the store has.
    pub total: usize,
}

/// The local store; clones share one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    config: StoreConfig,
    version: AtomicU64,
}

struct State {
    conn: Connection,
    total_bytes: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Store {
    /// Opens (or creates) the store at `config.path` and applies the age and size limits.
    ///
    /// # Errors
    ///
    /// [`StoreError::Folder`] when the file's folder cannot be created,
    /// [`StoreError::NewerSchema`] for a file written by a newer version, and
    /// [`StoreError::Sqlite`] when SQLite cannot open or set up the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_console::{Store, StoreConfig};
    ///
    /// let path = std::env::temp_dir().join(format!("xray-console-doc-{}.db", std::process::id()));
    /// let store = Store::open(StoreConfig::at(&path))?;
    /// let report = store.insert([
    ///     r#"{"name":"shop","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#,
    ///     "not a document",
    /// ])?;
    /// assert_eq!((report.stored, report.rejected.len()), (1, 1));
    /// assert_eq!(store.trace_documents("1-581cf771-a006649127e371903a2de979")?.len(), 1);
    /// # drop(store);
    /// # for suffix in ["", "-wal", "-shm"] {
    /// #     let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    /// # }
    /// # Ok::<(), xray_console::StoreError>(())
    /// ```
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        if let Some(folder) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
                path: folder.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(&config.path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema(config.path.clone(), version));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let total_bytes: i64 =
            conn.query_row("SELECT COALESCE(SUM(bytes), 0) FROM traces", [], |r| {
                r.get(0)
            })?;
        let last_seq: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM documents", [], |r| {
                r.get(0)
            })?;
        let store = Store {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    conn,
                    total_bytes: total_bytes.max(0) as u64,
                }),
                config,
                version: AtomicU64::new(last_seq.max(0) as u64),
            }),
        };
        store.evict_at(now_secs())?;
        Ok(store)
    }

    /// Its configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves SQLite consistent (transactions).
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.inner.version.fetch_add(1, Ordering::Relaxed);
    }

    /// Stores a batch of documents (JSON text) in one transaction, then applies the limits.
    /// Documents that are not segment documents are refused, the others stored.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] when SQLite fails.
    pub fn insert<'a>(
        &self,
        docs: impl IntoIterator<Item = &'a str>,
    ) -> Result<InsertReport, StoreError> {
        self.insert_at(docs, now_secs())
    }

    /// [`Store::insert`] with the clock given (seconds since the epoch).
    pub(crate) fn insert_at<'a>(
        &self,
        docs: impl IntoIterator<Item = &'a str>,
        now: f64,
    ) -> Result<InsertReport, StoreError> {
        let mut report = InsertReport::default();
        let mut guard = self.lock();
        let state = &mut *guard;
        let tx = state.conn.transaction()?;
        let mut total = state.total_bytes;
        for (index, json) in docs.into_iter().enumerate() {
            match DocFacts::parse(json) {
                Ok(facts) => {
                    total = insert_one(&tx, &facts, json, now, total)?;
                    report.stored += 1;
                }
                Err(reason) => report.rejected.push((index, reason)),
            }
        }
        let (evicted, total) = evict(&tx, &self.inner.config, now, total)?;
        tx.commit()?;
        state.total_bytes = total;
        report.evicted_traces = evicted;
        drop(guard);
        if report.stored > 0 || evicted > 0 {
            self.bump();
        }
        Ok(report)
    }

    /// Applies the age and size limits now; returns how many traces went.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] when SQLite fails.
    pub fn evict(&self) -> Result<usize, StoreError> {
        self.evict_at(now_secs())
    }

    fn evict_at(&self, now: f64) -> Result<usize, StoreError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let tx = state.conn.transaction()?;
        let (evicted, total) = evict(&tx, &self.inner.config, now, state.total_bytes)?;
        tx.commit()?;
        state.total_bytes = total;
        drop(guard);
        if evicted > 0 {
            self.bump();
        }
        Ok(evicted)
    }

    /// Counts and the change version.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] when SQLite fails.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let guard = self.lock();
        let (traces, documents): (i64, i64) = guard.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(documents), 0) FROM traces",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(StoreStats {
            traces: traces.max(0) as u64,
            documents: documents.max(0) as u64,
            bytes: guard.total_bytes,
            version: self.inner.version.load(Ordering::Relaxed),
        })
    }

    /// Every trace's summary, in no particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] when SQLite fails.
    pub fn summaries(&self) -> Result<Vec<TraceSummary>, StoreError> {
        let guard = self.lock();
        let mut stmt = guard.conn.prepare_cached(
            "SELECT trace_id, id, parent_id, subsegment, name, origin, start_time, end_time,
                    error, throttle, fault, any_error, any_throttle, any_fault,
                    http_status, http_method, http_url, annotations
             FROM documents ORDER BY trace_id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        let mut group: Vec<DocFacts> = Vec::new();
        while let Some(r) = rows.next()? {
            let annotations: String = r.get(17)?;
            let facts = DocFacts {
                trace_id: r.get(0)?,
                id: r.get(1)?,
                parent_id: r.get(2)?,
                subsegment: r.get(3)?,
                name: r.get(4)?,
                origin: r.get(5)?,
                start: r.get(6)?,
                end: r.get(7)?,
                status: Status {
                    error: r.get(8)?,
                    throttle: r.get(9)?,
                    fault: r.get(10)?,
                },
                any: Status {
                    error: r.get(11)?,
                    throttle: r.get(12)?,
                    fault: r.get(13)?,
                },
                http_status: r.get(14)?,
                http_method: r.get(15)?,
                http_url: r.get(16)?,
                annotations: serde_json::from_str::<Map<String, Value>>(&annotations)
                    .unwrap_or_default(),
            };
            if group.first().is_some_and(|g| g.trace_id != facts.trace_id) {
                out.extend(TraceSummary::assemble(&group));
                group.clear();
            }
            group.push(facts);
        }
        out.extend(TraceSummary::assemble(&group));
        Ok(out)
    }

    /// The traces matching `filter` (all without one), newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] when SQLite fails.
    pub fn traces(&self, filter: Option<&Filter>, limit: usize) -> Result<TraceList, StoreError> {
        let all = self.summaries()?;
        let total = all.len();
        let mut matched: Vec<TraceSummary> = all
            .into_iter()
            .filter(|t| filter.is_none_or(|f| f.matches(t)))
            .collect();
        matched.sort_by(|a, b| {
            b.start_time
                .total_cmp(&a.start_time)
                .then_with(|| a.id.cmp(&b.id))
        });
        let count = matched.len();
        matched.truncate(limit);
        Ok(TraceList {
            count: matched.len(),
            traces: matched,
            matched: count,
            total,
        })
    }

    /// The documents of one trace as received (JSON text), earliest start first; empty
    /// when the store does not have it. `trace_id` is in the canonical `1-...` form.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] when SQLite fails.
    pub fn trace_documents(&self, trace_id: &str) -> Result<Vec<String>, StoreError> {
        let guard = self.lock();
        let mut stmt = guard.conn.prepare_cached(
            "SELECT b.json FROM documents d JOIN bodies b ON b.seq = d.seq
             WHERE d.trace_id = ?1 ORDER BY d.start_time, d.seq",
        )?;
        let rows = stmt.query_map([trace_id], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The service map of the `max_traces` most recently received traces.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] when SQLite fails.
    pub fn service_map(&self, max_traces: usize) -> Result<ServiceMap, StoreError> {
        let docs: Vec<(String, String)> = {
            let guard = self.lock();
            let mut stmt = guard.conn.prepare_cached(
                "SELECT d.trace_id, b.json FROM documents d
                 JOIN bodies b ON b.seq = d.seq
                 JOIN (SELECT trace_id FROM traces ORDER BY first_seq DESC LIMIT ?1) t
                   ON t.trace_id = d.trace_id
                 ORDER BY d.trace_id, d.start_time",
            )?;
            let limit = i64::try_from(max_traces).unwrap_or(i64::MAX);
            stmt.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut map = ServiceMap::builder();
        let mut trace: Vec<Value> = Vec::new();
        let mut current: Option<&str> = None;
        for (trace_id, json) in &docs {
            if current.is_some_and(|c| c != trace_id) {
                map.add_trace(&trace);
                trace.clear();
            }
            current = Some(trace_id);
            if let Ok(v) = serde_json::from_str(json) {
                trace.push(v);
            }
        }
        map.add_trace(&trace);
        Ok(map.build())
    }
}

/// Inserts or replaces one document; returns the new byte total.
fn insert_one(
    tx: &Transaction<'_>,
    f: &DocFacts,
    json: &str,
    now: f64,
    total: u64,
) -> Result<u64, StoreError> {
    let old: Option<(i64, i64)> = tx
        .prepare_cached("SELECT seq, bytes FROM documents WHERE trace_id = ?1 AND id = ?2")?
        .query_row(params![f.trace_id, f.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((old_seq, _)) = old {
        tx.prepare_cached("DELETE FROM bodies WHERE seq = ?1")?
            .execute([old_seq])?;
    }
    let old = old.map(|(_, bytes)| bytes);
    let bytes = json.len() as i64;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO documents (trace_id, id, parent_id, subsegment, name, service,
            origin, start_time, end_time, error, throttle, fault, any_error, any_throttle,
            any_fault, http_status, http_method, http_url, annotations, received_at, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        f.trace_id,
        f.id,
        f.parent_id,
        f.subsegment,
        f.name,
        (!f.subsegment).then_some(&f.name),
        f.origin,
        f.start,
        f.end,
        f.status.error,
        f.status.throttle,
        f.status.fault,
        f.any.error,
        f.any.throttle,
        f.any.fault,
        f.http_status,
        f.http_method,
        f.http_url,
        Value::Object(f.annotations.clone()).to_string(),
        now,
        bytes,
    ])?;
    let seq = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO bodies (seq, json) VALUES (?1, ?2)")?
        .execute(params![seq, json])?;
    let added_docs = i64::from(old.is_none());
    let old_bytes = old.unwrap_or(0);
    tx.prepare_cached(
        "INSERT INTO traces (trace_id, first_seq, last_received, bytes, documents)
         VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT (trace_id) DO UPDATE SET last_received = excluded.last_received,
             bytes = bytes + ?4 - ?5, documents = documents + ?6",
    )?
    .execute(params![f.trace_id, seq, now, bytes, old_bytes, added_docs])?;
    Ok((total + bytes as u64).saturating_sub(old_bytes as u64))
}

/// Removes traces older than the age limit, then the first received until the size fits.
/// Returns how many traces went and the new byte total.
fn evict(
    tx: &Transaction<'_>,
    config: &StoreConfig,
    now: f64,
    mut total: u64,
) -> Result<(usize, u64), StoreError> {
    let mut evicted = 0;
    let cutoff = now - config.max_age.as_secs_f64();
    let old: Vec<(String, i64)> = tx
        .prepare_cached("SELECT trace_id, bytes FROM traces WHERE last_received < ?1")?
        .query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (trace_id, bytes) in old {
        remove_trace(tx, &trace_id)?;
        total = total.saturating_sub(bytes.max(0) as u64);
        evicted += 1;
    }
    while total > config.max_bytes {
        let oldest: Vec<(String, i64)> = tx
            .prepare_cached("SELECT trace_id, bytes FROM traces ORDER BY first_seq LIMIT 64")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if oldest.is_empty() {
            total = 0;
            break;
        }
        for (trace_id, bytes) in oldest {
            if total <= config.max_bytes {
                break;
            }
            remove_trace(tx, &trace_id)?;
            total = total.saturating_sub(bytes.max(0) as u64);
            evicted += 1;
        }
    }
    Ok((evicted, total))
}

fn remove_trace(tx: &Transaction<'_>, trace_id: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "DELETE FROM bodies WHERE seq IN (SELECT seq FROM documents WHERE trace_id = ?1)",
    )?
    .execute([trace_id])?;
    tx.prepare_cached("DELETE FROM documents WHERE trace_id = ?1")?
        .execute([trace_id])?;
    tx.prepare_cached("DELETE FROM traces WHERE trace_id = ?1")?
        .execute([trace_id])?;
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
