//! Which HTTP rules apply to a proxied connection, compiled once per policy snapshot.
//!
//! A connection between two identities on a port is held by two policies: the egress
//! policy of the source and the ingress policy of the destination. Each side is one of:
//! denied (the L3/L4 decision changed under a live connection after a reload), a compiled
//! [`HttpRuleSet`] (the side has `rules.http`), or unrestricted (the side allows the port
//! without L7 rules, or its L7 policy is a wildcard). A request passes when both sides
//! allow it.
//!
//! # Caching
//!
//! Compiling a rule set builds lazy DFAs and resolves secrets: far too slow per request,
//! and the same few lists of rules serve many (endpoint, peer, port) triples. The cache is
//! keyed by the *list of rule entries* the policy engine hands out (their `Arc` pointers,
//! plus the wildcard flag), so two peers allowed by the same port rule share one compiled
//! set. The key holds clones of those `Arc`s, so a pointer cannot be freed and reused by
//! another rule while its entry lives; the whole cache is dropped when the snapshot
//! generation changes, so a reload recompiles everything once, lazily, and never mixes
//! the rules of two generations.
//!
//! The cache sits behind a mutex taken once per new connection (and once per request
//! only on the first request after a reload); the per-request path reads the
//! connection's [`Enforcement`] without locking.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use sluice_config::types::HttpRule as HttpRuleYaml;
use sluice_identity::policy::{Decision, KernelAction, L7Kind, L7Policy, L7Rule, L7RuleSet};
use sluice_identity::{Direction, Identity, PolicyRef, Protocol, Verdict};
use sluice_l7::http::{
    AllowedBy, HeaderMatchSpec, HttpRule, HttpRuleSet, HttpRuleSpec, SecretRef, SecretStore,
};
use tracing::warn;

use crate::node::state::Snapshot;

/// The compiled HTTP rules of one side, with the policy each rule came from.
#[derive(Debug)]
pub struct CompiledRules {
    pub set: HttpRuleSet,
    /// `origins[i]` wrote rule `i` of `set` (for flows and logs).
    origins: Vec<Arc<PolicyRef>>,
}

impl CompiledRules {
    fn unrestricted() -> Self {
        Self {
            set: HttpRuleSet::unrestricted(),
            origins: Vec::new(),
        }
    }

    fn deny_all() -> Self {
        Self {
            set: HttpRuleSet::deny_all(),
            origins: Vec::new(),
        }
    }

    /// The policy whose rule allowed a request.
    pub fn origin(&self, by: AllowedBy) -> Option<&Arc<PolicyRef>> {
        match by {
            AllowedBy::Rule(i) => self.origins.get(i),
            AllowedBy::NoRules => None,
        }
    }
}

/// One direction's part of the decision about a connection.
#[derive(Debug)]
pub struct Side {
    pub direction: Direction,
    pub rules: Arc<CompiledRules>,
    /// The side has L7 rules (not just an L4 allow): the flow reports this side.
    pub has_l7: bool,
    /// The policies that allowed the connection at L3/L4 on this side.
    pub allowed_by: Vec<Arc<PolicyRef>>,
}

/// Both sides of a proxied connection, for one policy generation.
#[derive(Debug)]
pub struct Enforcement {
    pub generation: u32,
    pub egress: Side,
    pub ingress: Side,
}

/// A connection's endpoints and port, as the policy engine sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnKey {
    pub source: Identity,
    pub destination: Identity,
    pub port: u16,
}

impl Enforcement {
    /// Decides both sides from the policy of `snapshot`.
    pub fn decide(snapshot: &Snapshot, cache: &RuleCache, conn: ConnKey) -> Self {
        let policy = &snapshot.policy;
        let egress = policy.decide(
            conn.source,
            Direction::Egress,
            conn.destination,
            Protocol::Tcp,
            conn.port,
        );
        let ingress = policy.decide(
            conn.destination,
            Direction::Ingress,
            conn.source,
            Protocol::Tcp,
            conn.port,
        );
        Self::from_decisions(snapshot, cache, &egress, &ingress)
    }

