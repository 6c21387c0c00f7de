/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Map definitions and helpers shared by every sluice program. */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/socket.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

/* Keeps clang from merging two adjacent context stores into one wider store, which
 * the verifier rejects ("invalid bpf_context access"). */
#define SLUICE_BARRIER() asm volatile("" ::: "memory")

#define SLUICE_MAX_WORKLOADS 4096
/* Policy prefixes, workloads and every address learned from DNS: above the FQDN cache's
 * 100,000 entries (dns-proxy/src/cache.rs), so that cache, not the map, is the bound.
 * LPM tries allocate per entry (BPF_F_NO_PREALLOC): the size costs nothing unused. */
#define SLUICE_MAX_IPCACHE 262144
#define SLUICE_MAX_VERDICTS 65536
#define SLUICE_MAX_ORIG_DST 65536
#define SLUICE_MAX_POLICY 262144
#define SLUICE_MAX_UDP_CT 65536
#define SLUICE_EVENTS_BYTES (256 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_WORKLOADS);
	__type(key, __u64);
	__type(value, struct sluice_workload);
} SLUICE_WORKLOADS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_MAX_IPCACHE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_ipcache_key);
	__type(value, struct sluice_ipcache_entry);
} SLUICE_IPCACHE SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_VERDICTS);
	__type(key, struct sluice_verdict_key);
	__type(value, struct sluice_verdict);
} SLUICE_VERDICTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_MAX_POLICY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_policy_key);
	__type(value, struct sluice_verdict);
} SLUICE_POLICY SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_UDP_CT);
	__type(key, struct sluice_udp_ct_key);
	__type(value, __u32);
} SLUICE_UDP_CT SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_config);
} SLUICE_CONFIG SEC(".maps");

/* LRU: an entry nobody consumed (client gone before the proxy accepted, connected
 * UDP that never gets a sockops callback) ages out instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_ORIG_DST);
	__type(key, __u64);
	__type(value, struct sluice_orig_dst);
} SLUICE_ORIG_DST SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_ORIG_DST);
	__type(key, struct sluice_client_key);
	__type(value, struct sluice_orig_dst);
} SLUICE_ORIG_DST_BY_CLIENT SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_ORIG_DST);
	__type(key, __u64);
	__type(value, struct sluice_orig_dst);
} SLUICE_DNS_ORIG SEC(".maps");

/* Read, never deleted, by the DNS proxy: once per query, and a socket sends many. LRU
 * ages out the entries of closed sockets; each datagram (UDP) or new connection (TCP)
 * rewrites its client's entry, so a reused address and port never sees a stale one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_ORIG_DST);
	__type(key, struct sluice_client_key);
	__type(value, struct sluice_orig_dst);
} SLUICE_DNS_ORIG_BY_CLIENT SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} SLUICE_COUNTERS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SLUICE_EVENTS_BYTES);
} SLUICE_EVENTS SEC(".maps");

static __always_inline void sluice_count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&SLUICE_COUNTERS, &counter);
	if (value)
		*value += 1; /* per-CPU: no atomics needed */
}

static __always_inline void sluice_emit(struct sluice_event *ev)
{
	ev->timestamp_ns = bpf_ktime_get_ns();
	if (bpf_ringbuf_output(&SLUICE_EVENTS, ev, sizeof(*ev), 0) != 0)
		sluice_count(SLUICE_CTR_EVENTS_LOST);
}

static __always_inline struct sluice_config *sluice_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&SLUICE_CONFIG, &zero);
}

/* Identity of an address (network-order bytes in addr), WORLD when unknown. */
static __always_inline __u32 sluice_ipcache_identity(__u8 family, const __u8 addr[16])
{
	struct sluice_ipcache_key key = {};
	key.family = family;
	key.prefixlen = SLUICE_IPCACHE_PREFIX_BASE + (family == SLUICE_AF_INET ? 32 : 128);
	__builtin_memcpy(key.addr, addr, 16);
	struct sluice_ipcache_entry *entry = bpf_map_lookup_elem(&SLUICE_IPCACHE, &key);
	return entry ? entry->identity : SLUICE_IDENTITY_WORLD;
}

