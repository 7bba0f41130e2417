//! The state that sampling decisions read and the poller thread writes.

use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

use crate::request::ServiceInfo;
use crate::rule::RuleSet;

/// Current epoch second.
pub(crate) fn epoch_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Rules fetched from X-Ray, good until `expires_at` (epoch seconds).
#[derive(Debug)]
pub(crate) struct CentralRules {
    pub rules: RuleSet,
    pub expires_at: u64,
}

/// What decisions read: shared by every clone of the sampler and the poller thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub central: ArcSwapOption<CentralRules>,
    pub local: RuleSet,
    pub service: ServiceInfo,
    pub client_id: String,
}
