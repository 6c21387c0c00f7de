//! The Rust mirror of `src/bpf/maps.h`: every map key and value exactly as the kernel
//! programs see it, and the constants stored in them. Nothing here has meaning beyond
//! layout; the typed API (`crate::types`) converts to and from these.
//!
//! `tests/layout.rs` compares each struct's size and each field's offset and size, and
//! each constant, with what the host C compiler makes of maps.h: change both or neither.
#![allow(unsafe_code)]

use std::mem::offset_of;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const IDENTITY_WORLD: u32 = 2;

pub const WL_F_INGRESS: u32 = 1 << 0;
pub const WL_F_INGRESS_DEFAULT_DENY: u32 = 1 << 1;
pub const WL_F_LOOPBACK: u32 = 1 << 2;
pub const WL_F_EGRESS_DEFAULT_DENY: u32 = 1 << 3;

pub const CFG_F_AUDIT: u32 = 1 << 0;
pub const POLICY_PREFIX_BASE: u32 = 80;

pub const IPCACHE_PREFIX_BASE: u32 = 32;

pub const DIR_INGRESS: u8 = 1;
pub const DIR_EGRESS: u8 = 2;

pub const ACTION_BYPASS: u8 = 1;
pub const ACTION_DENY: u8 = 2;
pub const ACTION_REDIRECT: u8 = 3;

pub const CTR_REDIRECTED: u32 = 0;
pub const CTR_BYPASSED: u32 = 1;
pub const CTR_DENIED: u32 = 2;
pub const CTR_DNS_REDIRECTED: u32 = 3;
pub const CTR_DNS_REPLIES_REWRITTEN: u32 = 4;
pub const CTR_INGRESS_DROPPED: u32 = 5;
pub const CTR_NOT_READY: u32 = 6;
pub const CTR_EVENTS_LOST: u32 = 7;
pub const CTR_MAP_FULL: u32 = 8;
pub const CTR_STALE_VERDICT: u32 = 9;
pub const CTR_AUDITED: u32 = 10;
pub const CTR_UDP_CT_HIT: u32 = 11;
pub const CTR_MAX: u32 = 16;

pub const VERDICT_FORWARDED: u8 = 1;
pub const VERDICT_DROPPED: u8 = 2;
pub const VERDICT_AUDIT: u8 = 4;
pub const VERDICT_REDIRECTED: u8 = 5;

pub const HOOK_CONNECT: u8 = 1;
pub const HOOK_SENDMSG: u8 = 2;
pub const HOOK_INGRESS: u8 = 3;

pub const DROP_NOT_READY: u8 = 0;

/// Map names as in the object file.
pub const MAP_WORKLOADS: &str = "SLUICE_WORKLOADS";
pub const MAP_IPCACHE: &str = "SLUICE_IPCACHE";
pub const MAP_VERDICTS: &str = "SLUICE_VERDICTS";
pub const MAP_CONFIG: &str = "SLUICE_CONFIG";
pub const MAP_ORIG_DST: &str = "SLUICE_ORIG_DST";
pub const MAP_ORIG_DST_BY_CLIENT: &str = "SLUICE_ORIG_DST_BY_CLIENT";
pub const MAP_DNS_ORIG: &str = "SLUICE_DNS_ORIG";
pub const MAP_DNS_ORIG_BY_CLIENT: &str = "SLUICE_DNS_ORIG_BY_CLIENT";
pub const MAP_COUNTERS: &str = "SLUICE_COUNTERS";
pub const MAP_EVENTS: &str = "SLUICE_EVENTS";
pub const MAP_POLICY: &str = "SLUICE_POLICY";
pub const MAP_UDP_CT: &str = "SLUICE_UDP_CT";
pub const ALL_MAPS: [&str; 12] = [
    MAP_WORKLOADS,
    MAP_IPCACHE,
    MAP_VERDICTS,
    MAP_CONFIG,
    MAP_ORIG_DST,
    MAP_ORIG_DST_BY_CLIENT,
    MAP_DNS_ORIG,
    MAP_DNS_ORIG_BY_CLIENT,
    MAP_COUNTERS,
    MAP_EVENTS,
    MAP_POLICY,
    MAP_UDP_CT,
];

/// `struct sluice_workload`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Workload {
    pub identity: u32,
    pub flags: u32,
    pub proxy_ip4: [u8; 4],
    pub proxy_ip6: [u8; 16],
    pub proxy_src_ip4: [u8; 4],
    pub proxy_src_ip6: [u8; 16],
}

