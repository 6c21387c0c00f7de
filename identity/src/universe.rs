//! Every identity a verdict can be about: the configuration's endpoints, the reserved
//! identities and the CIDR identities its policies name, with the ipcache that maps
//! addresses to them.
//!
//! The set is closed: any address maps to one of these identities (world when nothing
//! else claims it), which is what lets policy be resolved ahead of time into per-peer
//! tables instead of evaluating selectors per connection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use sluice_config::Config;

use crate::allocator::{IdentityRange, RangeExhausted, allocate, allocate_avoiding};
use crate::fqdn::FqdnIdentity;
use crate::identity::{Identity, reserved_labels};
use crate::ipcache::IpCache;
use crate::labels::{Label, LabelSet, meta};
use crate::ports::{NamedPort, Protocol};

/// What kind of thing an identity stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityKind {
    Reserved,
    /// Pods (workloads) with these labels.
    Endpoint,
    /// Addresses in this prefix that nothing more specific claims.
    Cidr(IpNet),
    /// Addresses learned from DNS answers (`toFQDNs`), which had the identity of this
    /// prefix before (see [`crate::fqdn`]). Their addresses are the node's business: the
    /// universe's ipcache does not hold them.
    Fqdn(IpNet),
}

#[derive(Debug, Clone)]
pub struct IdentityInfo {
    pub id: Identity,
    pub labels: LabelSet,
    pub kind: IdentityKind,
}

/// A workload (or the host) that policy is enforced for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `None` for the host endpoint.
    pub namespace: Option<String>,
    pub name: String,
    pub identity: Identity,
    pub addresses: Vec<IpAddr>,
    pub ports: Vec<NamedPort>,
}

impl Endpoint {
    pub fn is_host(&self) -> bool {
        self.namespace.is_none()
    }

    /// `namespace/name`, or `host`.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UniverseError {
    #[error("workload {workload}: address {address:?} is not an IP address")]
    BadAddress { workload: String, address: String },
    #[error(transparent)]
    Exhausted(#[from] RangeExhausted),
    #[error(
        "FQDN identity {id} ({labels}) is not a node-local identity or collides with another identity"
    )]
    BadFqdnIdentity { id: Identity, labels: String },
}

#[derive(Debug, Clone)]
pub struct Universe {
    pub cluster_name: String,
    identities: BTreeMap<Identity, IdentityInfo>,
    endpoints: Vec<Endpoint>,
    ipcache: IpCache,
    named_ports: HashMap<Identity, Vec<NamedPort>>,
    by_labels: HashMap<LabelSet, Identity>,
    /// Indexes into `endpoints`: the per-connection and per-flow lookups (which
    /// endpoint has this address, which carry this identity) must not scan them all.
    endpoint_by_address: HashMap<IpAddr, usize>,
    endpoints_by_identity: HashMap<Identity, Vec<usize>>,
    endpoint_by_name: HashMap<(String, String), usize>,
}

/// Name of the host endpoint.
pub const HOST_ENDPOINT: &str = "host";

impl Universe {
    /// Builds the universe of a configuration. `cidrs` are the prefixes the policies
    /// name (each gets a CIDR identity); `extra` are label sets of hypothetical
    /// endpoints (used by `policy trace --from <labels>`).
    pub fn build(
        config: &Config,
        cidrs: &BTreeSet<IpNet>,
        extra: &[LabelSet],
    ) -> Result<Self, UniverseError> {
        Self::build_with_fqdn(config, cidrs, extra, &[])
    }

