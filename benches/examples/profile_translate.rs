//! Translates the 100-span batch many times, for `valgrind --tool=callgrind` (instruction
//! counts are repeatable on a loaded machine, unlike times). Argument: rounds (default 100).

use std::hint::black_box;

use xray_bridge_benches::spans;
use xray_translate::Translator;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(100, |a| a.parse().expect("rounds"));
    let resource = spans::resource();
    let batch = spans::batch(100);
    let translator = Translator::default();
    for _ in 0..rounds {
        for span in &batch {
            black_box(translator.translate_sdk(span, &resource));
        }
    }
}
