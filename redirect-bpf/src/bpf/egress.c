/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Egress steering at connect() (TCP and connected UDP) and sendmsg() (unconnected
 * UDP): DENY fails the call with EPERM, BYPASS leaves the socket alone, anything else
 * goes to the proxy (TCP) or the DNS proxy (UDP and TCP to port 53, when the DNS proxy
 * has a port). Other UDP is decided here from the precomputed POLICY map and the
 * workload's default (the proxy relays TCP only); its replies pass through UDP_CT.
 */
#include "sock_addr.h"

/* A drop that is not policy's call (the proxy is not ready, a map is full): fails the
 * call with EPERM even in audit mode. */
static __always_inline int sluice_deny(struct sluice_event *ev, __u32 counter, __u8 reason)
{
	sluice_count(counter);
	ev->verdict = SLUICE_VERDICT_DROPPED;
	ev->drop_reason = reason;
	sluice_emit(ev);
	return 0; /* connect()/sendmsg() fail with EPERM */
}

/* Policy's drop: EPERM, or in audit mode a pass reported as AUDIT. */
static __always_inline int sluice_policy_deny(const struct sluice_config *cfg,
					      struct sluice_event *ev, __u8 reason)
{
	if (!sluice_audit_mode(cfg))
		return sluice_deny(ev, SLUICE_CTR_DENIED, reason);
	sluice_count(SLUICE_CTR_AUDITED);
	ev->verdict = SLUICE_VERDICT_AUDIT;
	ev->drop_reason = reason;
	sluice_emit(ev);
	return 1;
}

/* UDP that is not DNS for the DNS proxy never reaches a proxy: the kernel decides it
 * from the precomputed policy. A flow already allowed (either way) passes without a
 * lookup or an event; a new one is reported once. */
static __always_inline int sluice_udp_egress(const struct sluice_config *cfg,
					     const struct sluice_workload *wl,
					     struct sluice_event *ev, const struct sluice_sockaddr *dst)
{
	if (sluice_udp_ct_seen(ev->cookie, dst->family, dst->addr, dst->port)) {
		sluice_count(SLUICE_CTR_UDP_CT_HIT);
		return 1;
	}
	struct sluice_verdict *p = sluice_policy(cfg, ev->src_identity, ev->dst_identity,
						 dst->port, SLUICE_PROTO_UDP, SLUICE_DIR_EGRESS);
	int allowed = 1;
	__u8 reason = 133;
	if (p && p->action == SLUICE_ACTION_DENY) {
		allowed = 0;
		reason = p->drop_reason;
	} else if (p && p->action == SLUICE_ACTION_REDIRECT) {
		/* L7 rules (or authentication) the kernel cannot apply to plain UDP. */
		allowed = 0;
	} else if (!p && (wl->flags & SLUICE_WL_F_EGRESS_DEFAULT_DENY)) {
		allowed = 0;
	}
	if (!allowed) {
		if (!sluice_policy_deny(cfg, ev, reason))
			return 0;
	} else {
		sluice_count(SLUICE_CTR_BYPASSED);
		ev->verdict = SLUICE_VERDICT_FORWARDED;
		sluice_emit(ev);
	}
	sluice_udp_ct_allow(ev->cookie, dst->family, dst->addr, dst->port);
	return 1;
}

