/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The sluice datapath, one object file so that every program shares the same maps.
 * Each included file holds one hook family; maps.h is the contract with userspace.
 */
#include "common.h"

#include "egress.c"
#include "dns_reply.c"
#include "sockops.c"
#include "ingress.c"
#include "dns_egress.c"

char _license[] SEC("license") = "GPL";
