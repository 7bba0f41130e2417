//! Translates the 100-span batch many times, for `valgrind --tool=callgrind` (instruction
//! counts are repeatable on a loaded machine, unlike times).
//! Arguments: rounds (default 100), then `ours` (default) or `opentelemetry-aws`.

use std::hint::black_box;

use opentelemetry_aws::xray_exporter::SegmentTranslator;
use xray_bridge_benches::spans;
use xray_translate::Translator;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(100, |a| a.parse().expect("rounds"));
    let side = args.next().unwrap_or_else(|| "ours".into());
    let resource = spans::resource();
    let batch = spans::batch(100);
    match side.as_str() {
        "ours" => {
            // Prepared once, as opentelemetry-aws's `set_resource` below.
            let translator = Translator::default();
            let prepared = translator.prepare_sdk(&resource);
            for _ in 0..rounds {
                for span in &batch {
                    black_box(prepared.translate_sdk(span));
                }
            }
        }
        "opentelemetry-aws" => {
            let mut translator = SegmentTranslator::new();
            translator.set_resource(&resource);
            for _ in 0..rounds {
                black_box(translator.translate_spans(&batch));
            }
        }
        other => panic!("unknown side {other:?}"),
    }
}
