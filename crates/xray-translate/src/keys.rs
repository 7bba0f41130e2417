//! The span attributes the rules read, found in one pass, and which of them ended up in
//! the document (the rest go to metadata, so nothing is lost and nothing is repeated).

use crate::config::Exclude;
use crate::view::{AttrValue, Attributes};

macro_rules! known_keys {
    ($($name:ident = $key:literal,)*) => {
        /// A span attribute some rule reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(clippy::enum_variant_names)]
        pub(crate) enum K { $($name,)* }

        const COUNT: usize = [$(K::$name,)*].len();

        const fn all_keys() -> [K; COUNT] {
            [$(K::$name,)*]
        }

        /// Every known key, in the order of [`K`].
        const KEYS: [&str; COUNT] = [$($key,)*];
    };
}

/// Slots of the key table: a power of two, about four times the number of keys, so a key
/// nearly always hashes to its own slot and an unknown key nearly always to an empty one.
const SLOTS: usize = 256;

/// A cheap hash of a key: its length, last and middle bytes (the known keys share
/// prefixes such as `http.` and `aws.`, so the bytes come from the end and the middle).
#[inline]
const fn hash(key: &[u8]) -> usize {
    let n = key.len();
    if n == 0 {
        return 0;
    }
    let x = (n as u32) | ((key[n - 1] as u32) << 8) | ((key[n / 2] as u32) << 16);
    (x.wrapping_mul(0x9E37_79B1) >> 24) as usize % SLOTS
}

/// Open-addressing table from [`hash`] to the index of a known key (`NONE` when empty),
/// built at compile time.
const TABLE: [u8; SLOTS] = {
    let mut table = [NONE; SLOTS];
    let mut k = 0;
    while k < COUNT {
        let mut slot = hash(KEYS[k].as_bytes());
        while table[slot] != NONE {
            slot = (slot + 1) % SLOTS;
        }
        table[slot] = k as u8;
        k += 1;
    }
    table
};

/// The known attribute for `key`: one hash and, nearly always, one comparison.
#[inline(always)]
pub(crate) fn lookup(key: &str) -> Option<K> {
    let mut slot = hash(key.as_bytes());
    loop {
        match TABLE[slot] {
            NONE => return None,
            k if same_key(KEYS[k as usize].as_bytes(), key.as_bytes()) => {
                return Some(ALL[k as usize]);
            }
            _ => slot = (slot + 1) % SLOTS,
        }
    }
}

/// `a == b`, for keys: the lengths, then overlapping words from both ends (no call to
/// `memcmp`, whose call costs more than comparing a key).
#[inline(always)]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |s: &[u8], at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_le_bytes(w)
    };
    match n {
        0..4 => a == b,
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => {
            let mut at = 0;
            while at + 8 < n {
                if word(a, at) != word(b, at) {
                    return false;
                }
                at += 8;
            }
            word(a, n - 8) == word(b, n - 8)
        }
    }
}

