//! The span attributes the rules read, found in one pass, and which of them ended up in
//! the document (the rest go to metadata, so nothing is lost and nothing is repeated).

use crate::attributes::METADATA_ATTRIBUTE_PREFIX;
use crate::config::{Exclude, TranslatorConfig};
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
pub(crate) const fn hash(key: &[u8]) -> usize {
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
    lookup_hashed(hash(key.as_bytes()), key)
}

/// [`lookup`] with the key's [`hash`] already worked out.
#[inline(always)]
fn lookup_hashed(mut slot: usize, key: &str) -> Option<K> {
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
    /// What the same pass saw of the keys for `metadata.default` as a view of the list
    /// (`None` when not tracked: keys excluded, or more than [`INDEXED`] attributes).
    keys: Option<KeyFacts>,
}

/// Facts about a span's attribute keys, gathered by [`Known::collect`]'s single pass, from
/// which [`crate::attributes::AttributeView`] decides without reading the keys again.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyFacts {
    /// Positions holding a known key.
    known_at: u64,
    /// Positions whose key starts with the configured annotation prefix.
    pub(crate) annotation_prefixed: u64,
    /// Known keys (a bit per [`K`]) given more than once.
    repeated_known: u64,
    /// Whether an unknown key is given more than once.
    pub(crate) repeated_unknown: bool,
    /// Whether a key starts with `aws.xray.metadata.` (never a known key).
    pub(crate) namespace_prefixed: bool,
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

/// Whether an attribute before position `index` has the key `key` (two different keys
/// hashed alike; rare).
#[cold]
fn given_before(attrs: Attributes<'_>, index: usize, key: &str) -> bool {
    let mut found = false;
    attrs.for_each_key(|i, k| found |= i < index && k == key);
    found
}

impl<'a> Known<'a> {
    /// Reads the known attributes of `attrs` in one pass; keys matching the configured
    /// exclusion are not seen (they never reach the document). Without an exclusion, the
    /// same pass gathers the [`KeyFacts`] (`annotation_prefix` as configured).
    #[inline]
    pub(crate) fn collect(attrs: Attributes<'a>, config: &TranslatorConfig) -> Self {
        let exclude = config.exclude();
        let mut known = Known {
            attrs,
            positions: [ABSENT; COUNT],
            used: 0,
            kinds: [NONE; INDEXED],
            keys: None,
        };
        if !exclude.is_empty() || attrs.len() > INDEXED {
            known.collect_untracked(exclude);
            return known;
        }
        let mut facts = KeyFacts::default();
        // The [`hash`] of each unknown key seen so far, a bit each.
        let mut unknown_hashes = [0u64; SLOTS / 64];
        let prefix = config.annotation_prefix().unwrap_or_default().as_bytes();
        let namespace = METADATA_ATTRIBUTE_PREFIX.as_bytes();
        attrs.for_each_key(|index, key| {
            let bytes = key.as_bytes();
            let slot = hash(bytes);
            let bit = 1u64 << index;
            if let Some(k) = lookup_hashed(slot, key) {
                if known.positions[k as usize] != ABSENT {
                    facts.repeated_known |= 1 << (k as u32);
                }
                known.positions[k as usize] = index as u16;
                known.kinds[index % INDEXED] = k as u8;
                facts.known_at |= bit;
            } else {
                let (word, hash_bit) = (slot / 64, 1u64 << (slot % 64));
                if unknown_hashes[word] & hash_bit != 0 && given_before(attrs, index, key) {
                    facts.repeated_unknown = true;
                }
                unknown_hashes[word] |= hash_bit;
                // The first byte rejects nearly every key without a comparison.
                if bytes.first() == namespace.first() && bytes.starts_with(namespace) {
                    facts.namespace_prefixed = true;
                }
            }
            if !prefix.is_empty() && bytes.first() == prefix.first() && bytes.starts_with(prefix) {
                facts.annotation_prefixed |= bit;
            }
        });
        known.keys = Some(facts);
        known
    }

    /// [`Known::collect`] without the [`KeyFacts`]: for a list with keys excluded or more
    /// than [`INDEXED`] attributes (rare).
    #[inline(never)]
    fn collect_untracked(&mut self, exclude: &Exclude) {
        let attrs = self.attrs;
        attrs.for_each_key(|index, key| {
            if let Some(k) = lookup(key)
                && (exclude.is_empty() || !exclude.matches(key))
            {
                self.see(index, k);
            }
        });
    }

    /// Records the attribute at `index` as the known key `k`.
    #[inline(always)]
    fn see(&mut self, index: usize, k: K) {
        // Past 65 534 attributes (never in practice) later ones are not mapped and simply
        // stay in metadata.
        if let Ok(pos) = u16::try_from(index)
            && pos != ABSENT
        {
            self.positions[k as usize] = pos;
        }
        if index < INDEXED {
            self.kinds[index] = k as u8;
        }
    }

    /// The [`KeyFacts`] of the list, when gathered.
    pub(crate) fn key_facts(&self) -> Option<&KeyFacts> {
        self.keys.as_ref()
    }