/// `struct sluice_ipcache_key` after its `prefixlen`: aya's `lpm_trie::Key<T>` adds the
/// prefix length in front.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpcacheKeyData {
    pub family: u8,
    pub _pad: [u8; 3],
    pub addr: [u8; 16],
}

/// `struct sluice_ipcache_key`, whole (for the layout test; the map API uses
/// `aya::maps::lpm_trie::Key<IpcacheKeyData>`, which has the same bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpcacheKey {
    pub prefixlen: u32,
    pub data: IpcacheKeyData,
}

/// `struct sluice_ipcache_entry`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpcacheEntry {
    pub identity: u32,
}

/// `struct sluice_verdict_key`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VerdictKey {
    pub src_identity: u32,
    pub dst_identity: u32,
    pub dport: u16,
    pub proto: u8,
    pub direction: u8,
}

/// `struct sluice_verdict`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    pub action: u8,
    pub drop_reason: u8,
    pub _pad: u16,
    pub generation: u32,
}

/// `struct sluice_policy_key` after its `prefixlen` (aya's `lpm_trie::Key<T>` adds it).
/// `endpoint`, `peer` and `port` hold big-endian bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyKeyData {
    pub endpoint: u32,
    pub peer: u32,
    pub direction: u8,
    pub proto: u8,
    pub port: u16,
}

/// `struct sluice_policy_key`, whole (for the layout test).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyKey {
    pub prefixlen: u32,
    pub data: PolicyKeyData,
}

/// `struct sluice_udp_ct_key`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCtKey {
    pub cookie: u64,
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    pub _pad: [u8; 5],
}

/// `struct sluice_config`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    pub generation: u32,
    pub proxy_port: u16,
    pub dns_proxy_port: u16,
    pub flags: u32,
}

/// `struct sluice_orig_dst`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrigDst {
    pub cgroup_id: u64,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    pub proto: u8,
    pub _pad: u32,
}

/// `struct sluice_client_key`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    pub proto: u8,
}

/// `struct sluice_event`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ns: u64,
    pub cgroup_id: u64,
    pub cookie: u64,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub family: u8,
    pub proto: u8,
    pub verdict: u8,
    pub drop_reason: u8,
    pub direction: u8,
    pub hook: u8,
    pub _pad0: u16,
    pub _pad1: u32,
}

// SAFETY (for every impl below): `aya::Pod` requires a `#[repr(C)]` Copy type that is
// valid for any bit pattern and has no implicit padding. Each struct is `#[repr(C)]`,
// holds only integers and integer arrays, and pads explicitly (`_pad*`), which
// tests/layout.rs checks: the fields' sizes add up to the struct's size.
unsafe impl aya::Pod for Workload {}
// SAFETY: see above.
unsafe impl aya::Pod for IpcacheKeyData {}
// SAFETY: see above.
unsafe impl aya::Pod for IpcacheEntry {}
// SAFETY: see above.
unsafe impl aya::Pod for VerdictKey {}
// SAFETY: see above.
unsafe impl aya::Pod for Verdict {}
// SAFETY: see above.
unsafe impl aya::Pod for Config {}
// SAFETY: see above; four integer fields, no padding.
unsafe impl aya::Pod for PolicyKeyData {}
// SAFETY: see above.
unsafe impl aya::Pod for OrigDst {}
// SAFETY: see above.
unsafe impl aya::Pod for ClientKey {}

impl Event {
    /// Reads an event from a ring buffer record, field by field (native endian, as the
    /// kernel wrote it). `None` when the record is shorter than the struct.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        let arr = |at: usize| -> [u8; 16] {
            let mut out = [0; 16];
            out.copy_from_slice(&bytes[at..at + 16]);
            out
        };
        let u64_at = |at: usize| u64::from_ne_bytes(arr8(bytes, at));
        let u32_at = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let u16_at = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
        Some(Self {
            timestamp_ns: u64_at(offset_of!(Self, timestamp_ns)),
            cgroup_id: u64_at(offset_of!(Self, cgroup_id)),
            cookie: u64_at(offset_of!(Self, cookie)),
            src_identity: u32_at(offset_of!(Self, src_identity)),
            dst_identity: u32_at(offset_of!(Self, dst_identity)),
            src_addr: arr(offset_of!(Self, src_addr)),
            dst_addr: arr(offset_of!(Self, dst_addr)),
            src_port: u16_at(offset_of!(Self, src_port)),
            dst_port: u16_at(offset_of!(Self, dst_port)),
            family: bytes[offset_of!(Self, family)],
            proto: bytes[offset_of!(Self, proto)],
            verdict: bytes[offset_of!(Self, verdict)],
            drop_reason: bytes[offset_of!(Self, drop_reason)],
            direction: bytes[offset_of!(Self, direction)],
            hook: bytes[offset_of!(Self, hook)],
            _pad0: 0,
            _pad1: 0,
        })
    }
}

