//! Any text through the whole loader: parsing, deserialization, validation, dispatch.
//! Errors are fine; panics, hangs and unbounded memory are the bugs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `load` refuses non-UTF-8 before parsing; `load_str` is everything after that.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sluice_config::load_str("fuzz.yaml", text);
    }
});
