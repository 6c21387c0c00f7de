/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Keys a redirected UDP DNS query's original resolver by what the DNS proxy sees: the
 * client's address and port.
 *
 * connect4/6 and sendmsg4/6 record the resolver by socket cookie, but neither can key
 * it by the client's port: connect() of an unbound UDP socket (glibc's resolver does
 * exactly that) runs the BPF hook before the kernel picks the port, and sendmsg()
 * does not run the hook at all on a connected socket. Every datagram leaves through
 * this program with its final source address and port in its headers, so it is keyed
 * here, whatever the client did. The cost is one program run per packet the workload
 * sends; anything but UDP to the DNS proxy port returns after the header read.
 *
 * Never drops: returns 1 for every packet.
 */
#include "packet.h"

SEC("cgroup_skb/egress")
int sluice_dns_egress(struct __sk_buff *skb)
{
	struct sluice_config *cfg = sluice_config();
	if (!cfg || cfg->dns_proxy_port == 0)
		return 1;
	struct sluice_packet pkt = {};
	if (!sluice_parse(skb, &pkt))
		return 1;
	if (pkt.proto != SLUICE_PROTO_UDP || pkt.dport != cfg->dns_proxy_port)
		return 1;

	__u64 cookie = bpf_get_socket_cookie(skb);
	struct sluice_orig_dst *orig = bpf_map_lookup_elem(&SLUICE_DNS_ORIG, &cookie);
	if (!orig)
		return 1; /* not a redirected DNS socket */
	/* Only datagrams the redirect sent to this workload's DNS proxy address. */
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	struct sluice_workload *wl = bpf_map_lookup_elem(&SLUICE_WORKLOADS, &cgroup_id);
	if (!wl)
		return 1;
	__u8 proxy[16];
	if (!sluice_proxy_addr(wl, pkt.family, proxy) || !sluice_addr_eq(proxy, pkt.dst))
		return 1;

	struct sluice_client_key key = {};
	__builtin_memcpy(key.addr, pkt.src, 16);
	key.port = pkt.sport;
	key.family = pkt.family;
	key.proto = SLUICE_PROTO_UDP;
	if (bpf_map_update_elem(&SLUICE_DNS_ORIG_BY_CLIENT, &key, orig, BPF_ANY) != 0)
		sluice_count(SLUICE_CTR_MAP_FULL);
	return 1;
}
