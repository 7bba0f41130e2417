//! The export transport of local mode: batches go into the [`Store`], not to AWS.

use std::time::Duration;

use xray_export::transport::SendFuture;
use xray_export::{Document, DropReason, SendContext, Transport};

use crate::store::Store;

/// Writes each batch of documents into a [`Store`] in one transaction. A store error
/// drops the batch (counted and logged by the pipeline's metrics), it never panics.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    store: Store,
}

impl LocalTransport {
    /// A transport writing into `store`.
    pub fn new(store: Store) -> LocalTransport {
        LocalTransport { store }
    }
}

impl Transport<Document> for LocalTransport {
    fn name(&self) -> &'static str {
        "local"
    }

    fn batch_limit(&self) -> usize {
        500
    }

    fn linger(&self) -> Duration {
        // A few milliseconds gather bursts into one transaction.
        Duration::from_millis(20)
    }

    fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(async move {
            cx.request();
            // SQLite is blocking; the pipeline runs transports on its own worker thread.
            match self.store.insert(batch.iter().map(Document::as_str)) {
                Ok(report) => {
                    let mut rejected = report.rejected.iter().peekable();
                    for (i, doc) in batch.iter().enumerate() {
                        if let Some((_, reason)) = rejected.next_if(|(r, _)| *r == i) {
                            cx.dropped([doc], DropReason::Rejected, reason);
                        } else {
                            cx.delivered(doc);
                        }
                    }
                }
                Err(e) => {
                    cx.send_error();
                    cx.dropped(&batch, DropReason::TransportUnavailable, &e);
                }
            }
        })
    }
}
