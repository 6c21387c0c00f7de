//! The transparent DNS proxy, rules.dns enforcement and the FQDN cache with TTLs. Lands with the FQDN egress gatekeeper.
//!
//! Empty until that work lands: this crate exists so the workspace has its final shape.
