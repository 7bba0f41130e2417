//! JSON lines: one document per line, to a file, stdout or any writer.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::item::Document;
use crate::metrics::DropReason;
use crate::transport::{SendContext, SendFuture, Transport};

/// Writes each document as one line of JSON.
pub struct WriterTransport {
    out: Box<dyn Write + Send>,
    name: &'static str,
    line: Vec<u8>,
}

impl WriterTransport {
    /// Writes to `out` (flushed after every batch).
    pub fn new(out: impl Write + Send + 'static) -> Self {
        WriterTransport {
            out: Box::new(out),
            name: "writer",
            line: Vec::with_capacity(64 * 1024),
        }
    }

    /// Writes to standard output.
    pub fn stdout() -> Self {
        WriterTransport {
            name: "stdout",
            ..Self::new(io::stdout())
        }
    }

    /// Appends to a file, creating it when missing.
    ///
    /// # Errors
    ///
    /// The I/O error when the file cannot be opened for appending or created.
    pub fn file(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(WriterTransport {
            name: "file",
            ..Self::new(io::BufWriter::with_capacity(256 * 1024, file))
        })
    }

    /// Appends to a shared buffer (handy in tests and examples).
    pub fn shared(buffer: Arc<Mutex<Vec<u8>>>) -> Self {
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        Self::new(Shared(buffer))
    }

    fn write_batch(&mut self, batch: &[Document], cx: &SendContext) {
        cx.request();
        for (written, doc) in batch.iter().enumerate() {
            self.line.clear();
            self.line.extend_from_slice(doc.json());
            self.line.push(b'\n');
            if let Err(e) = self.out.write_all(&self.line) {
                cx.send_error();
                cx.dropped(&batch[written..], DropReason::TransportUnavailable, &e);
                return;
            }
        }
        match self.out.flush() {
            Ok(()) => batch.iter().for_each(|d| cx.delivered(d)),
            Err(e) => {
                cx.send_error();
                cx.dropped(batch, DropReason::TransportUnavailable, &e);
            }
        }
    }
}

impl Transport<Document> for WriterTransport {
    fn name(&self) -> &'static str {
        self.name
    }

    fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(async move { self.write_batch(&batch, cx) })
    }

    fn is_blocking(&self) -> bool {
        true
    }

    fn send_blocking(&mut self, batch: Vec<Document>, cx: &SendContext) {
        self.write_batch(&batch, cx);
    }
}

impl std::fmt::Debug for WriterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterTransport").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use crate::transport::RetryPolicy;

    fn doc(id: u64) -> Document {
        Document::from_json(format!(r#"{{"name":"a","id":"{id:016x}","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}}"#).into_bytes()).unwrap()
    }

    #[test]
    fn a_failing_writer_drops_with_a_reason() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let metrics = Metrics::default();
        let cx = SendContext::standalone(metrics.clone(), RetryPolicy::default());
        let mut t = WriterTransport::new(Broken);
        t.write_batch(&[doc(1), doc(2)], &cx);
        assert_eq!(
            metrics.snapshot().dropped(DropReason::TransportUnavailable),
            2
        );
        assert_eq!(cx.accounted(), 2);
    }

    #[test]
    fn lines_are_documents() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let cx = SendContext::standalone(Default::default(), RetryPolicy::default());
        let mut t = WriterTransport::shared(buf.clone());
        t.write_batch(&[doc(1), doc(2)], &cx);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, vec![doc(1).as_str(), doc(2).as_str()]);
    }
}
