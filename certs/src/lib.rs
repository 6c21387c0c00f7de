//! Local CA and SPIRE Workload API client, SVID issue and rotation, trust bundles, rustls configs with SPIFFE verification. Lands with mTLS between nodes.
//!
//! Empty until that work lands: this crate exists so the workspace has its final shape.