    /// Builds both sides from decisions already made (the connection's first ones).
    pub fn from_decisions(
        snapshot: &Snapshot,
        cache: &RuleCache,
        egress: &Decision,
        ingress: &Decision,
    ) -> Self {
        Self {
            generation: snapshot.generation,
            egress: cache.side(snapshot, Direction::Egress, egress),
            ingress: cache.side(snapshot, Direction::Ingress, ingress),
        }
    }

    /// The side a flow about an allowed request reports: the one with L7 rules, ingress
    /// first (the destination's rules are what most policies write).
    pub fn reporting_side(&self) -> &Side {
        if self.ingress.has_l7 || !self.egress.has_l7 {
            &self.ingress
        } else {
            &self.egress
        }
    }
}

/// Whether a connection with these decisions goes through the HTTP engine: some side
/// has HTTP rules (a wildcard included, spec §8: still proxied).
pub fn wants_http(egress: &Decision, ingress: &Decision) -> bool {
    [egress, ingress]
        .iter()
        .any(|d| d.l7.as_ref().is_some_and(|l7| l7.kind == L7Kind::Http))
}

/// Compiled rule sets of the current generation; see the module documentation.
#[derive(Debug, Default)]
pub struct RuleCache {
    inner: Mutex<Generation>,
}

#[derive(Debug, Default)]
struct Generation {
    generation: u32,
    secrets: Option<Arc<SecretStore>>,
    sets: HashMap<RulesKey, Arc<CompiledRules>>,
}

/// The identity of a list of rule entries: the entries' addresses. Holding the `Arc`s
/// keeps those addresses from being reused while the key exists.
#[derive(Debug)]
struct RulesKey {
    wildcard: bool,
    rules: Vec<Arc<L7Rule>>,
}

impl PartialEq for RulesKey {
    fn eq(&self, other: &Self) -> bool {
        self.wildcard == other.wildcard
            && self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for RulesKey {}

impl Hash for RulesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.wildcard.hash(state);
        for r in &self.rules {
            std::ptr::hash(Arc::as_ptr(r), state);
        }
    }
}

impl Side {
    /// One side from its decision; `compile` turns its HTTP rules into a set (through the
    /// node's [`RuleCache`], or directly for `policy trace`).
    fn build(
        direction: Direction,
        decision: &Decision,
        compile: impl FnOnce(&L7Policy) -> Arc<CompiledRules>,
    ) -> Self {
        let denied = decision.verdict == Verdict::Denied
            // Authentication cannot be done yet; such connections were refused at accept,
            // and one that became auth-required through a reload is refused here.
            || (decision.authentication.is_some() && decision.verdict == Verdict::Allowed);
        let (rules, has_l7) = if denied {
            (Arc::new(CompiledRules::deny_all()), true)
        } else {
            match &decision.l7 {
                Some(l7) if l7.kind == L7Kind::Http => (compile(l7), true),
                // An L4-only allow, an audited drop (L7 rules keep enforcing in audit mode;
                // here there are none), or rules of another parser on the other side.
                _ => (Arc::new(CompiledRules::unrestricted()), false),
            }
        };
        Self {
            direction,
            rules,
            has_l7,
            allowed_by: decision.allowed_by.clone(),
        }
    }

    /// One side as the node would build it, compiled on the spot with `secrets`: for
    /// `policy trace`, which decides one request and keeps nothing.
    pub fn uncached(direction: Direction, decision: &Decision, secrets: &SecretStore) -> Self {
        Self::build(direction, decision, |l7| Arc::new(compile(l7, secrets)))
    }
}

impl RuleCache {
    fn side(&self, snapshot: &Snapshot, direction: Direction, decision: &Decision) -> Side {
        Side::build(direction, decision, |l7| self.compiled(snapshot, l7))
    }

