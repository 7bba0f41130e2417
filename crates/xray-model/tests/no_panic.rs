//! A bounded stand-in for the fuzz targets in `fuzz/`: 10^5 random and mutated inputs
//! through the header and datagram parsers, asserting only that nothing panics and that
//! whatever parses writes back to something that parses to the same value.

use xray_model::{TraceHeader, parse_datagram};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0",
    "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
    "{\"format\":\"json\",\"version\":1}\n{\"name\":\"svc\",\"id\":\"70de5b6f19ff9a0a\",\"trace_id\":\"1-581cf771-a006649127e371903a2de979\",\"start_time\":1.0,\"end_time\":2.0}",
];

const ALPHABET: &[u8] = b"Root=Parent;Sampled?1-0abcdef9 \n{}\":,.\\\xff\xc3\xa9";

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(6) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes.remove(i);
            }
            1 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, ALPHABET[rng.below(ALPHABET.len())]);
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            _ => {
                let cut = rng.below(bytes.len() + 1);
                bytes.truncate(cut);
            }
        }
    }
    bytes
}

#[test]
fn hundred_thousand_inputs_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut headers_ok, mut datagrams_ok) = (0, 0);
    for i in 0..100_000 {
        let input = if i % 4 == 0 {
            let len = rng.below(120);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed.as_bytes())
        };
        let text = String::from_utf8_lossy(&input);
        if let Ok(h) = TraceHeader::parse(&text) {
            headers_ok += 1;
            assert_eq!(
                TraceHeader::parse(&h.to_string()).as_ref(),
                Ok(&h),
                "{text:?}"
            );
        }
        if parse_datagram(&input).is_ok() {
            datagrams_ok += 1;
        }
    }
    // The mutations must also exercise the accepting paths, or the test proves little.
    assert!(headers_ok > 1_000, "only {headers_ok} headers parsed");
    assert!(datagrams_ok > 50, "only {datagrams_ok} datagrams parsed");
}
