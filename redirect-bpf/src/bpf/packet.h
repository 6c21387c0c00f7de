/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Reading the IP and TCP/UDP headers of a packet in a cgroup_skb program (skb->data at
 * the network header), IPv4 and IPv6 alike. */
#ifndef SLUICE_PACKET_H
#define SLUICE_PACKET_H

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

#endif /* SLUICE_PACKET_H */
