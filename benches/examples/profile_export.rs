//! The export path without the socket, for `valgrind --tool=callgrind`: the 100-span batch
//! translated and encoded many times, ours as `XrayExporter` does it (resource prepared
//! once per batch, translate, each tree's JSON written straight from the batch with its
//! subsegments nested, within 64 kB) or opentelemetry-aws's (translate, then `to_writer` per document
//! into one reused buffer, as its daemon client does before each send).
//! Arguments: rounds (default 100), then `ours` (default) or `opentelemetry-aws`.

use std::hint::black_box;

use opentelemetry_aws::xray_exporter::SegmentTranslator;
use xray_bridge_benches::spans;
use xray_export::Document;
use xray_model::Nesting;
use xray_translate::Translator;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(100, |a| a.parse().expect("rounds"));
    let side = args.next().unwrap_or_else(|| "ours".into());
    let resource = spans::resource();
    let batch = spans::batch(100);
    let mut bytes = 0;
    match side.as_str() {
        "ours" => {
            let translator = Translator::default();
            let mut scratch = Vec::with_capacity(64 * 1024);
            for _ in 0..rounds {
                let prepared = translator.prepare_sdk(&resource);
                let mut segments: Vec<_> =
                    batch.iter().map(|s| prepared.translate_sdk(s)).collect();
                let nesting = Nesting::of(&segments);
                for root in nesting.top_level() {
                    Document::encode_nested(&mut segments, &nesting, root, &mut scratch, |d| {
                        bytes += d.map_or(0, |d| black_box(d).json().len());
                    });
                }
            }
        }
        "opentelemetry-aws" => {
            let mut translator = SegmentTranslator::new();
            translator.set_resource(&resource);
            let mut buf = Vec::with_capacity(64 * 1024);
            for _ in 0..rounds {
                for doc in translator.translate_spans(&batch) {
                    buf.clear();
                    doc.to_writer(&mut buf);
                    bytes += black_box(&buf).len();
                }
            }
        }
        other => panic!("unknown side {other:?}"),
    }
    println!("{bytes} bytes of JSON");
}