/* The verdict for a flow, or NULL when there is none or it belongs to an older
 * policy generation (then the caller treats it as "no verdict"). */
static __always_inline struct sluice_verdict *
sluice_verdict(const struct sluice_config *cfg, __u32 src_identity, __u32 dst_identity,
	       __u16 dport, __u8 proto, __u8 direction)
{
	struct sluice_verdict_key key = {
		.src_identity = src_identity,
		.dst_identity = dst_identity,
		.dport = dport,
		.proto = proto,
		.direction = direction,
	};
	struct sluice_verdict *v = bpf_map_lookup_elem(&SLUICE_VERDICTS, &key);
	if (!v)
		return 0;
	if (v->generation != cfg->generation) {
		sluice_count(SLUICE_CTR_STALE_VERDICT);
		return 0;
	}
	return v;
}

/* The precomputed policy for (endpoint, direction, peer, proto, port): the entry that
 * names the peer, else the any-peer one. NULL when neither covers the port (or the
 * entry is of another generation): the workload's default applies. */
static __always_inline struct sluice_verdict *
sluice_policy(const struct sluice_config *cfg, __u32 endpoint, __u32 peer, __u16 port,
	      __u8 proto, __u8 direction)
{
	struct sluice_policy_key key = {
		.prefixlen = SLUICE_POLICY_PREFIX_BASE + 16,
		.endpoint = bpf_htonl(endpoint),
		.peer = bpf_htonl(peer),
		.direction = direction,
		.proto = proto,
		.port = bpf_htons(port),
	};
	struct sluice_verdict *v = bpf_map_lookup_elem(&SLUICE_POLICY, &key);
	if (!v) {
		key.peer = 0;
		v = bpf_map_lookup_elem(&SLUICE_POLICY, &key);
	}
	if (!v)
		return 0;
	if (v->generation != cfg->generation) {
		sluice_count(SLUICE_CTR_STALE_VERDICT);
		return 0;
	}
	return v;
}

static __always_inline int sluice_udp_ct_seen(__u64 cookie, __u8 family, const __u8 addr[16],
					      __u16 port)
{
	struct sluice_udp_ct_key key = {};
	key.cookie = cookie;
	key.family = family;
	key.port = port;
	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&SLUICE_UDP_CT, &key) != 0;
}

static __always_inline void sluice_udp_ct_allow(__u64 cookie, __u8 family, const __u8 addr[16],
						__u16 port)
{
	struct sluice_udp_ct_key key = {};
	key.cookie = cookie;
	key.family = family;
	key.port = port;
	__builtin_memcpy(key.addr, addr, 16);
	__u32 one = 1;
	bpf_map_update_elem(&SLUICE_UDP_CT, &key, &one, BPF_ANY);
}

static __always_inline int sluice_audit_mode(const struct sluice_config *cfg)
{
	return (cfg->flags & SLUICE_CFG_F_AUDIT) != 0;
}

static __always_inline int sluice_addr_is_zero(const __u8 addr[16], __u8 family)
{
	__u32 words[4];
	__builtin_memcpy(words, addr, 16);
	if (family == SLUICE_AF_INET)
		return words[0] == 0;
	return (words[0] | words[1] | words[2] | words[3]) == 0;
}

static __always_inline int sluice_addr_is_loopback(const __u8 addr[16], __u8 family)
{
	if (family == SLUICE_AF_INET)
		return addr[0] == 127;
	__u32 words[4];
	__builtin_memcpy(words, addr, 16);
	return words[0] == 0 && words[1] == 0 && words[2] == 0 && words[3] == bpf_htonl(1);
}

#endif /* SLUICE_COMMON_H */
