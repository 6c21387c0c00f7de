//! Turning parsed documents into typed resources, and the rules that span documents:
//! unique names, one `NodeConfig`, one workload per address.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use tracing::debug;

use super::LoadError;
use super::kinds::{self, Kind, Unrecognized};
use super::rejected;
use super::resources::{AddressKey, Resource, node_settings, scope};
use crate::diag::{Diagnostic, FieldPath};
use crate::model::{Config, Doc, Policy, PolicyKind, RejectedPolicy, Source};
use crate::types::{CiliumPolicy, NetworkPolicy, NodeConfig, Workload};
use crate::yaml::{self, DeError, Node, Value, from_node};

/// Accumulates a configuration over files, keeping every diagnostic.
#[derive(Default)]
pub(super) struct Loader {
    config: Config,
    /// In the order found; those of rejected policies included.
    diagnostics: Vec<Diagnostic>,
    /// A diagnostic that fails the whole load was found.
    failed: bool,
    /// (kind, namespace, name) → where it was first defined.
    names: HashMap<(&'static str, Option<String>, String), Source>,
    node_config: Option<Source>,
    addresses: HashMap<AddressKey, (String, Source)>,
}

/// One resource's document, or one item of a `kind: List`.
struct DocCtx<'a> {
    file: &'a Path,
    node: &'a Node,
    /// The node's path in its document: empty, or `items[3]` in a list.
    base: FieldPath,
    index: usize,
}

impl DocCtx<'_> {
    fn source(&self) -> Source {
        Source {
            file: self.file.to_path_buf(),
            line: self.node.mark.line,
            document: self.index,
        }
    }

    /// A finding about `field` (relative to this node), placed on the deepest line
    /// along it that exists.
    fn diagnostic(&self, field: &FieldPath, message: impl Into<String>) -> Diagnostic {
        let mark = self.node.locate(field);
        let mut full = self.base.clone();
        for segment in field.segments() {
            full.push(segment.clone());
        }
        Diagnostic {
            file: self.file.to_path_buf(),
            line: mark.line,
            column: mark.column,
            field: full,
            message: message.into(),
        }
    }

    fn de_diagnostic(&self, error: DeError) -> Diagnostic {
        let (field, mark) = error
            .location
            .unwrap_or_else(|| (self.base.clone(), self.node.mark));
        Diagnostic {
            file: self.file.to_path_buf(),
            line: mark.line,
            column: mark.column,
            field,
            message: error.message,
        }
    }
}

fn at(key: &str) -> FieldPath {
    FieldPath::root().key(key)
}

fn name_path() -> FieldPath {
    at("metadata").key("name")
}

impl Loader {
    pub fn add_file(&mut self, file: &Path, text: &str) {
        let documents = match yaml::parse_stream(text) {
            Ok(documents) => documents,
            Err(errors) => {
                for e in errors {
                    self.fail(Diagnostic {
                        file: file.to_path_buf(),
                        line: e.mark.line,
                        column: e.mark.column,
                        field: e.field,
                        message: e.message,
                    });
                }
                return;
            }
        };
        debug!(file = %file.display(), documents = documents.len(), "parsed");
        for document in &documents {
            self.add_document(&DocCtx {
                file,
                node: &document.root,
                base: FieldPath::root(),
                index: document.index,
            });
        }
    }

    /// A file that could not be read as text.
    pub fn refuse_file(&mut self, diagnostic: Diagnostic) {
        self.fail(diagnostic);
    }

    pub fn finish(mut self) -> Result<Config, LoadError> {
        if self.failed {
            return Err(LoadError::Invalid(self.diagnostics));
        }
        self.config.diagnostics = self.diagnostics;
        Ok(self.config)
    }

    fn fail(&mut self, diagnostic: Diagnostic) {
        self.failed = true;
        self.diagnostics.push(diagnostic);
    }