    /// [`Universe::build`] with the FQDN identities a node learned. They keep the
    /// numbers they come with; CIDR identities are placed around them.
    pub fn build_with_fqdn(
        config: &Config,
        cidrs: &BTreeSet<IpNet>,
        extra: &[LabelSet],
        fqdn: &[FqdnIdentity],
    ) -> Result<Self, UniverseError> {
        let cluster = config.node.cluster_name.clone();
        let ns_labels: HashMap<&str, &BTreeMap<String, String>> = config
            .namespaces
            .iter()
            .filter_map(|d| {
                d.resource
                    .metadata
                    .labels
                    .as_ref()
                    .map(|l| (d.resource.metadata.name.as_str(), l))
            })
            .collect();

        struct Pending {
            namespace: String,
            name: String,
            labels: LabelSet,
            addresses: Vec<IpAddr>,
            ports: Vec<NamedPort>,
        }
        let mut pending = Vec::new();
        for doc in &config.workloads {
            let w = &doc.resource;
            let namespace = w
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let mut labels = LabelSet::new();
            for (k, v) in w.metadata.labels.iter().flatten() {
                labels.insert(Label::k8s(k.clone(), v.clone()));
            }
            labels.insert(Label::k8s(meta::NAMESPACE, namespace.clone()));
            labels.insert(Label::k8s(
                meta::SERVICE_ACCOUNT,
                w.spec
                    .service_account
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ));
            labels.insert(Label::k8s(meta::CLUSTER, cluster.clone()));
            if let Some(nsl) = ns_labels.get(namespace.as_str()) {
                for (k, v) in nsl.iter() {
                    labels.insert(Label::k8s(
                        format!("{}{k}", meta::NAMESPACE_LABELS_PREFIX),
                        v.clone(),
                    ));
                }
            }
            let mut addresses = Vec::new();
            for a in &w.spec.addresses {
                let ip: IpAddr = a.parse().map_err(|_| UniverseError::BadAddress {
                    workload: format!("{namespace}/{}", w.metadata.name),
                    address: a.clone(),
                })?;
                addresses.push(ip);
            }
            let ports = w
                .spec
                .ports
                .iter()
                .filter_map(|p| {
                    Some(NamedPort {
                        name: p.name.clone()?.to_ascii_lowercase(),
                        port: p.port,
                        protocol: Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))?,
                    })
                })
                .collect();
            pending.push(Pending {
                namespace,
                name: w.metadata.name.clone(),
                labels,
                addresses,
                ports,
            });
        }

        let endpoint_ids = allocate(
            pending
                .iter()
                .map(|p| p.labels.clone())
                .chain(extra.iter().cloned()),
            IdentityRange::CLUSTER_LOCAL,
        )?;
        let cidr_label_sets: Vec<(IpNet, LabelSet)> =
            cidrs.iter().map(|net| (*net, cidr_labels(*net))).collect();
        let fqdn_ids: BTreeSet<Identity> = fqdn.iter().map(|f| f.id).collect();
        let cidr_ids = allocate_avoiding(
            cidr_label_sets.iter().map(|(_, l)| l.clone()),
            IdentityRange::NODE_LOCAL,
            &fqdn_ids,
        )?;

        let mut universe = Self {
            cluster_name: cluster,
            identities: BTreeMap::new(),
            endpoints: Vec::new(),
            ipcache: IpCache::new(),
            named_ports: HashMap::new(),
            by_labels: HashMap::new(),
            endpoint_by_address: HashMap::new(),
            endpoints_by_identity: HashMap::new(),
            endpoint_by_name: HashMap::new(),
        };
        for (id, _) in Identity::RESERVED {
            let mut labels: LabelSet = reserved_labels(id).into_iter().collect();
            if id == Identity::HOST {
                // The host endpoint carries the node's labels, for `nodeSelector`.
                for (k, v) in &config.node.node_labels {
                    labels.insert(Label::k8s(k.clone(), v.clone()));
                }
            }
            universe.add_identity(IdentityInfo {
                id,
                labels,
                kind: IdentityKind::Reserved,
            });
        }
        for (labels, id) in &endpoint_ids {
            universe.add_identity(IdentityInfo {
                id: *id,
                labels: labels.clone(),
                kind: IdentityKind::Endpoint,
            });
        }
        for (net, labels) in cidr_label_sets {
            if let Some(id) = cidr_ids.get(&labels) {
                universe.add_identity(IdentityInfo {
                    id: *id,
                    labels,
                    kind: IdentityKind::Cidr(net),
                });
                universe.ipcache.insert(net, *id);
            }
        }
        for f in fqdn {
            let range = IdentityRange::NODE_LOCAL;
            if !(range.first..=range.last).contains(&f.id.0)
                || universe.identities.contains_key(&f.id)
            {
                return Err(UniverseError::BadFqdnIdentity {
                    id: f.id,
                    labels: f.labels.to_strings().join(","),
                });
            }
            // A label set the configuration already has (a CIDR identity) needs no
            // second number; the node never asks for one, but two identities with the
            // same labels would make `identity_by_labels` ambiguous.
            if universe.by_labels.contains_key(&f.labels) {
                continue;
            }
            universe.add_identity(IdentityInfo {
                id: f.id,
                labels: f.labels.clone(),
                kind: IdentityKind::Fqdn(f.base),
            });
        }
        universe.endpoints.push(Endpoint {
            namespace: None,
            name: HOST_ENDPOINT.into(),
            identity: Identity::HOST,
            addresses: Vec::new(),
            ports: Vec::new(),
        });
        for p in pending {
            let Some(id) = endpoint_ids.get(&p.labels).copied() else {
                continue;
            };
            for a in &p.addresses {
                universe.ipcache.insert(IpNet::from(*a), id);
            }
            universe
                .named_ports
                .entry(id)
                .or_default()
                .extend(p.ports.iter().cloned());
            universe.endpoints.push(Endpoint {
                namespace: Some(p.namespace),
                name: p.name,
                identity: id,
                addresses: p.addresses,
                ports: p.ports,
            });
        }
        for ports in universe.named_ports.values_mut() {
            ports.sort();
            ports.dedup();
        }
        universe.index_endpoints();
        Ok(universe)
    }

    fn index_endpoints(&mut self) {
        for (i, e) in self.endpoints.iter().enumerate() {
            for a in &e.addresses {
                // The first endpoint claiming an address keeps it, as a scan would.
                self.endpoint_by_address.entry(*a).or_insert(i);
            }
            self.endpoints_by_identity
                .entry(e.identity)
                .or_default()
                .push(i);
            if let Some(ns) = &e.namespace {
                self.endpoint_by_name
                    .entry((ns.clone(), e.name.clone()))
                    .or_insert(i);
            }
        }
    }

    fn add_identity(&mut self, info: IdentityInfo) {
        self.by_labels.insert(info.labels.clone(), info.id);
        self.identities.insert(info.id, info);
    }

    pub fn identities(&self) -> impl Iterator<Item = &IdentityInfo> {
        self.identities.values()
    }

    pub fn identity(&self, id: Identity) -> Option<&IdentityInfo> {
        self.identities.get(&id)
    }

    pub fn identity_by_labels(&self, labels: &LabelSet) -> Option<Identity> {
        self.by_labels.get(labels).copied()
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub fn endpoint(&self, namespace: &str, name: &str) -> Option<&Endpoint> {
        self.endpoint_by_name
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|&i| &self.endpoints[i])
    }

    /// The endpoint that has `ip` among its addresses.
    pub fn endpoint_at(&self, ip: IpAddr) -> Option<&Endpoint> {
        self.endpoint_by_address
            .get(&ip)
            .map(|&i| &self.endpoints[i])
    }

    /// The endpoints that carry an identity.
    pub fn endpoints_of(&self, id: Identity) -> impl Iterator<Item = &Endpoint> {
        self.endpoints_by_identity
            .get(&id)
            .into_iter()
            .flatten()
            .map(|&i| &self.endpoints[i])
    }

    pub fn ipcache(&self) -> &IpCache {
        &self.ipcache
    }

    /// Named ports of every endpoint carrying `id` (a union: Cilium resolves a named
    /// port against all endpoints of the destination identity).
    pub fn named_ports(&self, id: Identity) -> &[NamedPort] {
        self.named_ports.get(&id).map_or(&[], Vec::as_slice)
    }
}

/// A CIDR identity's labels: `cidr:<prefix>` and the world label of its family, so that
/// the `world` entity selects it (as Cilium's CIDR identities are).
fn cidr_labels(net: IpNet) -> LabelSet {
    let world = match net {
        IpNet::V4(_) => "world-ipv4",
        IpNet::V6(_) => "world-ipv6",
    };
    [
        Label::new(crate::labels::LabelSource::Cidr, net.to_string(), ""),
        Label::reserved(world),
    ]
    .into_iter()
    .collect()
}
