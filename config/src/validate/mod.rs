//! Semantic validation of typed resources: everything serde cannot check.
//!
//! Each entry point returns *every* problem it finds, each located by a [`FieldPath`] from
//! the document root (`spec.ingress[0].toPorts[0].ports[0].port`, `specs[2]…`), which the
//! loader turns into a file and line. Paths point at the deepest field that exists in the
//! user's YAML: a problem with a missing field points at the object that lacks it.
//!
//! Messages keep Cilium's and Kubernetes' wording where they have one (users search for it)
//! and say what to do where sluice adds a check of its own.
//!
//! [`FieldPath`]: crate::diag::FieldPath

mod cidr;
mod cilium;
mod knp;
mod names;
mod ports;
mod resources;
mod secret;
mod selector;
#[cfg(test)]
mod tests;
mod upstream;

pub(crate) use self::upstream::dns_upstream;
use crate::diag::{FieldPath, Issue};
use crate::types::{
    CidrGroup, CiliumPolicy, Namespace, NetworkPolicy, NodeConfig, Secret, Service, Workload,
};

pub(crate) fn cilium_policy(p: &CiliumPolicy) -> Vec<Issue> {
    let mut report = Report::default();
    cilium::policy(p, &mut report);
    report.into_issues()
}

pub(crate) fn network_policy(p: &NetworkPolicy) -> Vec<Issue> {
    let mut report = Report::default();
    knp::policy(p, &mut report);
    report.into_issues()
}

pub(crate) fn workload(w: &Workload) -> Vec<Issue> {
    let mut report = Report::default();
    resources::workload(w, &mut report);
    report.into_issues()
}

pub(crate) fn node_config(n: &NodeConfig) -> Vec<Issue> {
    let mut report = Report::default();
    resources::node_config(n, &mut report);
    report.into_issues()
}

pub(crate) fn secret(s: &Secret) -> Vec<Issue> {
    let mut report = Report::default();
    secret::secret(s, &mut report);
    report.into_issues()
}

pub(crate) fn service(s: &Service) -> Vec<Issue> {
    let mut report = Report::default();
    resources::service(s, &mut report);
    report.into_issues()
}

pub(crate) fn namespace(n: &Namespace) -> Vec<Issue> {
    let mut report = Report::default();
    resources::namespace(n, &mut report);
    report.into_issues()
}

pub(crate) fn cidr_group(c: &CidrGroup) -> Vec<Issue> {
    let mut report = Report::default();
    resources::cidr_group(c, &mut report);
    report.into_issues()
}

/// The issues found so far in one document.
#[derive(Debug, Default)]
struct Report(Vec<Issue>);

impl Report {
    fn add(&mut self, at: &FieldPath, message: impl Into<String>) {
        self.0.push(Issue::new(at.clone(), message));
    }

    fn into_issues(self) -> Vec<Issue> {
        self.0
    }
}
