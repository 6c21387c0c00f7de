/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * L3/L4 ingress for traffic that does not come through the proxy (e.g. from outside
 * the mesh). cgroup_skb/ingress runs for the RECEIVING socket's cgroup, after IP
 * reassembly, with skb->data at the network header.
 *
 * Without connection tracking a reply to the workload's own outgoing connection looks
 * like any other inbound packet, so TCP is judged on connection requests only (SYN
 * without ACK): replies and established connections keep flowing. UDP is judged per
 * flow: a datagram of a flow the receiving socket already exchanged (UDP_CT, written
 * by the egress hooks too) passes, a new one is decided and remembered. Packets from
 * the proxy's source address (not the redirect address, which host processes use
 * too) always pass. The exact VERDICTS entry (written back by the proxy) wins over
 * the precomputed POLICY map.
 */
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "sock_addr.h"

#define SLUICE_TCP_FLAG_SYN 0x02
#define SLUICE_TCP_FLAG_ACK 0x10
#define SLUICE_IPV6_MAX_EXT_HEADERS 4

struct sluice_packet {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;     /* host order */
	__u16 dport;     /* host order */
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
};

/* Fills `pkt` from the headers; returns 0 when the packet is not TCP/UDP over IP or
 * too short, and the caller lets it pass (the stack drops malformed packets itself). */
static __always_inline int sluice_parse(struct __sk_buff *skb, struct sluice_packet *pkt)
{
	__u32 l4_off;
	__u8 proto;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return 0;
		if (ip.ihl < 5)
			return 0;
		pkt->family = SLUICE_AF_INET;
		__builtin_memcpy(pkt->src, &ip.saddr, 4);
		__builtin_memcpy(pkt->dst, &ip.daddr, 4);
		proto = ip.protocol;
		l4_off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return 0;
		pkt->family = SLUICE_AF_INET6;
		__builtin_memcpy(pkt->src, &ip6.saddr, 16);
		__builtin_memcpy(pkt->dst, &ip6.daddr, 16);
		proto = ip6.nexthdr;
		l4_off = sizeof(ip6);
		/* Skip the extension headers that may precede TCP/UDP (bounded for the
		 * verifier). */
#pragma unroll
		for (int i = 0; i < SLUICE_IPV6_MAX_EXT_HEADERS; i++) {
			if (proto != IPPROTO_HOPOPTS && proto != IPPROTO_ROUTING &&
			    proto != IPPROTO_DSTOPTS)
				break;
			__u8 ext[2];
			if (bpf_skb_load_bytes(skb, l4_off, ext, sizeof(ext)) < 0)
				return 0;
			proto = ext[0];
			l4_off += (ext[1] + 1) * 8;
		}
	} else {
		return 0;
	}

	if (proto == IPPROTO_TCP) {
		__u8 tcp[14];
		if (bpf_skb_load_bytes(skb, l4_off, tcp, sizeof(tcp)) < 0)
			return 0;
		pkt->proto = SLUICE_PROTO_TCP;
		pkt->sport = ((__u16)tcp[0] << 8) | tcp[1];
		pkt->dport = ((__u16)tcp[2] << 8) | tcp[3];
		pkt->tcp_flags = tcp[13];
		return 1;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr udp;
		if (bpf_skb_load_bytes(skb, l4_off, &udp, sizeof(udp)) < 0)
			return 0;
		pkt->proto = SLUICE_PROTO_UDP;
		pkt->sport = bpf_ntohs(udp.source);
		pkt->dport = bpf_ntohs(udp.dest);
		return 1;
	}
	return 0;
}

/* Reports a drop (or, in audit mode, a would-be drop) and returns the program's answer. */
static __always_inline int sluice_ingress_drop(struct __sk_buff *skb, const struct sluice_config *cfg,
					       __u64 cgroup_id, __u32 src_identity,
					       __u32 dst_identity, const struct sluice_packet *pkt,
					       __u8 reason)
{
	int audit = sluice_audit_mode(cfg);
	struct sluice_event ev = {};
	ev.cgroup_id = cgroup_id;
	ev.cookie = bpf_get_socket_cookie(skb);
	ev.src_identity = src_identity;
	ev.dst_identity = dst_identity;
	__builtin_memcpy(ev.src_addr, pkt->src, 16);
	__builtin_memcpy(ev.dst_addr, pkt->dst, 16);
	ev.src_port = pkt->sport;
	ev.dst_port = pkt->dport;
	ev.family = pkt->family;
	ev.proto = pkt->proto;
	ev.verdict = audit ? SLUICE_VERDICT_AUDIT : SLUICE_VERDICT_DROPPED;
	ev.drop_reason = reason;
	ev.direction = SLUICE_DIR_INGRESS;
	ev.hook = SLUICE_HOOK_INGRESS;
	sluice_count(audit ? SLUICE_CTR_AUDITED : SLUICE_CTR_INGRESS_DROPPED);
	sluice_emit(&ev);
	return audit;
}

SEC("cgroup_skb/ingress")
int sluice_ingress(struct __sk_buff *skb)
{
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	struct sluice_workload *wl = bpf_map_lookup_elem(&SLUICE_WORKLOADS, &cgroup_id);
	if (!wl || !(wl->flags & SLUICE_WL_F_INGRESS))
		return 1;

	struct sluice_packet pkt = {};
	if (!sluice_parse(skb, &pkt))
		return 1;
	if (pkt.proto == SLUICE_PROTO_TCP &&
	    (pkt.tcp_flags & (SLUICE_TCP_FLAG_SYN | SLUICE_TCP_FLAG_ACK)) != SLUICE_TCP_FLAG_SYN)
		return 1; /* not a connection request */

	if (sluice_from_proxy(wl, pkt.family, pkt.src))
		return 1; /* the proxy enforced this already */

	struct sluice_config *cfg = sluice_config();
	if (!cfg)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skb);
	if (pkt.proto == SLUICE_PROTO_UDP &&
	    sluice_udp_ct_seen(cookie, pkt.family, pkt.src, pkt.sport)) {
		sluice_count(SLUICE_CTR_UDP_CT_HIT);
		return 1; /* a flow this socket was already allowed (a reply, or more of it) */
	}

	__u32 local_identity = wl->identity;
	__u32 src_identity = sluice_ipcache_identity(pkt.family, pkt.src);
	struct sluice_verdict *verdict = sluice_verdict(cfg, src_identity, local_identity,
							pkt.dport, pkt.proto, SLUICE_DIR_INGRESS);
	if (!verdict)
		verdict = sluice_policy(cfg, local_identity, src_identity, pkt.dport, pkt.proto,
					SLUICE_DIR_INGRESS);
	int pass = 1;
	__u8 reason = 133;
	if (verdict && verdict->action == SLUICE_ACTION_DENY) {
		pass = 0;
		reason = verdict->drop_reason;
	} else if (verdict && verdict->action == SLUICE_ACTION_REDIRECT) {
		/* L7 rules or authentication apply: only the proxy may deliver this. */
		pass = 0;
	} else if (!verdict && (wl->flags & SLUICE_WL_F_INGRESS_DEFAULT_DENY)) {
		pass = 0;
	}
	if (!pass && !sluice_ingress_drop(skb, cfg, cgroup_id, src_identity, local_identity,
					  &pkt, reason))
		return 0;
	if (pkt.proto == SLUICE_PROTO_UDP)
		sluice_udp_ct_allow(cookie, pkt.family, pkt.src, pkt.sport);
	return 1;
}
