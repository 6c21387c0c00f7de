/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The contract between the kernel programs and the proxy: every map key and value,
 * and the constants stored in them. The Rust mirror is redirect-bpf/src/maps.rs;
 * tests/layout.rs fails when the two disagree (size or offset of any field).
 *
 * Conventions:
 *   - Ports are HOST byte order everywhere in these structs. Only the BPF context
 *     fields (bpf_sock_addr.user_port, bpf_sock_ops.remote_port) are network order,
 *     and the programs convert at the edge.
 *   - Addresses are byte arrays in network order (as on the wire). An IPv4 address
 *     uses addr[0..4]; the rest is zero.
 *   - Families are AF_INET (2) / AF_INET6 (10).
 *   - Padding is explicit and must be zero, so that hash keys compare byte-wise.
 *
 * Only types with fixed-width members: this header is also compiled by the host C
 * compiler for the layout test.
 */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#include <linux/types.h>

#define SLUICE_AF_INET 2
#define SLUICE_AF_INET6 10

#define SLUICE_PROTO_TCP 6
#define SLUICE_PROTO_UDP 17

/* Reserved identity a destination gets when the ipcache knows nothing (Cilium's world). */
#define SLUICE_IDENTITY_WORLD 2

/* ---- SLUICE_WORKLOADS: hash, cgroup id (u64) -> struct sluice_workload ---------- */

/* Enforce explicit ingress verdicts in cgroup_skb/ingress for this workload. */
#define SLUICE_WL_F_INGRESS (1u << 0)
/* Also drop new inbound TCP connections (SYN) that have no BYPASS verdict and do not
 * come from the proxy. Needs SLUICE_WL_F_INGRESS. */
#define SLUICE_WL_F_INGRESS_DEFAULT_DENY (1u << 1)
/* Redirect loopback destinations too. Off for pods: their 127.0.0.0/8 and ::1 stay
 * inside the pod's netns. On for workloads sharing the host netns (host mode). */
#define SLUICE_WL_F_LOOPBACK (1u << 2)
/* UDP from this workload with no verdict is dropped (133); without it, it passes. TCP
 * always goes to the proxy, which decides. */
#define SLUICE_WL_F_EGRESS_DEFAULT_DENY (1u << 3)

struct sluice_workload {
	__u32 identity;
	__u32 flags;          /* SLUICE_WL_F_* */
	/* Where this workload's connections are redirected to: the host-side address
	 * of its veth (or 127.0.0.1 in host mode). All zero = family not redirected
	 * (connects of that family are denied: fail closed). */
	__u8 proxy_ip4[4];
	__u8 proxy_ip6[16];
	/* The source address of the proxy's own connections to this workload, which the
	 * ingress program lets in (the proxy decided them). Distinct from the redirect
	 * address so that the host's other processes, which use that one, are policed as
	 * `host`. All zero: no proxy source for the family. */
	__u8 proxy_src_ip4[4];
	__u8 proxy_src_ip6[16];
};

/* ---- SLUICE_IPCACHE: LPM trie, struct sluice_ipcache_key -> struct sluice_ipcache_entry */

/* prefixlen counts the bits after the prefixlen field: 32 (family + pad) plus the
 * IP prefix length, so that v4 and v6 entries never match each other. */
#define SLUICE_IPCACHE_PREFIX_BASE 32

struct sluice_ipcache_key {
	__u32 prefixlen;
	__u8 family;
	__u8 _pad[3];
	__u8 addr[16];
};

struct sluice_ipcache_entry {
	__u32 identity;
};

/* ---- SLUICE_VERDICTS: hash, struct sluice_verdict_key -> struct sluice_verdict --- */

/* Hubble's TrafficDirection numbers. */
#define SLUICE_DIR_INGRESS 1
#define SLUICE_DIR_EGRESS 2

struct sluice_verdict_key {
	__u32 src_identity;   /* egress: the local workload; ingress: the remote peer */
	__u32 dst_identity;   /* egress: the remote peer; ingress: the local workload */
	__u16 dport;          /* host order; the server's port */
	__u8 proto;           /* SLUICE_PROTO_* */
	__u8 direction;       /* SLUICE_DIR_* */
};

#define SLUICE_ACTION_BYPASS 1   /* allowed at L4 only: leave the socket alone */
#define SLUICE_ACTION_DENY 2     /* connect/sendmsg fails with EPERM, packet dropped */
#define SLUICE_ACTION_REDIRECT 3 /* through the proxy (same as no verdict) */

struct sluice_verdict {
	__u8 action;          /* SLUICE_ACTION_* */
	__u8 drop_reason;     /* for DENY: Cilium's 133 (policy denied) or 181 (deny rule) */
	__u16 _pad;
	__u32 generation;     /* ignored unless equal to sluice_config.generation */
};

/* ---- SLUICE_CONFIG: array, one entry (key 0) -> struct sluice_config ------------ */

struct sluice_config {
	__u32 generation;     /* current policy generation, see sluice_verdict */
	__u16 proxy_port;     /* host order; 0 = proxy not ready: redirects fail closed */
	__u16 dns_proxy_port; /* host order; 0 = DNS handled like any other UDP */
	__u32 flags;          /* SLUICE_CFG_F_* */
};

/* Audit mode: what would be dropped passes, reported with verdict AUDIT. */
#define SLUICE_CFG_F_AUDIT (1u << 0)

