//! Typed views of the map contents: what the proxy passes in and gets back. Each
//! converts to or from its raw mirror in [`crate::maps`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::BitOr;

use sluice_identity::{Direction, DropReason, Identity, Protocol};

use crate::Error;
use crate::maps as raw;

/// A cgroup v2 id (the inode number of its directory), as `bpf_get_current_cgroup_id`
/// returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CgroupId(pub u64);

impl fmt::Display for CgroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Per-workload switches (`SLUICE_WL_F_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkloadFlags(u32);

impl WorkloadFlags {
    pub const NONE: Self = Self(0);
    /// Enforce ingress verdicts (VERDICTS, then POLICY) in the kernel (cgroup_skb/ingress).
    pub const INGRESS: Self = Self(raw::WL_F_INGRESS);
    /// Also drop inbound TCP connection requests and new UDP flows that have no verdict
    /// and do not come from the proxy. Meaningful with [`Self::INGRESS`].
    pub const INGRESS_DEFAULT_DENY: Self = Self(raw::WL_F_INGRESS_DEFAULT_DENY);
    /// Redirect loopback destinations too: for workloads in the host's netns. Pods keep
    /// their own loopback traffic.
    pub const LOOPBACK: Self = Self(raw::WL_F_LOOPBACK);
    /// UDP with no verdict (neither VERDICTS nor POLICY) is dropped with 133; without
    /// this flag it passes. TCP always goes to the proxy, which decides.
    pub const EGRESS_DEFAULT_DENY: Self = Self(raw::WL_F_EGRESS_DEFAULT_DENY);

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for WorkloadFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// What WORKLOADS holds for an enrolled cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadEntry {
    pub identity: Identity,
    pub flags: WorkloadFlags,
    /// Where the workload's IPv4 connections are redirected to: the host-side address
    /// of its veth (127.0.0.1 for a workload in the host netns). `None`: IPv4 connects
    /// that would go to the proxy are denied (fail closed).
    pub proxy_v4: Option<Ipv4Addr>,
    pub proxy_v6: Option<Ipv6Addr>,
    /// The source address of the proxy's connections to this workload: inbound
    /// traffic from it passes the ingress program (the proxy decided it). Keep it
    /// distinct from `proxy_v4`, which the host's own processes use as their source
    /// towards the workload and which must be policed as `host`.
    pub proxy_source_v4: Option<Ipv4Addr>,
    pub proxy_source_v6: Option<Ipv6Addr>,
}

impl WorkloadEntry {
    pub(crate) fn to_raw(self) -> raw::Workload {
        raw::Workload {
            identity: self.identity.0,
            flags: self.flags.bits(),
            proxy_ip4: self.proxy_v4.map_or([0; 4], |ip| ip.octets()),
            proxy_ip6: self.proxy_v6.map_or([0; 16], |ip| ip.octets()),
            proxy_src_ip4: self.proxy_source_v4.map_or([0; 4], |ip| ip.octets()),
            proxy_src_ip6: self.proxy_source_v6.map_or([0; 16], |ip| ip.octets()),
        }
    }

    pub(crate) fn from_raw(w: raw::Workload) -> Self {
        let v4 = Ipv4Addr::from(w.proxy_ip4);
        let v6 = Ipv6Addr::from(w.proxy_ip6);
        let src4 = Ipv4Addr::from(w.proxy_src_ip4);
        let src6 = Ipv6Addr::from(w.proxy_src_ip6);
        Self {
            identity: Identity(w.identity),
            flags: WorkloadFlags(w.flags),
            proxy_v4: (!v4.is_unspecified()).then_some(v4),
            proxy_v6: (!v6.is_unspecified()).then_some(v6),
            proxy_source_v4: (!src4.is_unspecified()).then_some(src4),
            proxy_source_v6: (!src6.is_unspecified()).then_some(src6),
        }
    }
}

/// A kernel-side action stored in VERDICTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allowed at L4 only: the socket is left alone, the proxy never sees it.
    Bypass,
    /// connect()/sendmsg() fail with EPERM; ingress packets are dropped.
    Deny(DropReason),
    /// Through the proxy (the same as having no verdict).
    Redirect,
}

/// One POLICY entry: what `endpoint` does in `direction` with `peer` (`None`: any
/// peer without an entry of its own) on `ports` of `proto`. `Redirect` means L7 rules
/// or authentication apply: only the proxy may carry it (UDP and inbound traffic that
/// did not come through the proxy are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyEntry {
    pub endpoint: Identity,
    pub direction: Direction,
    pub peer: Option<Identity>,
    pub proto: Protocol,
    pub ports: sluice_identity::ports::PortRange,
    pub action: Action,
}

/// The key of a VERDICTS entry. Egress: `src` is the local workload and `dst` the peer;
/// ingress: `src` is the peer and `dst` the local workload. `port` is the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerdictKey {
    pub src: Identity,
    pub dst: Identity,
    pub port: u16,
    pub proto: Protocol,
    pub direction: Direction,
}

impl VerdictKey {
    pub(crate) fn to_raw(self) -> Result<raw::VerdictKey, Error> {
        Ok(raw::VerdictKey {
            src_identity: self.src.0,
            dst_identity: self.dst.0,
            dport: self.port,
            proto: proto_number(self.proto)?,
            direction: match self.direction {
                Direction::Ingress => raw::DIR_INGRESS,
                Direction::Egress => raw::DIR_EGRESS,
            },
        })
    }
}

pub(crate) fn proto_number(proto: Protocol) -> Result<u8, Error> {
    match proto {
        Protocol::Tcp => Ok(raw::PROTO_TCP),
        Protocol::Udp => Ok(raw::PROTO_UDP),
        other => Err(Error::UnsupportedProtocol(other)),
    }
}

fn proto_from_number(n: u8) -> Option<Protocol> {
    match n {
        raw::PROTO_TCP => Some(Protocol::Tcp),
        raw::PROTO_UDP => Some(Protocol::Udp),
        _ => None,
    }
}

/// A socket's destination before the kernel redirected it, and who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrigDst {
    pub addr: SocketAddr,
    pub proto: Protocol,
    pub src_identity: Identity,
    /// The destination's identity per the ipcache at connect time.
    pub dst_identity: Identity,
    pub cgroup: CgroupId,
}

impl OrigDst {
    pub(crate) fn from_raw(o: raw::OrigDst) -> Option<Self> {
        Some(Self {
            addr: SocketAddr::new(ip_from_raw(o.family, o.addr)?, o.port),
            proto: proto_from_number(o.proto)?,
            src_identity: Identity(o.src_identity),
            dst_identity: Identity(o.dst_identity),
            cgroup: CgroupId(o.cgroup_id),
        })
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address: the kernel stores it that way.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub(crate) fn ip_to_raw(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut addr = [0; 16];
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            addr[..4].copy_from_slice(&v4.octets());
            (raw::AF_INET, addr)
        }
        IpAddr::V6(v6) => (raw::AF_INET6, v6.octets()),
    }
}

pub(crate) fn ip_from_raw(family: u8, addr: [u8; 16]) -> Option<IpAddr> {
    match family {
        raw::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        raw::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(addr))),
        _ => None,
    }
}

pub(crate) fn client_key(peer: SocketAddr, proto: Protocol) -> Result<raw::ClientKey, Error> {
    let (family, addr) = ip_to_raw(peer.ip());
    Ok(raw::ClientKey {
        addr,
        port: peer.port(),
        family,
        proto: proto_number(proto)?,
    })
}

/// The datapath's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub redirected: u64,
    pub bypassed: u64,
    pub denied: u64,
    pub dns_redirected: u64,
    pub dns_replies_rewritten: u64,
    pub ingress_dropped: u64,
    /// Denied because no proxy port or address was configured (fail closed).
    pub not_ready: u64,
    /// Events the ring buffer had no room for.
    pub events_lost: u64,
    /// Connects denied because ORIG_DST could not be written.
    pub map_full: u64,
    /// Verdicts ignored because they belong to an older policy generation.
    pub stale_verdicts: u64,
    /// Would have been dropped; passed because of audit mode.
    pub audited: u64,
    /// UDP datagrams of flows already allowed (no policy lookup).
    pub udp_flow_hits: u64,
}

/// Hubble's verdict for a kernel decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventVerdict {
    Forwarded,
    Dropped,
    /// Policy would have dropped it; audit mode let it pass (`drop_reason` says why).
    Audit,
    Redirected,
}

/// Why the kernel dropped something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelDropReason {
    /// A policy drop with Cilium's number (133, 181, …).
    Policy(DropReason),
    /// The datapath had nowhere to redirect to (no proxy port or address) or no room
    /// to record the original destination: failed closed.
    NotReady,
    /// A number this version does not know.
    Other(u8),
}

impl KernelDropReason {
    fn from_code(code: u8) -> Self {
        [
            DropReason::PolicyDenied,
            DropReason::PolicyDenyList,
            DropReason::AuthRequired,
        ]
        .into_iter()
        .find(|r| r.code() == code)
        .map_or(
            if code == raw::DROP_NOT_READY {
                Self::NotReady
            } else {
                Self::Other(code)
            },
            Self::Policy,
        )
    }
}

/// Which program decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Connect,
    Sendmsg,
    Ingress,
}

/// One kernel-side decision from the EVENTS ring buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelEvent {
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`).
    pub monotonic_ns: u64,
    pub cgroup: CgroupId,
    pub socket_cookie: u64,
    pub src_identity: Identity,
    pub dst_identity: Identity,
    /// Port 0 when not known at decision time (connect runs before the source port
    /// exists).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub proto: Protocol,
    pub verdict: EventVerdict,
    /// Set when `verdict` is `Dropped` or `Audit`.
    pub drop_reason: Option<KernelDropReason>,
    pub direction: Direction,
    pub hook: Hook,
}

