//! End-to-end tests live in `tests/`; they drive the built `sluice` binary as a user would.