    fn compiled(&self, snapshot: &Snapshot, l7: &L7Policy) -> Arc<CompiledRules> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.generation != snapshot.generation || inner.secrets.is_none() {
            if snapshot.generation < inner.generation {
                // A request still on the snapshot a reload just replaced: compile for
                // it alone rather than evict the newer generation's sets.
                drop(inner);
                let secrets = super::secrets::store(&snapshot.config);
                return Arc::new(compile(l7, &secrets));
            }
            *inner = Generation::new(snapshot);
        }
        inner.get_or_compile(l7)
    }

    /// Compiles, off the serving path, every HTTP rule set that connections of the
    /// `endpoints` (their egress and their ingress) can be handed under `snapshot`, so
    /// that the first request after a reload does not wait for a compilation. A set
    /// this misses (a port range whose segments carry different rules) is still
    /// compiled on first use.
    pub fn prepare(snapshot: &Snapshot, endpoints: &[Identity]) -> PreparedRules {
        let mut generation = Generation::new(snapshot);
        let policy = &snapshot.policy;
        for &endpoint in endpoints {
            for direction in [Direction::Egress, Direction::Ingress] {
                let flat = policy.kernel_policy(endpoint, direction, &[Protocol::Tcp]);
                for rule in flat
                    .rules
                    .iter()
                    .filter(|r| r.action == KernelAction::Proxy)
                {
                    // A rule for any peer: world stands for the peers no rule names.
                    let peer = rule.peer.unwrap_or(Identity::WORLD);
                    let decision =
                        policy.decide(endpoint, direction, peer, Protocol::Tcp, rule.ports.lo);
                    if let Some(l7) = decision.l7.as_ref().filter(|l7| l7.kind == L7Kind::Http) {
                        generation.get_or_compile(l7);
                    }
                }
            }
        }
        PreparedRules(generation)
    }

    /// Makes `prepared` the cache's generation, right before its snapshot is stored.
    pub fn install(&self, prepared: PreparedRules) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.generation <= prepared.0.generation {
            *inner = prepared.0;
        }
    }

    /// How many rule sets the current generation holds (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sets
            .len()
    }
}

/// The HTTP rule sets of one generation compiled ahead of use; see
/// [`RuleCache::prepare`].
#[derive(Debug)]
pub struct PreparedRules(Generation);

impl Generation {
    fn new(snapshot: &Snapshot) -> Self {
        Self {
            generation: snapshot.generation,
            secrets: Some(Arc::new(super::secrets::store(&snapshot.config))),
            sets: HashMap::new(),
        }
    }

    fn get_or_compile(&mut self, l7: &L7Policy) -> Arc<CompiledRules> {
        let key = RulesKey {
            wildcard: l7.wildcard,
            rules: l7.rules.clone(),
        };
        if let Some(set) = self.sets.get(&key) {
            return set.clone();
        }
        let secrets = self.secrets.clone().unwrap_or_default();
        let set = Arc::new(compile(l7, &secrets));
        self.sets.insert(key, set.clone());
        set
    }
}

/// Compiles the HTTP rules of one side. A wildcard allows every request; a rule that
/// fails to compile here (it passed validation, so only a rule set too large together)
/// makes the side deny everything: fail closed, and say so.
fn compile(l7: &L7Policy, secrets: &SecretStore) -> CompiledRules {
    if l7.wildcard {
        return CompiledRules::unrestricted();
    }
    let mut rules = Vec::new();
    let mut origins = Vec::new();
    for entry in &l7.rules {
        let L7RuleSet::Http(list) = &entry.rules else {
            continue;
        };
        let namespace = entry.policy.namespace.as_deref().unwrap_or_default();
        let report = |e: &sluice_l7::http::SecretUnavailable| {
            warn!(policy = %entry.policy, error = %e, "headerMatches secret unavailable; the entry falls back to its value or never matches");
        };
        let resolve = secrets.resolver(namespace, &report);
        for rule in list {
            match HttpRule::compile(&spec(rule), &resolve) {
                Ok(r) => {
                    rules.push(r);
                    origins.push(entry.policy.clone());
                }
                Err(issues) => {
                    let issues: Vec<String> = issues.iter().map(ToString::to_string).collect();
                    warn!(policy = %entry.policy, ?issues, "an HTTP rule does not compile; its port denies every request");
                    return CompiledRules::deny_all();
                }
            }
        }
    }
    // No HTTP entry at all would compile to "allow everything": that is not what a
    // non-wildcard L7 policy means.
    if rules.is_empty() {
        return CompiledRules::deny_all();
    }
    match HttpRuleSet::compile(&rules) {
        Ok(set) => CompiledRules { set, origins },
        Err(e) => {
            warn!(error = %e, rules = rules.len(), "HTTP rule set does not compile; the port denies every request");
            CompiledRules::deny_all()
        }
    }
}