static __always_inline int sluice_egress(struct bpf_sock_addr *ctx, int v6, __u8 hook)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct sluice_workload *wl = bpf_map_lookup_elem(&SLUICE_WORKLOADS, &cgroup_id);
	if (!wl)
		return 1; /* not enrolled: untouched */

	__u8 proto;
	if (ctx->protocol == IPPROTO_TCP)
		proto = SLUICE_PROTO_TCP;
	else if (ctx->protocol == IPPROTO_UDP)
		proto = SLUICE_PROTO_UDP;
	else
		return 1;

	struct sluice_sockaddr dst = {};
	sluice_read_user_addr(ctx, v6, &dst);
	if (!(wl->flags & SLUICE_WL_F_LOOPBACK) && sluice_addr_is_loopback(dst.addr, dst.family))
		return 1; /* the pod's own loopback stays in the pod */

	struct sluice_config *cfg = sluice_config();
	if (!cfg)
		return 0;

	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 src_identity = wl->identity;
	__u32 dst_identity = sluice_ipcache_identity(dst.family, dst.addr);

	struct sluice_event ev = {};
	ev.cgroup_id = cgroup_id;
	ev.cookie = cookie;
	ev.src_identity = src_identity;
	ev.dst_identity = dst_identity;
	__builtin_memcpy(ev.dst_addr, dst.addr, 16);
	ev.dst_port = dst.port;
	ev.family = dst.family;
	ev.proto = proto;
	ev.direction = SLUICE_DIR_EGRESS;
	ev.hook = hook;

	struct sluice_verdict *verdict =
		sluice_verdict(cfg, src_identity, dst_identity, dst.port, proto, SLUICE_DIR_EGRESS);
	if (verdict && verdict->action == SLUICE_ACTION_DENY)
		return sluice_policy_deny(cfg, &ev, verdict->drop_reason);
	if (verdict && verdict->action == SLUICE_ACTION_BYPASS) {
		sluice_count(SLUICE_CTR_BYPASSED);
		ev.verdict = SLUICE_VERDICT_FORWARDED;
		sluice_emit(&ev);
		return 1;
	}

	/* DNS over either transport: the DNS proxy decides L3/L4 and rules.dns alike. */
	int dns = dst.port == 53 && cfg->dns_proxy_port != 0;
	if (proto == SLUICE_PROTO_UDP && !dns)
		return sluice_udp_egress(cfg, wl, &ev, &dst);

	struct sluice_sockaddr proxy = {};
	proxy.family = dst.family;
	proxy.port = dns ? cfg->dns_proxy_port : cfg->proxy_port;
	if (proxy.port == 0 || !sluice_proxy_addr(wl, dst.family, proxy.addr))
		return sluice_deny(&ev, SLUICE_CTR_NOT_READY, SLUICE_DROP_NOT_READY);

	struct sluice_orig_dst orig = {};
	orig.cgroup_id = cgroup_id;
	orig.src_identity = src_identity;
	orig.dst_identity = dst_identity;
	__builtin_memcpy(orig.addr, dst.addr, 16);
	orig.port = dst.port;
	orig.family = dst.family;
	orig.proto = proto;
	void *orig_map = dns ? (void *)&SLUICE_DNS_ORIG : (void *)&SLUICE_ORIG_DST;
	if (bpf_map_update_elem(orig_map, &cookie, &orig, BPF_ANY) != 0)
		return sluice_deny(&ev, SLUICE_CTR_MAP_FULL, SLUICE_DROP_NOT_READY);

	sluice_write_user_addr(ctx, v6, &proxy);

	if (dns) {
		/* Per datagram or connection: counted, not reported (the DNS proxy reports
		 * each query). SLUICE_DNS_ORIG_BY_CLIENT is filled once the source port
		 * exists: by dns_egress.c (UDP) or sockops.c (TCP). */
		sluice_count(SLUICE_CTR_DNS_REDIRECTED);
		return 1;
	}
	sluice_count(SLUICE_CTR_REDIRECTED);
	ev.verdict = SLUICE_VERDICT_REDIRECTED;
	sluice_emit(&ev);
	return 1;
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx)
{
	return sluice_egress(ctx, 0, SLUICE_HOOK_CONNECT);
}

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx)
{
	return sluice_egress(ctx, 1, SLUICE_HOOK_CONNECT);
}

SEC("cgroup/sendmsg4")
int sluice_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sluice_egress(ctx, 0, SLUICE_HOOK_SENDMSG);
}

SEC("cgroup/sendmsg6")
int sluice_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sluice_egress(ctx, 1, SLUICE_HOOK_SENDMSG);
}
