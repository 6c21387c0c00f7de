/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Built and run by build.rs with the HOST C compiler: prints the layout of every
 * struct and the value of every constant in maps.h, one per line:
 *   struct <name> <size>
 *   field <struct>.<field> <offset> <size>
 *   const <NAME> <value>
 * tests/layout.rs compares these lines with the Rust mirror in src/maps.rs.
 */
#include <stddef.h>
#include <stdio.h>

#include "maps.h"

#define S(t) printf("struct %s %zu\n", #t, sizeof(struct t))
#define F(t, f) printf("field %s.%s %zu %zu\n", #t, #f, offsetof(struct t, f), sizeof(((struct t *)0)->f))
#define C(n) printf("const %s %llu\n", #n, (unsigned long long)(n))

int main(void)
{
	S(sluice_workload);
	F(sluice_workload, identity);
	F(sluice_workload, flags);
	F(sluice_workload, proxy_ip4);
	F(sluice_workload, proxy_ip6);
	F(sluice_workload, proxy_src_ip4);
	F(sluice_workload, proxy_src_ip6);

	S(sluice_ipcache_key);
	F(sluice_ipcache_key, prefixlen);
	F(sluice_ipcache_key, family);
	F(sluice_ipcache_key, _pad);
	F(sluice_ipcache_key, addr);

	S(sluice_ipcache_entry);
	F(sluice_ipcache_entry, identity);

	S(sluice_verdict_key);
	F(sluice_verdict_key, src_identity);
	F(sluice_verdict_key, dst_identity);
	F(sluice_verdict_key, dport);
	F(sluice_verdict_key, proto);
	F(sluice_verdict_key, direction);

	S(sluice_verdict);
	F(sluice_verdict, action);
	F(sluice_verdict, drop_reason);
	F(sluice_verdict, _pad);
	F(sluice_verdict, generation);

	S(sluice_policy_key);
	F(sluice_policy_key, prefixlen);
	F(sluice_policy_key, endpoint);
	F(sluice_policy_key, peer);
	F(sluice_policy_key, direction);
	F(sluice_policy_key, proto);
	F(sluice_policy_key, port);

	S(sluice_udp_ct_key);
	F(sluice_udp_ct_key, cookie);
	F(sluice_udp_ct_key, addr);
	F(sluice_udp_ct_key, port);
	F(sluice_udp_ct_key, family);
	F(sluice_udp_ct_key, _pad);

	S(sluice_config);
	F(sluice_config, generation);
	F(sluice_config, proxy_port);
	F(sluice_config, dns_proxy_port);
	F(sluice_config, flags);

	S(sluice_orig_dst);
	F(sluice_orig_dst, cgroup_id);
	F(sluice_orig_dst, src_identity);
	F(sluice_orig_dst, dst_identity);
	F(sluice_orig_dst, addr);
	F(sluice_orig_dst, port);
	F(sluice_orig_dst, family);
	F(sluice_orig_dst, proto);
	F(sluice_orig_dst, _pad);

	S(sluice_client_key);
	F(sluice_client_key, addr);
	F(sluice_client_key, port);
	F(sluice_client_key, family);
	F(sluice_client_key, proto);

	S(sluice_event);
	F(sluice_event, timestamp_ns);
	F(sluice_event, cgroup_id);
	F(sluice_event, cookie);
	F(sluice_event, src_identity);
	F(sluice_event, dst_identity);
	F(sluice_event, src_addr);
	F(sluice_event, dst_addr);
	F(sluice_event, src_port);
	F(sluice_event, dst_port);
	F(sluice_event, family);
	F(sluice_event, proto);
	F(sluice_event, verdict);
	F(sluice_event, drop_reason);
	F(sluice_event, direction);
	F(sluice_event, hook);
	F(sluice_event, _pad0);
	F(sluice_event, _pad1);

	C(SLUICE_AF_INET);
	C(SLUICE_AF_INET6);
	C(SLUICE_PROTO_TCP);
	C(SLUICE_PROTO_UDP);
	C(SLUICE_IDENTITY_WORLD);
	C(SLUICE_WL_F_INGRESS);
	C(SLUICE_WL_F_INGRESS_DEFAULT_DENY);
	C(SLUICE_WL_F_LOOPBACK);
	C(SLUICE_WL_F_EGRESS_DEFAULT_DENY);
	C(SLUICE_CFG_F_AUDIT);
	C(SLUICE_POLICY_PREFIX_BASE);
	C(SLUICE_IPCACHE_PREFIX_BASE);
	C(SLUICE_DIR_INGRESS);
	C(SLUICE_DIR_EGRESS);
	C(SLUICE_ACTION_BYPASS);
	C(SLUICE_ACTION_DENY);
	C(SLUICE_ACTION_REDIRECT);
	C(SLUICE_CTR_REDIRECTED);
	C(SLUICE_CTR_BYPASSED);
	C(SLUICE_CTR_DENIED);
	C(SLUICE_CTR_DNS_REDIRECTED);
	C(SLUICE_CTR_DNS_REPLIES_REWRITTEN);
	C(SLUICE_CTR_INGRESS_DROPPED);
	C(SLUICE_CTR_NOT_READY);
	C(SLUICE_CTR_EVENTS_LOST);
	C(SLUICE_CTR_MAP_FULL);
	C(SLUICE_CTR_STALE_VERDICT);
	C(SLUICE_CTR_AUDITED);
	C(SLUICE_CTR_UDP_CT_HIT);
	C(SLUICE_CTR_MAX);
	C(SLUICE_VERDICT_FORWARDED);
	C(SLUICE_VERDICT_DROPPED);
	C(SLUICE_VERDICT_AUDIT);
	C(SLUICE_VERDICT_REDIRECTED);
	C(SLUICE_HOOK_CONNECT);
	C(SLUICE_HOOK_SENDMSG);
	C(SLUICE_HOOK_INGRESS);
	C(SLUICE_DROP_NOT_READY);
	return 0;
}