/// The `rules.http` entries of a side in the order [`compile`] numbers them: the
/// `i`-th is the one an [`AllowedBy::Rule`]`(i)` of that side names. For explaining a
/// decision (`policy trace`); the node itself only keeps each entry's policy.
pub fn http_rules(l7: &L7Policy) -> impl Iterator<Item = (&Arc<PolicyRef>, &HttpRuleYaml)> {
    l7.rules.iter().flat_map(|entry| {
        let list: &[HttpRuleYaml] = match &entry.rules {
            L7RuleSet::Http(list) => list,
            _ => &[],
        };
        list.iter().map(move |rule| (&entry.policy, rule))
    })
}

/// A `rules.http` entry as the rule compiler takes it.
pub fn spec(rule: &HttpRuleYaml) -> HttpRuleSpec {
    HttpRuleSpec {
        method: rule.method.clone(),
        path: rule.path.clone(),
        host: rule.host.clone(),
        headers: rule.headers.clone().unwrap_or_default(),
        header_matches: rule
            .header_matches
            .iter()
            .flatten()
            .map(|m| HeaderMatchSpec {
                name: m.name.clone(),
                value: m.value.clone(),
                secret: m.secret.as_ref().map(|s| SecretRef {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                }),
                mismatch: m.mismatch.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method};
    use sluice_l7::http::RequestView;

    fn snapshot(yaml: &str, generation: u32) -> Snapshot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("all.yaml"), yaml).unwrap();
        crate::node::state::compile(&[dir.path().to_owned()], generation).unwrap()
    }

    const CONFIG: &str = r#"
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {addresses: ["10.1.0.2"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: other, namespace: shop, labels: {app: other}}
spec: {addresses: ["10.1.0.4"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {addresses: ["10.1.0.3"]}
---
apiVersion: v1
kind: Secret
metadata: {name: api-key, namespace: shop}
stringData: {key: s3cret}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}, {matchLabels: {app: other}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - {method: "GET|POST", path: "/api/.*"}
        - method: PUT
          path: "/api/users/[0-9]+"
          headerMatches: [{name: X-Key, secret: {name: api-key}}]
"#;

    fn ids(s: &Snapshot) -> (Identity, Identity, Identity) {
        let u = s.policy.universe();
        let id = |ns, n| u.endpoint(ns, n).unwrap().identity;
        (id("shop", "client"), id("shop", "other"), id("shop", "api"))
    }

    fn allowed(e: &Enforcement, method: &str, path: &str, headers: &HeaderMap) -> bool {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let view = RequestView {
            method: &method,
            path: Some(path),
            host: Some("api"),
            headers,
        };
        [&e.egress, &e.ingress]
            .iter()
            .all(|s| s.rules.set.evaluate(&view).is_allowed())
    }

    #[test]
    fn ingress_rules_apply_and_the_l4_only_side_is_unrestricted() {
        let s = snapshot(CONFIG, 1);
        let (client, _, api) = ids(&s);
        let cache = RuleCache::default();
        let conn = ConnKey {
            source: client,
            destination: api,
            port: 8080,
        };
        let e = Enforcement::decide(&s, &cache, conn);
        assert!(e.ingress.has_l7 && !e.egress.has_l7);
        assert_eq!(e.reporting_side().direction, Direction::Ingress);
        let none = HeaderMap::new();
        assert!(allowed(&e, "GET", "/api/users", &none));
        assert!(!allowed(&e, "DELETE", "/api/users", &none));
        assert!(!allowed(&e, "GET", "/admin", &none));
        // The secret's value from the Secret document, not the rule text.
        assert!(!allowed(&e, "PUT", "/api/users/7", &none));
        let mut key = HeaderMap::new();
        key.insert("x-key", "s3cret".parse().unwrap());
        assert!(allowed(&e, "PUT", "/api/users/7", &key));
        key.insert("x-key", "guess".parse().unwrap());
        assert!(!allowed(&e, "PUT", "/api/users/7", &key));
    }

    #[test]
    fn peers_of_one_port_rule_share_a_compiled_set_until_the_generation_changes() {
        let s = snapshot(CONFIG, 1);
        let (client, other, api) = ids(&s);
        let cache = RuleCache::default();
        let key = |source| ConnKey {
            source,
            destination: api,
            port: 8080,
        };
        let a = Enforcement::decide(&s, &cache, key(client));
        let b = Enforcement::decide(&s, &cache, key(other));
        assert!(Arc::ptr_eq(&a.ingress.rules, &b.ingress.rules));
        let s2 = snapshot(CONFIG, 2);
        let c = Enforcement::decide(&s2, &cache, key(client));
        assert_eq!(c.generation, 2);
        assert!(!Arc::ptr_eq(&a.ingress.rules, &c.ingress.rules));
    }

    #[test]
    fn prepared_sets_are_the_ones_requests_get_and_stragglers_do_not_evict_them() {
        let s1 = snapshot(CONFIG, 1);
        let s2 = snapshot(CONFIG, 2);
        let (client, other, api) = ids(&s2);
        let cache = RuleCache::default();
        let key = |source| ConnKey {
            source,
            destination: api,
            port: 8080,
        };
        let old = Enforcement::decide(&s1, &cache, key(client));
        // Ahead of the swap: one set for the api's ingress on 8080 (both peers share it).
        let prepared = RuleCache::prepare(&s2, &[client, other, api]);
        assert_eq!(prepared.0.sets.len(), 1);
        cache.install(prepared);
        assert_eq!(cache.len(), 1);
        let fresh = Enforcement::decide(&s2, &cache, key(other));
        assert_eq!(cache.len(), 1, "the request found the prepared set");
        // A request still holding the old snapshot is served, without evicting.
        let late = Enforcement::decide(&s1, &cache, key(client));
        assert!(!Arc::ptr_eq(&late.ingress.rules, &fresh.ingress.rules));
        assert!(!Arc::ptr_eq(&late.ingress.rules, &old.ingress.rules));
        assert!(Arc::ptr_eq(
            &Enforcement::decide(&s2, &cache, key(client)).ingress.rules,
            &fresh.ingress.rules
        ));
        // An older preparation never replaces a newer generation.
        cache.install(RuleCache::prepare(&s1, &[api]));
        assert!(Arc::ptr_eq(
            &Enforcement::decide(&s2, &cache, key(client)).ingress.rules,
            &fresh.ingress.rules
        ));
        let none = HeaderMap::new();
        assert!(allowed(&fresh, "GET", "/api/users", &none));
        assert!(!allowed(&fresh, "DELETE", "/api/users", &none));
    }

    #[test]
    fn http_rules_lists_entries_in_the_order_the_compiled_set_numbers_them() {
        let s = snapshot(CONFIG, 1);
        let (client, _, api) = ids(&s);
        let decision = s
            .policy
            .decide(api, Direction::Ingress, client, Protocol::Tcp, 8080);
        let l7 = decision.l7.as_ref().unwrap();
        let secrets = super::super::secrets::store(&s.config);
        let side = Side::uncached(Direction::Ingress, &decision, &secrets);
        let listed: Vec<_> = http_rules(l7).collect();
        assert_eq!(listed.len(), side.rules.set.len());
        let method = Method::PUT;
        let headers = HeaderMap::new();
        let view = RequestView {
            method: &method,
            path: Some("/api/users/7"),
            host: Some("api"),
            headers: &headers,
        };
        // Only the PUT entry (index 1) matches the request line; it fails on its header,
        // so the set denies, but a GET is allowed by entry 0.
        assert!(!side.rules.set.evaluate(&view).is_allowed());
        let get = Method::GET;
        let view = RequestView {
            method: &get,
            ..view
        };
        let sluice_l7::http::HttpDecision::Allowed { by, .. } = side.rules.set.evaluate(&view)
        else {
            panic!("GET /api/users/7 is allowed");
        };
        let AllowedBy::Rule(i) = by else {
            panic!("allowed by a rule");
        };
        assert_eq!(listed[i].1.method.as_deref(), Some("GET|POST"));
        assert_eq!(Some(listed[i].0), side.rules.origin(by));
    }

    #[test]
    fn a_side_denied_at_l4_denies_every_request() {
        let s = snapshot(CONFIG, 1);
        let (client, _, api) = ids(&s);
        let cache = RuleCache::default();
        // Port 9090 is not allowed at all by the ingress policy.
        let e = Enforcement::decide(
            &s,
            &cache,
            ConnKey {
                source: client,
                destination: api,
                port: 9090,
            },
        );
        assert!(!allowed(&e, "GET", "/api/users", &HeaderMap::new()));
    }
}