known_keys! {
    // HTTP, old and new semantic conventions
    HttpMethod = "http.method",
    HttpRequestMethod = "http.request.method",
    HttpUrl = "http.url",
    UrlFull = "url.full",
    HttpScheme = "http.scheme",
    UrlScheme = "url.scheme",
    HttpHost = "http.host",
    HttpTarget = "http.target",
    UrlPath = "url.path",
    UrlQuery = "url.query",
    HttpServerName = "http.server_name",
    NetHostName = "net.host.name",
    NetHostPort = "net.host.port",
    ServerAddress = "server.address",
    ServerPort = "server.port",
    NetPeerName = "net.peer.name",
    NetPeerPort = "net.peer.port",
    NetPeerIp = "net.peer.ip",
    NetSockPeerAddr = "net.sock.peer.addr",
    NetworkPeerAddress = "network.peer.address",
    ClientAddress = "client.address",
    HttpClientIp = "http.client_ip",
    HttpUserAgent = "http.user_agent",
    UserAgentOriginal = "user_agent.original",
    HttpStatusCode = "http.status_code",
    HttpResponseStatusCode = "http.response.status_code",
    HttpResponseContentLength = "http.response_content_length",
    HttpResponseBodySize = "http.response.body.size",
    HttpStatusText = "http.status_text",
    HttpResendCount = "http.request.resend_count",
    // Downstream names
    PeerService = "peer.service",
    AwsRemoteService = "aws.remote.service",
    // Application Signals
    AwsLocalService = "aws.local.service",
    AwsSpanKind = "aws.span.kind",
    // RPC and AWS SDK calls
    RpcSystem = "rpc.system",
    RpcService = "rpc.service",
    RpcMethod = "rpc.method",
    AwsService = "aws.service",
    AwsOperation = "aws.operation",
    AwsRegion = "aws.region",
    AwsRequestId = "aws.request_id",
    AwsRequestIdCamel = "aws.requestId",
    AwsAccountId = "aws.account_id",
    AwsQueueUrl = "aws.queue_url",
    AwsQueueUrlDotted = "aws.queue.url",
    AwsSqsQueueUrl = "aws.sqs.queue_url",
    AwsSqsQueueUrlDotted = "aws.sqs.queue.url",
    MessagingUrl = "messaging.url",
    AwsTableName = "aws.table_name",
    AwsTableNameDotted = "aws.table.name",
    AwsDynamoDbTableNames = "aws.dynamodb.table_names",
    // Databases
    DbSystem = "db.system",
    DbSystemName = "db.system.name",
    DbName = "db.name",
    DbNamespace = "db.namespace",
    DbStatement = "db.statement",
    DbQueryText = "db.query.text",
    DbUser = "db.user",
    DbConnectionString = "db.connection_string",
    // X-Ray
    XrayAnnotations = "aws.xray.annotations",
    XraySamplingRuleName = "aws.xray.sampling_rule_name",
    EnduserId = "enduser.id",
    // Lambda
    FaasColdstart = "faas.coldstart",
}

/// The known attributes of one span (the last value of each key) and which were used.
/// Only positions are stored; values are read from the span when a rule asks.
pub(crate) struct Known<'a> {
    attrs: Attributes<'a>,
    /// Position of the last attribute with each known key (`ABSENT` if none).
    positions: [u16; COUNT],
    used: u64,
    /// The known key of each of the first [`INDEXED`] attributes (`NONE` if unknown), so
    /// later passes need not look keys up again.
    kinds: [u8; INDEXED],
}

const INDEXED: usize = 64;
const NONE: u8 = u8::MAX;
const ABSENT: u16 = u16::MAX;
const ALL: [K; COUNT] = all_keys();

const _: () = assert!(COUNT <= 64, "the used set is a u64");

/// [`lookup`] for attributes past the first [`INDEXED`] (rare).
#[cold]
fn lookup_cold(key: &str) -> Option<K> {
    lookup(key)
}

impl<'a> Known<'a> {
    /// Reads the known attributes of `attrs` in one pass; keys matching `exclude` are not
    /// seen (they never reach the document).
    #[inline]
    pub(crate) fn collect(attrs: Attributes<'a>, exclude: &Exclude) -> Self {
        let mut known = Known {
            attrs,
            positions: [ABSENT; COUNT],
            used: 0,
            kinds: [NONE; INDEXED],
        };
        attrs.for_each_key(|index, key| {
            if let Some(k) = lookup(key)
                && (exclude.is_empty() || !exclude.matches(key))
            {
                // Past 65 534 attributes (never in practice) later ones are not mapped
                // and simply stay in metadata.
                if let Ok(pos) = u16::try_from(index)
                    && pos != ABSENT
                {
                    known.positions[k as usize] = pos;
                }
                if index < INDEXED {
                    known.kinds[index] = k as u8;
                }
            }
        });
        known
    }

    /// The known key of the attribute at `index` of the list given to
    /// [`Known::collect`], whose key is `key`.
    #[inline]
    pub(crate) fn kind_at(&self, index: usize, key: &str) -> Option<K> {
        match self.kinds.get(index) {
            Some(&NONE) => None,
            Some(&k) => Some(ALL[k as usize]),
            None => lookup_cold(key),
        }
    }