/*
 * POLICY: the endpoint's compiled L3/L4 policy, precomputed by userspace for traffic
 * the proxy never sees (UDP, and connection requests that reach a workload without
 * coming through the proxy). An LPM trie whose key ends with the port, so a port range
 * is a handful of prefixes. Identities and the port are big-endian so that the trie's
 * bytewise prefix order is the numeric one. peer 0 = any peer: looked up when no entry
 * names the peer (userspace writes peer-specific entries merged with the any-peer ones
 * for every port either covers). Values are struct sluice_verdict, generation-checked.
 */
#define SLUICE_POLICY_PREFIX_BASE 80 /* endpoint 32 + peer 32 + direction 8 + proto 8 */

struct sluice_policy_key {
	__u32 prefixlen;      /* SLUICE_POLICY_PREFIX_BASE + port prefix bits (0..16) */
	__u32 endpoint;       /* big-endian identity of the local workload */
	__u32 peer;           /* big-endian identity of the other side; 0 = any */
	__u8 direction;       /* SLUICE_DIR_* */
	__u8 proto;           /* SLUICE_PROTO_* */
	__u16 port;           /* big-endian destination port */
};

/*
 * UDP_CT: UDP flows a socket has been allowed to exchange, so that replies pass in
 * both directions without a verdict of their own. Written when a datagram is allowed
 * (egress at connect/sendmsg, ingress at delivery); LRU, so closed sockets' entries
 * age out. Keyed by the local socket's cookie and the remote address and port.
 */
struct sluice_udp_ct_key {
	__u64 cookie;
	__u8 addr[16];
	__u16 port;           /* host order */
	__u8 family;
	__u8 _pad[5];
};

/* ---- SLUICE_ORIG_DST: LRU hash, socket cookie (u64) -> struct sluice_orig_dst ----
 * ---- SLUICE_ORIG_DST_BY_CLIENT: LRU hash, struct sluice_client_key -> same ------
 * ---- SLUICE_DNS_ORIG: LRU hash, socket cookie (u64) -> same (original resolver) --
 * ---- SLUICE_DNS_ORIG_BY_CLIENT: LRU hash, struct sluice_client_key -> same ------
 *
 * DNS (port 53, UDP and TCP) redirected to the DNS proxy is recorded in SLUICE_DNS_ORIG
 * by socket cookie at connect/sendmsg. The DNS proxy only sees the client's address,
 * so the original resolver is copied to SLUICE_DNS_ORIG_BY_CLIENT under the client's
 * (address, port, protocol): for UDP by cgroup_skb/egress from each datagram's own
 * headers (connect runs before a UDP socket has its port, and sendmsg does not run for
 * connected sockets), for TCP by sockops when the connection is established. */

struct sluice_orig_dst {
	__u64 cgroup_id;      /* the client's cgroup */
	__u32 src_identity;
	__u32 dst_identity;   /* from the ipcache at connect time */
	__u8 addr[16];        /* the original destination */
	__u16 port;           /* host order */
	__u8 family;
	__u8 proto;
	__u32 _pad;
};

struct sluice_client_key {
	__u8 addr[16];        /* the client's own address, as the proxy sees the peer */
	__u16 port;           /* host order */
	__u8 family;          /* v4-mapped IPv6 clients are stored as AF_INET */
	__u8 proto;
};

/* ---- SLUICE_COUNTERS: per-CPU array of u64, indexed by: ----------------------- */

#define SLUICE_CTR_REDIRECTED 0
#define SLUICE_CTR_BYPASSED 1
#define SLUICE_CTR_DENIED 2
#define SLUICE_CTR_DNS_REDIRECTED 3
#define SLUICE_CTR_DNS_REPLIES_REWRITTEN 4
#define SLUICE_CTR_INGRESS_DROPPED 5
#define SLUICE_CTR_NOT_READY 6     /* denied because the proxy is not configured */
#define SLUICE_CTR_EVENTS_LOST 7   /* ring buffer full */
#define SLUICE_CTR_MAP_FULL 8      /* an ORIG_DST update failed: connect denied */
#define SLUICE_CTR_STALE_VERDICT 9 /* verdict ignored: older generation */
#define SLUICE_CTR_AUDITED 10      /* would have been dropped; audit mode let it pass */
#define SLUICE_CTR_UDP_CT_HIT 11   /* UDP datagram of an already allowed flow */
#define SLUICE_CTR_MAX 16

/* ---- SLUICE_EVENTS: ring buffer of struct sluice_event ------------------------- */

/* Hubble's Verdict numbers. */
#define SLUICE_VERDICT_FORWARDED 1
#define SLUICE_VERDICT_DROPPED 2
#define SLUICE_VERDICT_AUDIT 4
#define SLUICE_VERDICT_REDIRECTED 5

#define SLUICE_HOOK_CONNECT 1
#define SLUICE_HOOK_SENDMSG 2
#define SLUICE_HOOK_INGRESS 3

/* Drop reason when the datapath itself is not ready (no proxy port or address).
 * Not a Cilium number; Cilium's are 133 and 181. */
#define SLUICE_DROP_NOT_READY 0

struct sluice_event {
	__u64 timestamp_ns;   /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 cgroup_id;
	__u64 cookie;         /* socket cookie */
	__u32 src_identity;
	__u32 dst_identity;
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__u16 src_port;       /* host order; 0 when not known yet (connect) */
	__u16 dst_port;       /* host order */
	__u8 family;
	__u8 proto;
	__u8 verdict;         /* SLUICE_VERDICT_* */
	__u8 drop_reason;     /* when DROPPED */
	__u8 direction;       /* SLUICE_DIR_* */
	__u8 hook;            /* SLUICE_HOOK_* */
	__u16 _pad0;
	__u32 _pad1;
};

#endif /* SLUICE_MAPS_H */