impl KernelEvent {
    /// `None` for a record this version cannot interpret.
    pub(crate) fn from_raw(e: raw::Event) -> Option<Self> {
        let verdict = match e.verdict {
            raw::VERDICT_FORWARDED => EventVerdict::Forwarded,
            raw::VERDICT_DROPPED => EventVerdict::Dropped,
            raw::VERDICT_AUDIT => EventVerdict::Audit,
            raw::VERDICT_REDIRECTED => EventVerdict::Redirected,
            _ => return None,
        };
        let unspecified = match e.family {
            raw::AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        // The source address is unknown at connect time: the kernel leaves it zero.
        let src_ip = ip_from_raw(e.family, e.src_addr).unwrap_or(unspecified);
        Some(Self {
            monotonic_ns: e.timestamp_ns,
            cgroup: CgroupId(e.cgroup_id),
            socket_cookie: e.cookie,
            src_identity: Identity(e.src_identity),
            dst_identity: Identity(e.dst_identity),
            src: SocketAddr::new(src_ip, e.src_port),
            dst: SocketAddr::new(ip_from_raw(e.family, e.dst_addr)?, e.dst_port),
            proto: proto_from_number(e.proto)?,
            verdict,
            drop_reason: matches!(verdict, EventVerdict::Dropped | EventVerdict::Audit)
                .then(|| KernelDropReason::from_code(e.drop_reason)),
            direction: match e.direction {
                raw::DIR_INGRESS => Direction::Ingress,
                raw::DIR_EGRESS => Direction::Egress,
                _ => return None,
            },
            hook: match e.hook {
                raw::HOOK_CONNECT => Hook::Connect,
                raw::HOOK_SENDMSG => Hook::Sendmsg,
                raw::HOOK_INGRESS => Hook::Ingress,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_v6_peer_is_keyed_as_v4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.7]:4000".parse().unwrap();
        let plain: SocketAddr = "10.0.0.7:4000".parse().unwrap();
        assert_eq!(
            client_key(mapped, Protocol::Tcp).unwrap(),
            client_key(plain, Protocol::Tcp).unwrap()
        );
    }

    #[test]
    fn drop_reason_codes_follow_cilium() {
        assert_eq!(
            KernelDropReason::from_code(181),
            KernelDropReason::Policy(DropReason::PolicyDenyList)
        );
        assert_eq!(
            KernelDropReason::from_code(133),
            KernelDropReason::Policy(DropReason::PolicyDenied)
        );
        assert_eq!(KernelDropReason::from_code(0), KernelDropReason::NotReady);
        assert_eq!(KernelDropReason::from_code(7), KernelDropReason::Other(7));
    }

    #[test]
    fn workload_round_trips_through_raw() {
        let entry = WorkloadEntry {
            identity: Identity(300),
            flags: WorkloadFlags::INGRESS | WorkloadFlags::LOOPBACK,
            proxy_v4: Some(Ipv4Addr::new(10, 200, 0, 1)),
            proxy_v6: None,
            proxy_source_v4: Some(Ipv4Addr::new(10, 200, 0, 2)),
            proxy_source_v6: None,
        };
        assert_eq!(WorkloadEntry::from_raw(entry.to_raw()), entry);
    }
}