    fn add_document(&mut self, ctx: &DocCtx<'_>) {
        let kind = match recognize(ctx) {
            Ok(kind) => kind,
            Err(diagnostic) => return self.fail(diagnostic),
        };
        match kind {
            Kind::List => self.add_list(ctx),
            Kind::Policy(kind) => self.add_policy(ctx, kind),
            Kind::Namespace => {
                if let Some(doc) = self.add_resource(ctx, "Namespace", false) {
                    self.config.namespaces.push(doc);
                }
            }
            Kind::Service => {
                if let Some(doc) = self.add_resource(ctx, "Service", true) {
                    self.config.services.push(doc);
                }
            }
            Kind::Secret => {
                if let Some(doc) = self.add_resource(ctx, "Secret", true) {
                    self.config.secrets.push(doc);
                }
            }
            Kind::CidrGroup => {
                if let Some(doc) = self.add_resource(ctx, "CiliumCIDRGroup", false) {
                    self.config.cidr_groups.push(doc);
                }
            }
            Kind::Workload => {
                if let Some(doc) = self.add_resource::<Workload>(ctx, "Workload", true) {
                    self.claim_addresses(ctx, &doc);
                    self.config.workloads.push(doc);
                }
            }
            Kind::NodeConfig => self.add_node_config(ctx),
        }
    }

    fn add_list(&mut self, ctx: &DocCtx<'_>) {
        let items = match ctx.node.get("items") {
            None => return,
            Some(node) if node.is_null() => return,
            Some(node) => node,
        };
        let Value::Sequence(items) = &items.value else {
            let found = items.kind_name();
            return self
                .fail(ctx.diagnostic(&at("items"), format!("expected a list, found {found}")));
        };
        let base = ctx.base.key("items");
        for (i, item) in items.iter().enumerate() {
            self.add_document(&DocCtx {
                file: ctx.file,
                node: item,
                base: base.index(i),
                index: ctx.index,
            });
        }
    }

    /// Reads, names and validates a non-policy resource. Any error fails the load.
    fn add_resource<T: Resource>(
        &mut self,
        ctx: &DocCtx<'_>,
        kind: &'static str,
        namespaced: bool,
    ) -> Option<Doc<T>> {
        let mut resource: T = match from_node(ctx.node, &ctx.base) {
            Ok(resource) => resource,
            Err(e) => {
                self.fail(ctx.de_diagnostic(e));
                return None;
            }
        };
        let metadata = resource.metadata_mut();
        metadata.namespace = scope(metadata.namespace.as_deref(), namespaced);
        let metadata = resource.metadata();
        let mut problems =
            self.claim_name(ctx, kind, metadata.namespace.as_deref(), &metadata.name);
        problems.extend(
            resource
                .validate()
                .into_iter()
                .map(|issue| ctx.diagnostic(&issue.field, issue.message)),
        );
        if problems.is_empty() {
            return Some(Doc {
                source: ctx.source(),
                resource,
            });
        }
        for problem in problems {
            self.fail(problem);
        }
        None
    }

    /// Reads a policy; one with any error is kept as [`Policy::Rejected`].
    fn add_policy(&mut self, ctx: &DocCtx<'_>, kind: PolicyKind) {
        let (policy, mut problems) = match kind {
            PolicyKind::NetworkPolicy => {
                typed_policy::<NetworkPolicy>(ctx, kind, Policy::Kubernetes)
            }
            _ => typed_policy::<CiliumPolicy>(ctx, kind, Policy::Cilium),
        };
        let (namespace, name) = match &policy {
            Some(p) => (p.namespace().map(str::to_owned), p.name().to_owned()),
            None => raw_identity(ctx.node, kind),
        };
        problems.extend(self.claim_name(ctx, kind.as_str(), namespace.as_deref(), &name));
        let policy = match policy {
            Some(policy) if problems.is_empty() => policy,
            _ => {
                debug!(kind = kind.as_str(), name, "policy rejected");
                self.diagnostics.extend(problems);
                Policy::Rejected(RejectedPolicy {
                    kind,
                    namespace,
                    name,
                    subjects: rejected::subjects(kind, ctx.node, &ctx.base),
                })
            }
        };
        self.config.policies.push(Doc {
            source: ctx.source(),
            resource: policy,
        });
    }

    fn add_node_config(&mut self, ctx: &DocCtx<'_>) {
        if let Some(first) = &self.node_config {
            let message = format!(
                "only one NodeConfig is allowed; the first is at {}:{}",
                first.file.display(),
                first.line
            );
            return self.fail(ctx.diagnostic(&at("kind"), message));
        }
        self.node_config = Some(ctx.source());
        let Some(doc) = self.add_resource::<NodeConfig>(ctx, "NodeConfig", false) else {
            return;
        };
        match node_settings(&doc.resource) {
            Ok(settings) => self.config.node = settings,
            Err(issue) => self.fail(ctx.diagnostic(&issue.field, issue.message)),
        }
    }

