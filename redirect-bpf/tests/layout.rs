//! The map structs agree between C (src/bpf/maps.h, as the host compiler lays it out)
//! and Rust (src/maps.rs): same sizes, same field offsets and sizes, same constants,
//! and no implicit padding. Needs no root.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

/// Printed by src/bpf/layout_probe.c, built and run by build.rs.
const C_LAYOUT: &str = include_str!(concat!(env!("OUT_DIR"), "/c_layout.txt"));

#[test]
fn rust_and_c_map_layouts_agree() {
    let c: BTreeSet<&str> = C_LAYOUT.lines().collect();
    let rust_lines = sluice_bpf::maps::rust_layout();
    let rust: BTreeSet<&str> = rust_lines.iter().map(String::as_str).collect();

    let only_c: Vec<_> = c.difference(&rust).collect();
    let only_rust: Vec<_> = rust.difference(&c).collect();
    assert!(
        only_c.is_empty() && only_rust.is_empty(),
        "maps.h and maps.rs disagree.\n  C only:    {only_c:?}\n  Rust only: {only_rust:?}"
    );
    assert!(c.len() > 80, "the probe printed too little: {C_LAYOUT}");
}

#[test]
fn no_struct_has_implicit_padding() {
    for line in C_LAYOUT.lines().filter(|l| l.starts_with("struct ")) {
        let mut parts = line.split(' ').skip(1);
        let name = parts.next().expect("name");
        let size: usize = parts.next().expect("size").parse().expect("number");
        let fields: usize = C_LAYOUT
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("field {name}.")))
            .map(|rest| {
                rest.split(' ')
                    .nth(2)
                    .expect("size")
                    .parse::<usize>()
                    .expect("number")
            })
            .sum();
        assert_eq!(
            fields, size,
            "{name}: fields cover {fields} of {size} bytes; pad explicitly"
        );
    }
}
