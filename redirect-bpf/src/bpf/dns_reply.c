/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * recvmsg() on a UDP socket whose DNS was redirected: a datagram from the DNS proxy
 * is reported as coming from the resolver the workload asked, so that resolvers which
 * check the reply's source accept it. Must return 1: recvmsg programs cannot refuse.
 */
#include "sock_addr.h"

static __always_inline int sluice_dns_reply(struct bpf_sock_addr *ctx, int v6)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct sluice_orig_dst *orig = bpf_map_lookup_elem(&SLUICE_DNS_ORIG, &cookie);
	if (!orig)
		return 1;
	struct sluice_config *cfg = sluice_config();
	if (!cfg)
		return 1;

	struct sluice_sockaddr src = {};
	sluice_read_user_addr(ctx, v6, &src);
	if (src.port != cfg->dns_proxy_port || src.family != orig->family)
		return 1;
	/* The query left from this cgroup; the reply is read there too. */
	__u64 cgroup_id = orig->cgroup_id;
	struct sluice_workload *wl = bpf_map_lookup_elem(&SLUICE_WORKLOADS, &cgroup_id);
	if (!wl)
		return 1;
	__u8 proxy[16];
	if (!sluice_proxy_addr(wl, src.family, proxy) || !sluice_addr_eq(proxy, src.addr))
		return 1;

	struct sluice_sockaddr resolver = {};
	__builtin_memcpy(resolver.addr, orig->addr, 16);
	resolver.port = orig->port;
	resolver.family = orig->family;
	sluice_write_user_addr(ctx, v6, &resolver);
	sluice_count(SLUICE_CTR_DNS_REPLIES_REWRITTEN);
	return 1;
}

SEC("cgroup/recvmsg4")
int sluice_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sluice_dns_reply(ctx, 0);
}

SEC("cgroup/recvmsg6")
int sluice_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sluice_dns_reply(ctx, 1);
}
