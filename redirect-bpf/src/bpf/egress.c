/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Egress steering at connect() (TCP and connected UDP) and sendmsg() (unconnected
 * UDP): DENY fails the call with EPERM, BYPASS leaves the socket alone, anything else
 * goes to the proxy (TCP) or the DNS proxy (UDP to port 53). The proxy relays TCP
 * only, so other UDP without a BYPASS verdict is denied: fail closed.
 */
#include "sock_addr.h"

static __always_inline int sluice_deny(struct sluice_event *ev, __u32 counter, __u8 reason)
{
	sluice_count(counter);
	ev->verdict = SLUICE_VERDICT_DROPPED;
	ev->drop_reason = reason;
	sluice_emit(ev);
	return 0; /* connect()/sendmsg() fail with EPERM */
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
		return sluice_deny(&ev, SLUICE_CTR_DENIED, verdict->drop_reason);
	if (verdict && verdict->action == SLUICE_ACTION_BYPASS) {
		sluice_count(SLUICE_CTR_BYPASSED);
		ev.verdict = SLUICE_VERDICT_FORWARDED;
		sluice_emit(&ev);
		return 1;
	}

	int dns = proto == SLUICE_PROTO_UDP && dst.port == 53 && cfg->dns_proxy_port != 0;
	if (proto == SLUICE_PROTO_UDP && !dns)
		return sluice_deny(&ev, SLUICE_CTR_DENIED, 133);

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
		/* Per datagram: counted, not reported (the DNS proxy reports the query). */
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