fn arr8(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    out
}

/// One line of the layout comparison: `struct <name> <size>`,
/// `field <struct>.<field> <offset> <size>` or `const <NAME> <value>`, the format the C
/// probe prints.
#[doc(hidden)]
pub fn rust_layout() -> Vec<String> {
    let mut lines = Vec::new();
    macro_rules! s {
        ($c:literal, $t:ty) => {
            lines.push(format!("struct {} {}", $c, size_of::<$t>()));
        };
    }
    macro_rules! f {
        ($c:literal, $t:ty, $($field:ident).+) => {{
            let value = <$t>::default();
            lines.push(format!(
                "field {}.{} {} {}",
                $c,
                field_name!($($field).+),
                offset_of!($t, $($field).+),
                size_of_val(&value.$($field).+)
            ));
        }};
    }
    macro_rules! field_name {
        ($last:ident) => { stringify!($last) };
        ($first:ident . $($rest:ident).+) => { field_name!($($rest).+) };
    }
    macro_rules! c {
        ($c:literal, $v:expr) => {
            lines.push(format!("const {} {}", $c, u64::from($v)));
        };
    }

    s!("sluice_workload", Workload);
    f!("sluice_workload", Workload, identity);
    f!("sluice_workload", Workload, flags);
    f!("sluice_workload", Workload, proxy_ip4);
    f!("sluice_workload", Workload, proxy_ip6);
    f!("sluice_workload", Workload, proxy_src_ip4);
    f!("sluice_workload", Workload, proxy_src_ip6);

    s!("sluice_ipcache_key", IpcacheKey);
    f!("sluice_ipcache_key", IpcacheKey, prefixlen);
    f!("sluice_ipcache_key", IpcacheKey, data.family);
    f!("sluice_ipcache_key", IpcacheKey, data._pad);
    f!("sluice_ipcache_key", IpcacheKey, data.addr);

    s!("sluice_ipcache_entry", IpcacheEntry);
    f!("sluice_ipcache_entry", IpcacheEntry, identity);

    s!("sluice_verdict_key", VerdictKey);
    f!("sluice_verdict_key", VerdictKey, src_identity);
    f!("sluice_verdict_key", VerdictKey, dst_identity);
    f!("sluice_verdict_key", VerdictKey, dport);
    f!("sluice_verdict_key", VerdictKey, proto);
    f!("sluice_verdict_key", VerdictKey, direction);

    s!("sluice_verdict", Verdict);
    f!("sluice_verdict", Verdict, action);
    f!("sluice_verdict", Verdict, drop_reason);
    f!("sluice_verdict", Verdict, _pad);
    f!("sluice_verdict", Verdict, generation);

    s!("sluice_policy_key", PolicyKey);
    f!("sluice_policy_key", PolicyKey, prefixlen);
    f!("sluice_policy_key", PolicyKey, data.endpoint);
    f!("sluice_policy_key", PolicyKey, data.peer);
    f!("sluice_policy_key", PolicyKey, data.direction);
    f!("sluice_policy_key", PolicyKey, data.proto);
    f!("sluice_policy_key", PolicyKey, data.port);

    s!("sluice_udp_ct_key", UdpCtKey);
    f!("sluice_udp_ct_key", UdpCtKey, cookie);
    f!("sluice_udp_ct_key", UdpCtKey, addr);
    f!("sluice_udp_ct_key", UdpCtKey, port);
    f!("sluice_udp_ct_key", UdpCtKey, family);
    f!("sluice_udp_ct_key", UdpCtKey, _pad);

    s!("sluice_config", Config);
    f!("sluice_config", Config, generation);
    f!("sluice_config", Config, proxy_port);
    f!("sluice_config", Config, dns_proxy_port);
    f!("sluice_config", Config, flags);

    s!("sluice_orig_dst", OrigDst);
    f!("sluice_orig_dst", OrigDst, cgroup_id);
    f!("sluice_orig_dst", OrigDst, src_identity);
    f!("sluice_orig_dst", OrigDst, dst_identity);
    f!("sluice_orig_dst", OrigDst, addr);
    f!("sluice_orig_dst", OrigDst, port);
    f!("sluice_orig_dst", OrigDst, family);
    f!("sluice_orig_dst", OrigDst, proto);
    f!("sluice_orig_dst", OrigDst, _pad);

    s!("sluice_client_key", ClientKey);
    f!("sluice_client_key", ClientKey, addr);
    f!("sluice_client_key", ClientKey, port);
    f!("sluice_client_key", ClientKey, family);
    f!("sluice_client_key", ClientKey, proto);

    s!("sluice_event", Event);
    f!("sluice_event", Event, timestamp_ns);
    f!("sluice_event", Event, cgroup_id);
    f!("sluice_event", Event, cookie);
    f!("sluice_event", Event, src_identity);
    f!("sluice_event", Event, dst_identity);
    f!("sluice_event", Event, src_addr);
    f!("sluice_event", Event, dst_addr);
    f!("sluice_event", Event, src_port);
    f!("sluice_event", Event, dst_port);
    f!("sluice_event", Event, family);
    f!("sluice_event", Event, proto);
    f!("sluice_event", Event, verdict);
    f!("sluice_event", Event, drop_reason);
    f!("sluice_event", Event, direction);
    f!("sluice_event", Event, hook);
    f!("sluice_event", Event, _pad0);
    f!("sluice_event", Event, _pad1);

    c!("SLUICE_AF_INET", AF_INET);
    c!("SLUICE_AF_INET6", AF_INET6);
    c!("SLUICE_PROTO_TCP", PROTO_TCP);
    c!("SLUICE_PROTO_UDP", PROTO_UDP);
    c!("SLUICE_IDENTITY_WORLD", IDENTITY_WORLD);
    c!("SLUICE_WL_F_INGRESS", WL_F_INGRESS);
    c!(
        "SLUICE_WL_F_INGRESS_DEFAULT_DENY",
        WL_F_INGRESS_DEFAULT_DENY
    );
    c!("SLUICE_WL_F_LOOPBACK", WL_F_LOOPBACK);
    c!("SLUICE_WL_F_EGRESS_DEFAULT_DENY", WL_F_EGRESS_DEFAULT_DENY);
    c!("SLUICE_CFG_F_AUDIT", CFG_F_AUDIT);
    c!("SLUICE_POLICY_PREFIX_BASE", POLICY_PREFIX_BASE);
    c!("SLUICE_IPCACHE_PREFIX_BASE", IPCACHE_PREFIX_BASE);
    c!("SLUICE_DIR_INGRESS", DIR_INGRESS);
    c!("SLUICE_DIR_EGRESS", DIR_EGRESS);
    c!("SLUICE_ACTION_BYPASS", ACTION_BYPASS);
    c!("SLUICE_ACTION_DENY", ACTION_DENY);
    c!("SLUICE_ACTION_REDIRECT", ACTION_REDIRECT);
    c!("SLUICE_CTR_REDIRECTED", CTR_REDIRECTED);
    c!("SLUICE_CTR_BYPASSED", CTR_BYPASSED);
    c!("SLUICE_CTR_DENIED", CTR_DENIED);
    c!("SLUICE_CTR_DNS_REDIRECTED", CTR_DNS_REDIRECTED);
    c!(
        "SLUICE_CTR_DNS_REPLIES_REWRITTEN",
        CTR_DNS_REPLIES_REWRITTEN
    );
    c!("SLUICE_CTR_INGRESS_DROPPED", CTR_INGRESS_DROPPED);
    c!("SLUICE_CTR_NOT_READY", CTR_NOT_READY);
    c!("SLUICE_CTR_EVENTS_LOST", CTR_EVENTS_LOST);
    c!("SLUICE_CTR_MAP_FULL", CTR_MAP_FULL);
    c!("SLUICE_CTR_STALE_VERDICT", CTR_STALE_VERDICT);
    c!("SLUICE_CTR_AUDITED", CTR_AUDITED);
    c!("SLUICE_CTR_UDP_CT_HIT", CTR_UDP_CT_HIT);
    c!("SLUICE_CTR_MAX", CTR_MAX);
    c!("SLUICE_VERDICT_FORWARDED", VERDICT_FORWARDED);
    c!("SLUICE_VERDICT_DROPPED", VERDICT_DROPPED);
    c!("SLUICE_VERDICT_AUDIT", VERDICT_AUDIT);
    c!("SLUICE_VERDICT_REDIRECTED", VERDICT_REDIRECTED);
    c!("SLUICE_HOOK_CONNECT", HOOK_CONNECT);
    c!("SLUICE_HOOK_SENDMSG", HOOK_SENDMSG);
    c!("SLUICE_HOOK_INGRESS", HOOK_INGRESS);
    c!("SLUICE_DROP_NOT_READY", DROP_NOT_READY);
    lines
}
