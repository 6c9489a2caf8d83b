// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// The kernel half of the IPv6-in-IPv6 tunnel (RFC 2473) between a home
// agent and a member's care-of address (RFC 6275 10.4.1, 11.3.3), as tc
// direct-action programs on the steered interfaces' ingress (TCX, ahead of
// the u32 + mirred steering into the engine's TUN).
//
// Why: a TUN cannot carry an IPv6-in-IPv6 GSO packet (the virtio header
// has no SKB_GSO_IPXIP6, and the kernel refuses to segment a TUN-written
// tunnel packet without it), so through the user-space engine a tunnel
// costs one syscall and one trip through the stack per 1.5 KB segment.
// bpf_skb_adjust_room() encapsulates and decapsulates GSO super-packets
// whole, with the right GSO type.
//
// Scope: only plain packets (TCP, UDP, ICMPv6 right after the fixed
// header) on tunnels the engine put in the maps. Everything else
// (Mobility Header, RH2/HAO inside, fragments, packets that would not fit
// the path MTU, hop limit 1, member handoffs) returns TC_ACT_UNSPEC and
// takes the usual way into the engine.
//
// Maps (filled by the engine, engine/bpf.rs):
//   IFACES: ifindex -> link header length (14 Ethernet, 0 L3).
//   DECAP:  (outer src = home agent, outer dst = our care-of address,
//            inner dst = our home address) -> counters. The member side.
//   ENCAP:  home address -> (home agent address, care-of address, MTU,
//            counters). The home agent side.
//
// Build: mip6-anycast/bpf/build.sh (clang -target bpf); the object is
// committed next to this file and embedded by the engine.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>

#define SEC(n) __attribute__((section(n), used))

#define ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#define ETH_P_IPV6_BE 0xdd86 /* htons(0x86dd) on a little-endian host */
#define NH_TCP 6
#define NH_UDP 17
#define NH_ICMPV6 58
#define NH_IPV6 41
#define TUNNEL_HOP_LIMIT 64

struct bpf_map_def {
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
};

static void *(*map_lookup)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*load_bytes)(const struct __sk_buff *skb, __u32 off, void *to,
			  __u32 len) = (void *)BPF_FUNC_skb_load_bytes;
static long (*store_bytes)(struct __sk_buff *skb, __u32 off, const void *from,
			   __u32 len, __u64 flags) = (void *)BPF_FUNC_skb_store_bytes;
static long (*adjust_room)(struct __sk_buff *skb, __s32 len_diff, __u32 mode,
			   __u64 flags) = (void *)BPF_FUNC_skb_adjust_room;

struct decap_key {
	__u8 outer_src[16];
	__u8 outer_dst[16];
	__u8 inner_dst[16];
};

struct counters {
	__u64 packets;
	__u64 bytes;
};

struct encap_val {
	__u8 local[16];
	__u8 remote[16];
	__u32 mtu;
	__u32 pad;
	__u64 packets;
	__u64 bytes;
};

struct bpf_map_def SEC("maps") IFACES = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = 4,
	.value_size = 4,
	.max_entries = 256,
};

struct bpf_map_def SEC("maps") DECAP = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(struct decap_key),
	.value_size = sizeof(struct counters),
	.max_entries = 65536,
};

struct bpf_map_def SEC("maps") ENCAP = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = 16,
	.value_size = sizeof(struct encap_val),
	.max_entries = 65536,
};

static __always_inline int plain(__u8 nh)
{
	return nh == NH_TCP || nh == NH_UDP || nh == NH_ICMPV6;
}

static __always_inline __u64 segments(struct __sk_buff *skb)
{
	return skb->gso_segs > 1 ? skb->gso_segs : 1;
}

static __always_inline int link_header(struct __sk_buff *skb, __u32 *off)
{
	__u32 ifindex = skb->ifindex;
	__u32 *l2;

	if (skb->protocol != ETH_P_IPV6_BE)
		return -1;
	l2 = map_lookup(&IFACES, &ifindex);
	if (!l2 || *l2 > 64)
		return -1;
	*off = *l2;
	return 0;
}

