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
 * too) always pass; a UDP datagram from there (the DNS proxy forwarding a query to a
 * resolver pod) is remembered in UDP_CT so that the reply passes the sender's egress.
 * A DNS proxy answer (the redirect address and the DNS proxy port, to a socket whose
 * DNS was redirected) passes too. The exact VERDICTS entry (written back by the proxy)
 * wins over the precomputed POLICY map.
 */
#include "packet.h"

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

/* A datagram the DNS proxy sent: from the workload's redirect address and the DNS
 * proxy's port (only the DNS proxy holds that port there), to a socket whose DNS was
 * redirected. */
static __always_inline int sluice_from_dns_proxy(const struct sluice_config *cfg,
						 const struct sluice_workload *wl, __u64 cookie,
						 const struct sluice_packet *pkt)
{
	if (cfg->dns_proxy_port == 0 || pkt->sport != cfg->dns_proxy_port)
		return 0;
	__u8 proxy[16];
	if (!sluice_proxy_addr(wl, pkt->family, proxy) || !sluice_addr_eq(proxy, pkt->src))
		return 0;
	return bpf_map_lookup_elem(&SLUICE_DNS_ORIG, &cookie) != 0;
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

	__u64 cookie = bpf_get_socket_cookie(skb);
	if (sluice_from_proxy(wl, pkt.family, pkt.src)) {
		/* The proxy enforced this already. Its UDP (DNS forwarded to a resolver pod)
		 * needs a reply that the resolver's egress must let out: remember the flow. */
		if (pkt.proto == SLUICE_PROTO_UDP)
			sluice_udp_ct_allow(cookie, pkt.family, pkt.src, pkt.sport);
		return 1;
	}

	struct sluice_config *cfg = sluice_config();
	if (!cfg)
		return 1;
	if (pkt.proto == SLUICE_PROTO_UDP && sluice_from_dns_proxy(cfg, wl, cookie, &pkt))
		return 1; /* the answer to a query the DNS proxy decided */
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