    /// The positions of the attributes no rule used (not repeated in the document, so
    /// bound for metadata), and whether a key among them is given more than once; `None`
    /// when the [`KeyFacts`] were not gathered.
    pub(crate) fn unused(&self) -> Option<(u64, bool)> {
        let facts = self.keys.as_ref()?;
        let len = self.attrs.len();
        let all = if len >= 64 { u64::MAX } else { (1 << len) - 1 };
        let mut consumed = 0u64;
        let mut at = facts.known_at;
        while at != 0 {
            let index = at.trailing_zeros() as usize;
            if self.used & (1 << self.kinds[index]) != 0 {
                consumed |= 1 << index;
            }
            at &= at - 1;
        }
        let repeated = facts.repeated_unknown || facts.repeated_known & !self.used != 0;
        Some((all & !consumed, repeated))
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

    /// [`Known::first_str`] in one pass over `keys`: keys before the chosen one hold no
    /// non-empty string, so none can be equal to it.
    fn first_present_str(&mut self, keys: &[K]) -> Option<&'a str> {
        let mut found: Option<&'a str> = None;
        for &k in keys {
            let Some(value) = self.peek_str(k) else {
                continue;
            };
            match found {
                None if !value.is_empty() => found = Some(value),
                Some(first) if first == value => {}
                _ => continue,
            }
            self.mark(k);
        }
        found
    }

    /// The string [`Known::first_str`] would pick (the first non-empty one among
    /// `keys`), without marking anything.
    #[inline]
    pub(crate) fn peek_first_str(&self, keys: &[K]) -> Option<&'a str> {
        keys.iter()
            .find_map(|&k| self.peek_str(k).filter(|s| !s.is_empty()))
    }

    /// Marks the keys among `keys` holding the string `value`: [`Known::first_str`]'s
    /// marks when `value` is its pick (no key before the pick holds a non-empty string).
    pub(crate) fn mark_str(&mut self, keys: &[K], value: &str) {
        for &k in keys {
            if self.peek_str(k) == Some(value) {
                self.mark(k);
            }
        }
    }

    /// Marks the keys among `keys` holding the integer `value`: [`Known::first_int`]'s
    /// marks when `value` is its pick (no key before the pick holds an integer).
    pub(crate) fn mark_int(&mut self, keys: &[K], value: i64) {
        for &k in keys {
            if self.peek_int(k) == Some(value) {
                self.mark(k);
            }
        }
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
        let mut found = None;
        for &k in keys {
            let Some(value) = self.peek_int(k) else {
                continue;
            };
            match found {
                None => found = Some(value),
                Some(first) if first == value => {}
                _ => continue,
            }
            self.mark(k);
        }
        found
    }

    /// The value as an integer ([`AttrValue::as_i64`]), without marking it used.
    #[inline]
    pub(crate) fn peek_int(&self, k: K) -> Option<i64> {
        match self.positions[k as usize] {
            ABSENT => None,
            pos => self.attrs.i64_at(pos as usize),
        }
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
        let mut known = Known::collect(Attributes::sdk(&attrs), &TranslatorConfig::default());
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
        // An empty first choice is skipped and not marked; a different later value is not
        // marked either.
        let attrs = vec![
            KeyValue::new("server.address", ""),
            KeyValue::new("net.peer.name", "db"),
            KeyValue::new("http.host", "other"),
            KeyValue::new("server.port", 5432),
            KeyValue::new("net.peer.port", "5433"),
        ];
        let mut other = Known::collect(Attributes::sdk(&attrs), &TranslatorConfig::default());
        assert_eq!(
            other.first_str(&[K::ServerAddress, K::NetPeerName, K::HttpHost]),
            Some("db")
        );
        assert!(other.is_used(K::NetPeerName));
        assert!(!other.is_used(K::ServerAddress) && !other.is_used(K::HttpHost));
        assert_eq!(
            other.first_int(&[K::ServerPort, K::NetPeerPort]),
            Some(5432)
        );
        assert!(other.is_used(K::ServerPort) && !other.is_used(K::NetPeerPort));
        // Peeking the pick then marking its equals marks what `first_str`/`first_int` do.
        let values = ["", "db", "other"];
        let keys = [K::ServerAddress, K::NetPeerName, K::HttpHost];
        for a in values {
            for b in values {
                for c in values {
                    let attrs = vec![
                        KeyValue::new("server.address", a),
                        KeyValue::new("net.peer.name", b),
                        KeyValue::new("http.host", c),
                        KeyValue::new("server.port", a.len() as i64),
                        KeyValue::new("net.peer.port", b.len().to_string()),
                    ];
                    let config = TranslatorConfig::default();
                    let mut first = Known::collect(Attributes::sdk(&attrs), &config);
                    let mut marked = Known::collect(Attributes::sdk(&attrs), &config);
                    let pick = marked.peek_first_str(&keys);
                    assert_eq!(first.first_str(&keys), pick);
                    if let Some(pick) = pick {
                        marked.mark_str(&keys, pick);
                    }
                    let ports = [K::NetPeerPort, K::ServerPort];
                    let int_pick = ports.iter().find_map(|&k| marked.peek_int(k));
                    assert_eq!(first.first_int(&ports), int_pick);
                    if let Some(pick) = int_pick {
                        marked.mark_int(&ports, pick);
                    }
                    assert_eq!(first.used, marked.used, "{a:?} {b:?} {c:?}");
                }
            }
        }
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
