/* NeuralEmu middlebox classifier: a tc clsact (cls_bpf, direct-action) program.
 *
 * Attached on the ingress of the middlebox's UE-side interface (uplink: the key
 * is the source address) and of its core-side interface (downlink: the key is
 * the destination address). Each packet is classified to a (UE, direction)
 * holding queue through the hash map `ue_by_addr` (IPv4 is stored as an
 * IPv4-mapped IPv6 address, RFC 4291 2.5.5.2), which user space updates at run
 * time. A classified packet gets skb->mark = MARK_BASE | queue id, which an
 * iptables `-m mark ... -j NFQUEUE` rule turns into the holding queue.
 *
 * Arrivals are counted per queue (bytes, packets) in a per-CPU array. Traffic
 * that matches no UE follows `config[0].unclassified_drop`: pass unshaped
 * (counted) or drop (counted). Nothing is ever dropped silently.
 *
 * Built by bcc with -DFN_UL=<name> -DFN_DL=<name> -DMAX_QUEUES=<n>
 * -DMARK_BASE=<u32> so that every testbed's programs carry its prefix.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>
#include <uapi/linux/icmpv6.h>

#ifndef MAX_QUEUES
#define MAX_QUEUES 512
#endif
#ifndef MARK_BASE
#define MARK_BASE 0x4e450000
#endif
#ifndef FN_UL
#define FN_UL ne_cls_ul
#endif
#ifndef FN_DL
#define FN_DL ne_cls_dl
#endif

#define DIR_UL 1
#define DIR_DL 0

/* Indices of the `other` counters (keep in sync with classifier.py). */
#define OTHER_UNCLASSIFIED_PASS 0
#define OTHER_UNCLASSIFIED_DROP 1
#define OTHER_NON_IP 2
#define OTHER_MALFORMED_PASS 3
#define OTHER_MALFORMED_DROP 4
#define OTHER_CONTROL 5   /* IPv6 neighbour discovery: always passes */
#define OTHER_COUNT 8

struct addr_key {
    u8 addr[16];          /* IPv6, or IPv4-mapped ::ffff:a.b.c.d */
};

struct ue_entry {
    u32 ue_id;
    u32 queue_dl;         /* queue id of the UE's downlink */
    u32 queue_ul;         /* queue id of the UE's uplink */
    u32 flags;
};

struct counter {
    u64 bytes;
    u64 packets;
};

struct config {
    u32 unclassified_drop; /* 0: pass unshaped, 1: drop */
    u32 enabled;           /* 0: mark nothing (pass everything, counted as unclassified) */
};

BPF_HASH(ue_by_addr, struct addr_key, struct ue_entry, 4096);
BPF_PERCPU_ARRAY(arrivals, struct counter, MAX_QUEUES);
BPF_PERCPU_ARRAY(other, struct counter, OTHER_COUNT);
BPF_ARRAY(config, struct config, 1);

static __always_inline int count_other(u32 idx, u32 len)
{
    struct counter *c = other.lookup(&idx);
    if (c) {
        c->bytes += len;
        c->packets += 1;
    }
    return 0;
}

/* Apply the unclassified-traffic policy; every packet lands in exactly one counter. */
static __always_inline int unclassified(struct config *cfg, u32 len)
{
    if (cfg && cfg->unclassified_drop) {
        count_other(OTHER_UNCLASSIFIED_DROP, len);
        return TC_ACT_SHOT;
    }
    count_other(OTHER_UNCLASSIFIED_PASS, len);
    return TC_ACT_OK;
}

static __always_inline int malformed(struct config *cfg, u32 len)
{
    if (cfg && cfg->unclassified_drop) {
        count_other(OTHER_MALFORMED_DROP, len);
        return TC_ACT_SHOT;
    }
    count_other(OTHER_MALFORMED_PASS, len);
    return TC_ACT_OK;
}

static __always_inline int classify(struct __sk_buff *skb, int dir)
{
    u32 zero = 0;
    struct config *cfg = config.lookup(&zero);
    u32 off = ETH_HLEN;
    u16 proto = 0;
    struct addr_key key = {};

    if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0) {
        return malformed(cfg, skb->len);   /* not even an Ethernet header */
    }
    /* Up to two VLAN tags in the packet data (802.1Q, 802.1ad). A tag that the
     * driver moved into skb->vlan_tci is already gone from the data. */
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (proto == htons(ETH_P_8021Q) || proto == htons(ETH_P_8021AD)) {
            if (bpf_skb_load_bytes(skb, off + 2, &proto, sizeof(proto)) < 0) {
                return malformed(cfg, skb->len);
            }
            off += 4;
        }
    }

    if (proto == htons(ETH_P_IP)) {
        struct iphdr iph;
        if (bpf_skb_load_bytes(skb, off, &iph, sizeof(iph)) < 0 || iph.version != 4 || iph.ihl < 5) {
            return malformed(cfg, skb->len);
        }
        key.addr[10] = 0xff;
        key.addr[11] = 0xff;
        __builtin_memcpy(&key.addr[12], dir == DIR_UL ? (void *)&iph.saddr : (void *)&iph.daddr, 4);
    } else if (proto == htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6h;
        if (bpf_skb_load_bytes(skb, off, &ip6h, sizeof(ip6h)) < 0 || ip6h.version != 6) {
            return malformed(cfg, skb->len);
        }
        /* Neighbour discovery (RFC 4861) is link control, never shaped or dropped. */
        if (ip6h.nexthdr == IPPROTO_ICMPV6) {
            u8 type = 0;
            if (bpf_skb_load_bytes(skb, off + sizeof(ip6h), &type, 1) == 0 &&
                type >= 133 && type <= 137) {
                count_other(OTHER_CONTROL, skb->len);
                return TC_ACT_OK;
            }
        }
        __builtin_memcpy(key.addr, dir == DIR_UL ? (void *)&ip6h.saddr : (void *)&ip6h.daddr, 16);
    } else {
        /* ARP, LLDP, ...: link control, passes unshaped. */
        count_other(OTHER_NON_IP, skb->len);
        return TC_ACT_OK;
    }

    if (!cfg || !cfg->enabled)
        return unclassified(cfg, skb->len);
    struct ue_entry *ue = ue_by_addr.lookup(&key);
    if (!ue)
        return unclassified(cfg, skb->len);

    u32 q = dir == DIR_UL ? ue->queue_ul : ue->queue_dl;
    if (q >= MAX_QUEUES)
        return unclassified(cfg, skb->len);
    struct counter *c = arrivals.lookup(&q);
    if (c) {
        /* Count the network-layer length (what NFQUEUE reports and the engine
         * carries). A GSO packet counts its full length here; the kernel
         * segments it before it reaches the holding queue. */
        u32 l3 = skb->len > off ? skb->len - off : 0;
        c->bytes += l3;
        c->packets += skb->gso_segs > 1 ? skb->gso_segs : 1;
    }
    skb->mark = MARK_BASE | q;
    return TC_ACT_OK;
}

int FN_UL(struct __sk_buff *skb) { return classify(skb, DIR_UL); }
int FN_DL(struct __sk_buff *skb) { return classify(skb, DIR_DL); }