/* Member side: strip the home agent's outer header (RFC 6275 11.3.3). */
SEC("classifier/tunnel_in")
int tunnel_in(struct __sk_buff *skb)
{
	struct decap_key k;
	struct counters *c;
	__u8 h[80];
	__u32 off;

	if (link_header(skb, &off) || load_bytes(skb, off, h, sizeof(h)))
		return TC_ACT_UNSPEC;
	if ((h[0] >> 4) != 6 || h[6] != NH_IPV6 || (h[40] >> 4) != 6 || !plain(h[46]))
		return TC_ACT_UNSPEC;
	/* The outer payload is exactly the inner packet. */
	if (((__u32)h[4] << 8 | h[5]) != 40 + ((__u32)h[44] << 8 | h[45]))
		return TC_ACT_UNSPEC;
	__builtin_memcpy(k.outer_src, &h[8], 16);
	__builtin_memcpy(k.outer_dst, &h[24], 16);
	__builtin_memcpy(k.inner_dst, &h[64], 16);
	c = map_lookup(&DECAP, &k);
	if (!c)
		return TC_ACT_UNSPEC;
	if (adjust_room(skb, -40, BPF_ADJ_ROOM_MAC,
			BPF_F_ADJ_ROOM_FIXED_GSO | ADJ_ROOM_DECAP_L3_IPV6))
		return TC_ACT_UNSPEC;
	__sync_fetch_and_add(&c->packets, segments(skb));
	__sync_fetch_and_add(&c->bytes, skb->len);
	return TC_ACT_OK;
}

/* Home agent side: tunnel a packet for a registered home address to its
 * care-of address (RFC 6275 10.4.1); the kernel then forwards it. */
SEC("classifier/tunnel_out")
int tunnel_out(struct __sk_buff *skb)
{
	struct encap_val *e;
	__u8 h[40], o[40], key[16], hl;
	__u32 off, inner, seg;

	if (link_header(skb, &off) || load_bytes(skb, off, h, sizeof(h)))
		return TC_ACT_UNSPEC;
	if ((h[0] >> 4) != 6 || !plain(h[6]) || h[7] <= 1)
		return TC_ACT_UNSPEC;
	__builtin_memcpy(key, &h[24], 16);
	e = map_lookup(&ENCAP, key);
	if (!e)
		return TC_ACT_UNSPEC;
	inner = 40 + ((__u32)h[4] << 8 | h[5]);
	if (inner + off != skb->len)
		return TC_ACT_UNSPEC;
	if (skb->gso_size) {
		__u8 doff;

		if (h[6] != NH_TCP || load_bytes(skb, off + 40 + 12, &doff, 1))
			return TC_ACT_UNSPEC;
		seg = 40 + 40 + (doff >> 4) * 4 + skb->gso_size;
	} else {
		seg = inner + 40;
	}
	/* Too big once tunnelled: the engine's route (MTU minus 40) makes
	 * the kernel send the Packet Too Big. */
	if (seg > e->mtu)
		return TC_ACT_UNSPEC;
	if (adjust_room(skb, 40, BPF_ADJ_ROOM_MAC,
			BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV6))
		return TC_ACT_UNSPEC;
	/* Outer header: traffic class copied, flow label 0 (RFC 2473 6.5). */
	o[0] = 0x60 | (h[0] & 0x0f);
	o[1] = h[1] & 0xf0;
	o[2] = 0;
	o[3] = 0;
	o[4] = inner >> 8;
	o[5] = inner & 0xff;
	o[6] = NH_IPV6;
	o[7] = TUNNEL_HOP_LIMIT;
	__builtin_memcpy(&o[8], e->local, 16);
	__builtin_memcpy(&o[24], e->remote, 16);
	/* The inner packet was forwarded by us (RFC 8200 3). */
	hl = h[7] - 1;
	if (store_bytes(skb, off, o, sizeof(o), 0) ||
	    store_bytes(skb, off + 40 + 7, &hl, 1, 0))
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&e->packets, segments(skb));
	__sync_fetch_and_add(&e->bytes, skb->len);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual MIT/GPL";
