//! Every configuration in `examples/` loads cleanly: they are what users copy first.

use std::fs;
use std::path::PathBuf;

use sluice_config::load;

#[test]
fn every_example_loads_without_diagnostics() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no examples under {}", root.display());
    let mut failures = Vec::new();
    for dir in &dirs {
        match load(&[dir]) {
            Ok(config) if config.diagnostics.is_empty() => {}
            Ok(config) => failures.extend(config.diagnostics.iter().map(ToString::to_string)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "examples with errors:\n{}",
        failures.join("\n")
    );
}