    /// The value, without marking it used.
    #[inline]
    pub(crate) fn peek(&self, k: K) -> Option<AttrValue<'a>> {
        match self.positions[k as usize] {
            ABSENT => None,
            pos => self.attrs.get_index(pos as usize).map(|(_, v)| v),
        }
    }

    /// The string value, without marking it used.
    #[inline]
    pub(crate) fn peek_str(&self, k: K) -> Option<&'a str> {
        match self.positions[k as usize] {
            ABSENT => None,
            pos => self.attrs.str_at(pos as usize),
        }
    }

    /// Whether the attribute is present.
    #[inline]
    pub(crate) fn has(&self, k: K) -> bool {
        self.positions[k as usize] != ABSENT
    }

    /// Whether any of the attributes is present.
    #[inline]
    fn has_any(&self, keys: &[K]) -> bool {
        keys.iter().any(|&k| self.has(k))
    }

    /// Records that the attribute is represented in the document.
    pub(crate) fn mark(&mut self, k: K) {
        self.used |= 1 << (k as u32);
    }

    /// Whether the attribute is represented in the document.
    pub(crate) fn is_used(&self, k: K) -> bool {
        self.used & (1 << (k as u32)) != 0
    }

    /// The first non-empty string among `keys`, marked used, along with every other key
    /// holding the same string (old and new conventions often both appear).
    #[inline]
    pub(crate) fn first_str(&mut self, keys: &[K]) -> Option<&'a str> {
        // Most rules look for keys the span does not have: answered without a call.
        if !self.has_any(keys) {
            return None;
        }
        self.first_present_str(keys)
    }

    fn first_present_str(&mut self, keys: &[K]) -> Option<&'a str> {
        let (at, value) = keys
            .iter()
            .enumerate()
            .find_map(|(i, &k)| self.peek_str(k).filter(|s| !s.is_empty()).map(|s| (i, s)))?;
        self.mark(keys[at]);
        // Keys before the chosen one hold no non-empty string, so none can be equal.
        for &k in &keys[at + 1..] {
            if self.peek_str(k) == Some(value) {
                self.mark(k);
            }
        }
        Some(value)
    }

    /// Like [`Known::first_str`] for integers (also decimal strings).
    #[inline]
    pub(crate) fn first_int(&mut self, keys: &[K]) -> Option<i64> {
        if !self.has_any(keys) {
            return None;
        }
        self.first_present_int(keys)
    }

    fn first_present_int(&mut self, keys: &[K]) -> Option<i64> {
        let (at, value) = keys
            .iter()
            .enumerate()
            .find_map(|(i, &k)| self.peek(k).and_then(|v| v.as_i64()).map(|v| (i, v)))?;
        self.mark(keys[at]);
        for &k in &keys[at + 1..] {
            if self.peek(k).and_then(|v| v.as_i64()) == Some(value) {
                self.mark(k);
            }
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;

    #[test]
    fn last_value_wins_and_equal_alternatives_are_used_together() {
        let attrs = vec![
            KeyValue::new("http.method", "PUT"),
            KeyValue::new("http.method", "GET"),
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.status_code", "503"),
        ];
        let mut known = Known::collect(Attributes::sdk(&attrs), &Exclude::default());
        assert_eq!(
            known.first_str(&[K::HttpRequestMethod, K::HttpMethod]),
            Some("GET")
        );
        assert!(known.is_used(K::HttpMethod) && known.is_used(K::HttpRequestMethod));
        assert_eq!(
            known.first_int(&[K::HttpResponseStatusCode, K::HttpStatusCode]),
            Some(503)
        );
        assert!(!known.is_used(K::UrlFull));
        assert_eq!(lookup("nope"), None);
        assert_eq!(lookup(""), None);
        for (i, key) in KEYS.iter().enumerate() {
            assert_eq!(lookup(key), Some(ALL[i]), "{key}");
            assert_eq!(lookup(&key[1..]), None);
            // The same length, one byte different, at every position.
            for at in 0..key.len() {
                let mut other = key.as_bytes().to_vec();
                other[at] ^= 0x20;
                let other = String::from_utf8(other).unwrap();
                assert_eq!(lookup(&other), None, "{other}");
                assert!(same_key(key.as_bytes(), key.as_bytes()));
                assert!(!same_key(key.as_bytes(), other.as_bytes()));
            }
        }
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("ab", "ac"),
            ("abcd", "abce"),
            ("abc", "abcd"),
        ] {
            assert_eq!(same_key(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
        }
        assert_eq!(known.kind_at(0, "http.method"), Some(K::HttpMethod));
        assert_eq!(
            known.kind_at(3, "http.status_code"),
            Some(K::HttpStatusCode)
        );
        assert_eq!(known.kind_at(4, "x"), None);
        assert_eq!(known.kind_at(100, "url.full"), Some(K::UrlFull));
        for (i, k) in ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }
}
