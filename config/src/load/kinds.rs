//! Which resources sluice reads, by `apiVersion` and `kind`.

use crate::model::PolicyKind;

/// What a document is, once its `apiVersion` and `kind` are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Policy(PolicyKind),
    Namespace,
    Service,
    Secret,
    CidrGroup,
    Workload,
    NodeConfig,
    /// `kind: List`, what `kubectl get -o yaml` prints for several objects.
    List,
}

/// Every accepted pair, in the order an error message lists them.
const ACCEPTED: &[(&str, &str, Kind)] = &[
    (
        "cilium.io/v2",
        "CiliumNetworkPolicy",
        Kind::Policy(PolicyKind::CiliumNetworkPolicy),
    ),
    (
        "cilium.io/v2",
        "CiliumClusterwideNetworkPolicy",
        Kind::Policy(PolicyKind::CiliumClusterwideNetworkPolicy),
    ),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Kind::Policy(PolicyKind::NetworkPolicy),
    ),
    ("v1", "Namespace", Kind::Namespace),
    ("v1", "Service", Kind::Service),
    ("v1", "Secret", Kind::Secret),
    // The CIDR group moved from v2alpha1 to v2 in Cilium 1.18; both are in use.
    ("cilium.io/v2alpha1", "CiliumCIDRGroup", Kind::CidrGroup),
    ("cilium.io/v2", "CiliumCIDRGroup", Kind::CidrGroup),
    ("sluice.io/v1alpha1", "Workload", Kind::Workload),
    ("sluice.io/v1alpha1", "NodeConfig", Kind::NodeConfig),
    ("v1", "List", Kind::List),
];

/// Why a document's type is not one sluice reads; the field is `kind` or `apiVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unrecognized {
    Kind(String),
    ApiVersion(String),
}

pub(super) fn recognize(api_version: &str, kind: &str) -> Result<Kind, Unrecognized> {
    if let Some((_, _, k)) = ACCEPTED
        .iter()
        .find(|(a, n, _)| *a == api_version && *n == kind)
    {
        return Ok(*k);
    }
    let versions: Vec<&str> = ACCEPTED
        .iter()
        .filter(|(_, n, _)| *n == kind)
        .map(|(a, _, _)| *a)
        .collect();
    if versions.is_empty() {
        return Err(Unrecognized::Kind(format!(
            "unknown kind {kind:?} (apiVersion {api_version:?}); accepted kinds: {}",
            accepted_list()
        )));
    }
    Err(Unrecognized::ApiVersion(format!(
        "apiVersion {api_version:?} is not supported for kind {kind}; use {}",
        versions.join(" or ")
    )))
}

fn accepted_list() -> String {
    ACCEPTED
        .iter()
        .map(|(a, n, _)| format!("{n} ({a})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_pairs_and_near_misses() {
        assert_eq!(
            recognize("cilium.io/v2", "CiliumNetworkPolicy"),
            Ok(Kind::Policy(PolicyKind::CiliumNetworkPolicy))
        );
        assert_eq!(
            recognize("cilium.io/v2", "CiliumCIDRGroup"),
            Ok(Kind::CidrGroup)
        );
        assert_eq!(
            recognize("cilium.io/v1", "CiliumNetworkPolicy"),
            Err(Unrecognized::ApiVersion(
                "apiVersion \"cilium.io/v1\" is not supported for kind CiliumNetworkPolicy; \
                 use cilium.io/v2"
                    .into()
            ))
        );
        assert!(matches!(
            recognize("apps/v1", "Deployment"),
            Err(Unrecognized::Kind(m)) if m.starts_with(
                "unknown kind \"Deployment\" (apiVersion \"apps/v1\"); accepted kinds: \
                 CiliumNetworkPolicy (cilium.io/v2), "
            )
        ));
    }
}