    /// Checks that the resource has a name no earlier resource of its kind took.
    fn claim_name(
        &mut self,
        ctx: &DocCtx<'_>,
        kind: &'static str,
        namespace: Option<&str>,
        name: &str,
    ) -> Vec<Diagnostic> {
        if name.is_empty() {
            return vec![ctx.diagnostic(&name_path(), "a name is required")];
        }
        let key = (kind, namespace.map(str::to_owned), name.to_owned());
        match self.names.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(ctx.source());
                Vec::new()
            }
            Entry::Occupied(first) => {
                let first = first.get();
                let message = format!(
                    "duplicate {kind} {}: already defined at {}:{}",
                    qualified(namespace, name),
                    first.file.display(),
                    first.line
                );
                vec![ctx.diagnostic(&name_path(), message)]
            }
        }
    }

    /// Two workloads with one address would make every verdict for it ambiguous.
    fn claim_addresses(&mut self, ctx: &DocCtx<'_>, doc: &Doc<Workload>) {
        let metadata = &doc.resource.metadata;
        let owner = qualified(metadata.namespace.as_deref(), &metadata.name);
        for (i, address) in doc.resource.spec.addresses.iter().enumerate() {
            match self.addresses.entry(AddressKey::new(address)) {
                Entry::Vacant(slot) => {
                    slot.insert((owner.clone(), ctx.source()));
                }
                // Listed twice by the same workload: validation's concern.
                Entry::Occupied(first) if first.get().0 == owner => {}
                Entry::Occupied(first) => {
                    let (first_owner, first_source) = first.get();
                    let message = format!(
                        "address {address} is already claimed by Workload {first_owner} at {}:{}",
                        first_source.file.display(),
                        first_source.line
                    );
                    let field = at("spec").key("addresses").index(i);
                    let diagnostic = ctx.diagnostic(&field, message);
                    self.fail(diagnostic);
                }
            }
        }
    }
}

/// Deserializes and validates a policy; problems found so far are returned with it.
fn typed_policy<T: Resource>(
    ctx: &DocCtx<'_>,
    kind: PolicyKind,
    wrap: fn(T) -> Policy,
) -> (Option<Policy>, Vec<Diagnostic>) {
    match from_node::<T>(ctx.node, &ctx.base) {
        Ok(mut policy) => {
            let metadata = policy.metadata_mut();
            metadata.namespace = scope(metadata.namespace.as_deref(), kind.is_namespaced());
            let problems = policy
                .validate()
                .into_iter()
                .map(|issue| ctx.diagnostic(&issue.field, issue.message))
                .collect();
            (Some(wrap(policy)), problems)
        }
        Err(e) => (None, vec![ctx.de_diagnostic(e)]),
    }
}

/// Namespace and name of a policy that did not deserialize, read as far as possible.
fn raw_identity(root: &Node, kind: PolicyKind) -> (Option<String>, String) {
    let metadata = root.get("metadata");
    let text = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .filter(|n| !n.is_null())
            .and_then(Node::as_text)
    };
    (
        scope(text("namespace"), kind.is_namespaced()),
        text("name").unwrap_or_default().to_owned(),
    )
}

fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// The document's kind, or the diagnostic that fails the load.
fn recognize(ctx: &DocCtx<'_>) -> Result<Kind, Diagnostic> {
    if !matches!(ctx.node.value, Value::Mapping(_)) {
        let found = ctx.node.kind_name();
        return Err(ctx.diagnostic(
            &FieldPath::root(),
            format!("expected a mapping with apiVersion and kind, found {found}"),
        ));
    }
    let api_version = required_text(ctx, "apiVersion")?;
    let kind = required_text(ctx, "kind")?;
    kinds::recognize(api_version, kind).map_err(|unrecognized| match unrecognized {
        Unrecognized::Kind(message) => ctx.diagnostic(&at("kind"), message),
        Unrecognized::ApiVersion(message) => ctx.diagnostic(&at("apiVersion"), message),
    })
}

fn required_text<'a>(ctx: &DocCtx<'a>, key: &str) -> Result<&'a str, Diagnostic> {
    match ctx.node.get(key) {
        None => Err(ctx.diagnostic(&at(key), format!("missing field {key:?}"))),
        Some(node) if node.is_null() => {
            Err(ctx.diagnostic(&at(key), format!("missing value for {key:?}")))
        }
        Some(node) => node.as_text().ok_or_else(|| {
            let found = node.kind_name();
            ctx.diagnostic(&at(key), format!("expected a string, found {found}"))
        }),
    }
}
