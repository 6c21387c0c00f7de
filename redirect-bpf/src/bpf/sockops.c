/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * connect() runs before the client's source port exists, so the original
 * destination is first stored by socket cookie. When the redirected connection is
 * established (before the proxy's accept() returns) this moves it to a key the proxy
 * can compute from the accepted socket's peer address: ORIG_DST_BY_CLIENT for the
 * proxy, DNS_ORIG_BY_CLIENT for the DNS proxy (TCP DNS, recorded in DNS_ORIG).
 */
#include "sock_addr.h"

SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	void *from = &SLUICE_ORIG_DST;
	void *to = &SLUICE_ORIG_DST_BY_CLIENT;
	struct sluice_orig_dst *orig = bpf_map_lookup_elem(&SLUICE_ORIG_DST, &cookie);
	if (!orig) {
		from = &SLUICE_DNS_ORIG;
		to = &SLUICE_DNS_ORIG_BY_CLIENT;
		orig = bpf_map_lookup_elem(&SLUICE_DNS_ORIG, &cookie);
	}
	if (!orig)
		return 1;

	struct sluice_client_key key = {};
	key.proto = SLUICE_PROTO_TCP;
	key.port = (__u16)skops->local_port; /* host order, unlike remote_port */
	if (skops->family == SLUICE_AF_INET) {
		__u32 ip4 = skops->local_ip4;
		key.family = SLUICE_AF_INET;
		__builtin_memcpy(key.addr, &ip4, 4);
	} else {
		__u32 w[4];
		w[0] = skops->local_ip6[0];
		w[1] = skops->local_ip6[1];
		w[2] = skops->local_ip6[2];
		w[3] = skops->local_ip6[3];
		if (sluice_v6_words_are_mapped(w)) {
			key.family = SLUICE_AF_INET;
			__builtin_memcpy(key.addr, &w[3], 4);
		} else {
			key.family = SLUICE_AF_INET6;
			__builtin_memcpy(key.addr, w, 16);
		}
	}
	if (bpf_map_update_elem(to, &key, orig, BPF_ANY) != 0)
		sluice_count(SLUICE_CTR_MAP_FULL);
	bpf_map_delete_elem(from, &cookie);
	return 1;
}
