//! Numeric security identities, Cilium's reserved ones, and entities.

use std::fmt;

use serde::Serialize;

use crate::labels::{Label, LabelKey, LabelSource, meta};
use crate::selector::{Requirement, Selector};

/// A numeric security identity. Verdicts are keyed by these, never by addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Identity(pub u32);

impl Identity {
    pub const UNKNOWN: Self = Self(0);
    pub const HOST: Self = Self(1);
    pub const WORLD: Self = Self(2);
    pub const UNMANAGED: Self = Self(3);
    pub const HEALTH: Self = Self(4);
    pub const INIT: Self = Self(5);
    pub const REMOTE_NODE: Self = Self(6);
    pub const KUBE_APISERVER: Self = Self(7);
    pub const INGRESS: Self = Self(8);
    pub const WORLD_IPV4: Self = Self(9);
    pub const WORLD_IPV6: Self = Self(10);

    /// First cluster-local identity (cluster id 0).
    pub const FIRST_CLUSTER_LOCAL: u32 = 256;
    /// Last identity of cluster id 0.
    pub const LAST_CLUSTER_LOCAL: u32 = 65_535;
    /// Node-local identities (CIDR, FQDN) have this bit set.
    pub const LOCAL_SCOPE_BIT: u32 = 1 << 24;

    /// The reserved identities sluice uses, with their Cilium names.
    pub const RESERVED: [(Self, &'static str); 10] = [
        (Self::HOST, "host"),
        (Self::WORLD, "world"),
        (Self::UNMANAGED, "unmanaged"),
        (Self::HEALTH, "health"),
        (Self::INIT, "init"),
        (Self::REMOTE_NODE, "remote-node"),
        (Self::KUBE_APISERVER, "kube-apiserver"),
        (Self::INGRESS, "ingress"),
        (Self::WORLD_IPV4, "world-ipv4"),
        (Self::WORLD_IPV6, "world-ipv6"),
    ];

    /// The Cilium name of a reserved identity.
    pub fn reserved_name(self) -> Option<&'static str> {
        Self::RESERVED
            .iter()
            .find(|(id, _)| *id == self)
            .map(|(_, name)| *name)
    }

    pub fn is_reserved(self) -> bool {
        self.0 < Self::FIRST_CLUSTER_LOCAL
    }

    pub fn is_local_scope(self) -> bool {
        self.0 & Self::LOCAL_SCOPE_BIT != 0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A policy entity (`fromEntities` / `toEntities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    All,
    World,
    WorldIpv4,
    WorldIpv6,
    Cluster,
    ClusterMesh,
    Host,
    Init,
    Ingress,
    Unmanaged,
    RemoteNode,
    Health,
    None,
    KubeApiserver,
}

impl Entity {
    pub const ALL: [(Self, &'static str); 14] = [
        (Self::All, "all"),
        (Self::World, "world"),
        (Self::WorldIpv4, "world-ipv4"),
        (Self::WorldIpv6, "world-ipv6"),
        (Self::Cluster, "cluster"),
        (Self::ClusterMesh, "cluster-mesh"),
        (Self::Host, "host"),
        (Self::Init, "init"),
        (Self::Ingress, "ingress"),
        (Self::Unmanaged, "unmanaged"),
        (Self::RemoteNode, "remote-node"),
        (Self::Health, "health"),
        (Self::None, "none"),
        (Self::KubeApiserver, "kube-apiserver"),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(e, _)| *e)
    }

    /// The selectors an entity stands for (an identity matching any of them is
    /// selected), following Cilium's `EntitySelectorMapping`. `cluster` covers every
    /// in-cluster identity: the pods of the local cluster and the reserved in-cluster
    /// identities.
    pub fn selectors(self, cluster_name: &str) -> Vec<Selector> {
        let reserved = |name: &str| {
            let mut s = Selector::all();
            s.push(Requirement::exists(LabelKey::new(
                LabelSource::Reserved,
                name,
            )));
            s
        };
        match self {
            Self::All => vec![Selector::all()],
            Self::World => vec![
                reserved("world"),
                reserved("world-ipv4"),
                reserved("world-ipv6"),
            ],
            Self::WorldIpv4 => vec![reserved("world-ipv4")],
            Self::WorldIpv6 => vec![reserved("world-ipv6")],
            Self::Host => vec![reserved("host")],
            Self::Init => vec![reserved("init")],
            Self::Ingress => vec![reserved("ingress")],
            Self::Unmanaged => vec![reserved("unmanaged")],
            Self::RemoteNode => vec![reserved("remote-node")],
            Self::Health => vec![reserved("health")],
            Self::KubeApiserver => vec![reserved("kube-apiserver")],
            Self::None => Vec::new(),
            Self::Cluster => in_cluster(Requirement::equals(
                LabelKey::new(LabelSource::K8s, meta::CLUSTER),
                cluster_name,
            )),
            // One cluster per node configuration: cluster-mesh = every pod of any
            // cluster plus the in-cluster reserved identities.
            Self::ClusterMesh => in_cluster(Requirement::exists(LabelKey::new(
                LabelSource::K8s,
                meta::CLUSTER,
            ))),
        }
    }
}

/// The reserved identities inside a cluster (Cilium's `cluster` entity covers them).
const IN_CLUSTER_RESERVED: [&str; 7] = [
    "host",
    "remote-node",
    "init",
    "health",
    "ingress",
    "unmanaged",
    "kube-apiserver",
];

/// The pods matching `pods` plus every in-cluster reserved identity.
fn in_cluster(pods: Requirement) -> Vec<Selector> {
    let mut pod_selector = Selector::all();
    pod_selector.push(pods);
    let mut all = vec![pod_selector];
    for name in IN_CLUSTER_RESERVED {
        let mut s = Selector::all();
        s.push(Requirement::exists(LabelKey::new(
            LabelSource::Reserved,
            name,
        )));
        all.push(s);
    }
    all
}

/// The labels of a reserved identity.
pub fn reserved_labels(id: Identity) -> Vec<Label> {
    match id.reserved_name() {
        Some(name) => vec![Label::reserved(name)],
        None => Vec::new(),
    }
}
