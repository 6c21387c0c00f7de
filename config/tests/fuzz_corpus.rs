//! The fuzz target's seed corpus, and deterministic mutations of it, through
//! `load_str`: whatever the bytes, the loader answers and never panics.
//!
//! A cheap, always-on stand-in for `cargo fuzz run config_yaml` (see `fuzz/`), which
//! needs a nightly toolchain CI does not have.

mod common;

use std::fs;
use std::path::PathBuf;

use sluice_config::load_str;

/// Mutations per seed file; a few thousand in all, about a second in a debug build.
/// `SLUICE_FUZZ_MUTATIONS=100000` runs a longer hunt locally.
const MUTATIONS_PER_SEED: usize = 600;

/// Fragments that steer YAML parsers into their corners.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "!!str ",
    "!!int ",
    "!x ",
    "? ",
    "|\n",
    ">-\n",
    "\"",
    "'",
    "\\",
    "#",
    "\t",
    "\n",
    "\n---\n",
    "...",
    "%YAML 1.2\n",
    "<<: ",
    "~",
    "0x",
    "0o7",
    ".inf",
    "\u{feff}",
    "é",
    "\r\n",
    "  ",
    "null",
    "true",
];

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config_yaml");
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "seed corpus too small: {}", seeds.len());
    seeds
}

/// xorshift64*: deterministic, so a failure reproduces from its seed number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    match rng.below(7) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 => input.truncate(rng.below(len + 1)),
        2 if len > 0 => {
            // Duplicate a slice in place: repeated keys, nested copies.
            let start = rng.below(len);
            let end = start + rng.below(len - start + 1);
            let slice = input[start..end].to_vec();
            let at = rng.below(input.len() + 1);
            input.splice(at..at, slice);
        }
        3 if len > 0 => {
            let start = rng.below(len);
            let end = start + rng.below((len - start).min(64) + 1);
            input.drain(start..end);
        }
        4 => {
            let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
            let at = rng.below(len + 1);
            input.splice(at..at, token.iter().copied());
        }
        5 if !other.is_empty() => {
            // Splice in part of another seed: documents of the wrong kind, mixed indents.
            let start = rng.below(other.len());
            let end = start + rng.below(other.len() - start + 1);
            let at = rng.below(len + 1);
            input.splice(at..at, other[start..end].iter().copied());
        }
        _ if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        _ => input.push(b'a'),
    }
}

/// Whether the bytes loaded; the point is that this returns at all.
fn load_bytes(bytes: &[u8]) -> bool {
    // The fuzz target feeds only valid UTF-8 to `load_str`; lossy conversion keeps the
    // mutation's structure for the rest.
    let text = String::from_utf8_lossy(bytes);
    load_str("fuzz.yaml", &text).is_ok()
}

#[test]
fn every_seed_loads() {
    for (path, bytes) in seeds() {
        let text = String::from_utf8(bytes).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(e) = load_str(&name, &text) {
            panic!("seed {name} does not load:\n{e}");
        }
    }
}

#[test]
fn mutated_seeds_never_panic() {
    let seeds = seeds();
    let mutations = std::env::var("SLUICE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MUTATIONS_PER_SEED);
    let mut rng = Rng(0x5eed_1e55_c0ff_ee00);
    let mut loaded = 0;
    for (i, (_, seed)) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()].1;
        for _ in 0..mutations {
            let mut input = seed.clone();
            // Stack a few mutations: single edits rarely leave the happy path far.
            for _ in 0..=rng.below(4) {
                mutate(&mut rng, &mut input, other);
            }
            loaded += usize::from(load_bytes(&input));
        }
    }
    // Mutations that all fail at the parser would test little past it.
    let total = mutations * seeds.len();
    assert!(
        loaded * 10 > total,
        "only {loaded} of {total} mutations loaded"
    );
}
