/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Reading and rewriting the address in a bpf_sock_addr context (connect, sendmsg,
 * recvmsg), IPv4, IPv6 and IPv4-mapped IPv6 alike. */
#ifndef SLUICE_SOCK_ADDR_H
#define SLUICE_SOCK_ADDR_H

#include "common.h"

/* An address as the programs reason about it: v4-mapped IPv6 is treated as IPv4 so
 * that a dual-stack socket gets the same identity and verdict as an IPv4 one. */
struct sluice_sockaddr {
	__u8 addr[16];
	__u16 port;    /* host order */
	__u8 family;   /* effective family */
	__u8 mapped;   /* IPv4 carried in an AF_INET6 context */
};

static __always_inline int sluice_v6_words_are_mapped(const __u32 w[4])
{
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

static __always_inline void sluice_read_user_addr(struct bpf_sock_addr *ctx, int v6,
						  struct sluice_sockaddr *out)
{
	/* user_port is network order in the low 16 bits of a 32-bit field. */
	out->port = bpf_ntohs((__u16)ctx->user_port);
	if (!v6) {
		__u32 ip4 = ctx->user_ip4;
		out->family = SLUICE_AF_INET;
		__builtin_memcpy(out->addr, &ip4, 4);
		return;
	}
	__u32 w[4];
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	if (sluice_v6_words_are_mapped(w)) {
		out->family = SLUICE_AF_INET;
		out->mapped = 1;
		__builtin_memcpy(out->addr, &w[3], 4);
	} else {
		out->family = SLUICE_AF_INET6;
		__builtin_memcpy(out->addr, w, 16);
	}
}

/* Writes addr/port (family as in `a`) back into the context. Each store is a separate
 * 4-byte store: the barriers keep clang from merging them. */
static __always_inline void sluice_write_user_addr(struct bpf_sock_addr *ctx, int v6,
						   const struct sluice_sockaddr *a)
{
	__u32 w[4];
	__builtin_memcpy(w, a->addr, 16);
	if (!v6) {
		ctx->user_ip4 = w[0];
	} else if (a->family == SLUICE_AF_INET) {
		ctx->user_ip6[0] = 0;
		SLUICE_BARRIER();
		ctx->user_ip6[1] = 0;
		SLUICE_BARRIER();
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		SLUICE_BARRIER();
		ctx->user_ip6[3] = w[0];
	} else {
		ctx->user_ip6[0] = w[0];
		SLUICE_BARRIER();
		ctx->user_ip6[1] = w[1];
		SLUICE_BARRIER();
		ctx->user_ip6[2] = w[2];
		SLUICE_BARRIER();
		ctx->user_ip6[3] = w[3];
	}
	SLUICE_BARRIER();
	ctx->user_port = (__u32)bpf_htons(a->port);
}

/* The workload's proxy address for a family; returns 0 when it has none. */
static __always_inline int sluice_proxy_addr(const struct sluice_workload *wl, __u8 family,
					     __u8 out[16])
{
	__builtin_memset(out, 0, 16);
	if (family == SLUICE_AF_INET)
		__builtin_memcpy(out, wl->proxy_ip4, 4);
	else
		__builtin_memcpy(out, wl->proxy_ip6, 16);
	return !sluice_addr_is_zero(out, family);
}

/* Whether `src` is the address the proxy connects to this workload from. */
static __always_inline int sluice_from_proxy(const struct sluice_workload *wl, __u8 family,
					     const __u8 src[16])
{
	__u8 proxy[16];
	__builtin_memset(proxy, 0, 16);
	if (family == SLUICE_AF_INET)
		__builtin_memcpy(proxy, wl->proxy_src_ip4, 4);
	else
		__builtin_memcpy(proxy, wl->proxy_src_ip6, 16);
	if (sluice_addr_is_zero(proxy, family))
		return 0;
	__u32 x[4], y[4];
	__builtin_memcpy(x, proxy, 16);
	__builtin_memcpy(y, src, 16);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

static __always_inline int sluice_addr_eq(const __u8 a[16], const __u8 b[16])
{
	__u32 x[4], y[4];
	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

#endif /* SLUICE_SOCK_ADDR_H */
