#!/usr/bin/python3
"""A second capture for the inspector (`mip6-inspect`): valid and
deliberately corrupted Binding Updates and Acknowledgements after a Return
Routability exchange, built with scapy 2.5 and the reference crypto of
mip6ref.py (no code of this project).

    /usr/bin/python3 testdata/gen_inspect_scapy.py [OUTDIR]

Writes (to OUTDIR, default: next to this file):

* inspect_scapy.pcap     classic pcap, LINKTYPE_RAW (101), microseconds
* inspect_scapy.pcapng   the same packets in pcapng: one interface with
                         Linux cooked framing (LINKTYPE_LINUX_SLL, 113) and
                         if_tsresol 9 (nanosecond timestamps), little endian
* inspect_scapy_expected.json  {"captures": [...], "packets": [{index, what,
                         mh_type, checksum_ok, authenticator_ok (BU, and BA
                         with Binding Authorization Data), malformed}]}

Deterministic (fixed keys, nonces, timestamps): regenerating leaves the files
byte-identical, which tests/inspect_scapy.rs checks when scapy is present.

Rules the expectations encode (RFC 6275): tokens count only if their HoT
(CN -> HoA) / CoT (CN -> CoA) appeared earlier with a good checksum and the
same addresses and nonce index as the BU names; the BU's care-of address is
its Alternate Care-of Address option, else its IPv6 source (6.2.5, 6.2.7); a
de-registration (lifetime 0) uses Kbm = SHA1(home keygen token) (5.2.5) and
the home address in place of the care-of address (6.2.7); a BA's
authenticator uses the Kbm of the BU with the same correspondent, home
address and sequence number. Each expectation is re-derived below by an
independent checker that only sees the bytes.
"""

import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gen_fixtures import (  # noqa: E402  (builders of the main fixtures)
    ALT_COA, CN, COA, HA, HOA, HOME_COOKIE, CAREOF_COOKIE, RR_INPUTS,
    ba, bind_auth, bu, dst_hao, ip, nonce_indices, recompute_mh_checksum, rh2,
)
from mip6ref import (  # noqa: E402
    Malformed, a16, bu_authenticator, inet_checksum, kbm_of, keygen_token, parse_packet,
)
from scapy.compat import raw  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import MIP6MH_CoT, MIP6MH_CoTI, MIP6MH_HoT, MIP6MH_HoTI, MIP6OptAltCoA  # noqa: E402

TS_BASE = 1700000100
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113

V = RR_INPUTS[0]
KCN = V["kcn"]
HNI, CNI = V["home_nonce_index"], V["care_of_nonce_index"]  # 0x0101, 0x0202
CNI_ALT = 0x0303  # CoT to the alternate care-of address
CNI_2 = 0x0204    # a second CoT to the care-of address (another nonce)
NONCE_ALT = bytes.fromhex("d1d2d3d4d5d6d7d8")
NONCE_2 = bytes.fromhex("e1e2e3e4e5e6e7e8")

HKT = keygen_token(KCN, HOA, V["home_nonce"], 0)
CKT = keygen_token(KCN, COA, V["care_of_nonce"], 1)
CKT_ALT = keygen_token(KCN, ALT_COA, NONCE_ALT, 1)
CKT_2 = keygen_token(KCN, COA, NONCE_2, 1)
KBM = kbm_of(HKT, CKT)
KBM_ALT = kbm_of(HKT, CKT_ALT)
KBM_DEREG = kbm_of(HKT)

BU_MH_OFF = 64  # IPv6 (40) + Destination Options with HAO (24)
BA_MH_OFF = 64  # IPv6 (40) + RH2 (24)


def signed_mh(mk, key, auth_addr, cn):
    """Builds an MH whose last option is Binding Authorization Data with the
    RFC 6275 6.2.7 authenticator (checksum zero, authenticator excluded)."""
    probe = raw(mk(bind_auth(b"\x00" * 12)))
    assert probe[-14:-12] == b"\x05\x0c", "BAD must be last, no trailing padding"
    return mk(bind_auth(bu_authenticator(key, auth_addr, cn, probe[:-12])))


def bu_pkt(seq, life, opts, key, auth_addr, src=COA, flags="A"):
    def mk(bad):
        return bu(seq, flags, life, list(opts) + [bad], cksum=0)
    mh = signed_mh(mk, key, auth_addr, CN)
    mh.cksum = None
    return bytearray(raw(ip(src, CN, 60) / dst_hao(135) / mh))


def ba_pkt(seq, key, auth_addr, dst=COA):
    def mk(bad):
        return ba(0, seq, 105, options=[bad], cksum=0)
    mh = signed_mh(mk, key, auth_addr, CN)
    mh.cksum = None
    return bytearray(raw(ip(CN, dst, 43) / rh2(135) / mh))


def build():
    pkts = []  # (bytes, orig_len, expectation)

    def add(p, what, mh_type, checksum_ok, auth="absent", malformed=False, orig=None):
        e = {"what": what, "mh_type": mh_type, "checksum_ok": checksum_ok}
        if auth != "absent":
            e["authenticator_ok"] = auth
        e["malformed"] = malformed
        pkts.append((bytes(p), orig if orig is not None else len(p), e))

    valid = bu_pkt(0x2000, 105, [nonce_indices(HNI, CNI)], KBM, COA)
    add(valid, "BU valid but sent before the HoT/CoT it needs", 5, True, None)
    add(raw(ip(COA, HA, 41) / ip(HOA, CN, 135) / MIP6MH_HoTI(res=0, cookie=HOME_COOKIE)),
        "HoTI reverse-tunnelled", 1, True)
    add(raw(ip(COA, CN, 135) / MIP6MH_CoTI(res=0, cookie=CAREOF_COOKIE)), "CoTI", 2, True)
    add(raw(ip(HA, COA, 41) / ip(CN, HOA, 135, hlim=63) /
            MIP6MH_HoT(res=0, index=HNI, cookie=HOME_COOKIE, token=HKT)),
        "HoT tunnelled HA->CoA, home nonce index 0x0101", 3, True)
    add(raw(ip(CN, COA, 135) / MIP6MH_CoT(res=0, index=CNI, cookie=CAREOF_COOKIE, token=CKT)),
        "CoT to CoA, care-of nonce index 0x0202", 4, True)
    add(raw(ip(CN, ALT_COA, 135) / MIP6MH_CoT(res=0, index=CNI_ALT, cookie=CAREOF_COOKIE, token=CKT_ALT)),
        "CoT to the alternate CoA, care-of nonce index 0x0303", 4, True)
    add(raw(ip(CN, COA, 135) / MIP6MH_CoT(res=0, index=CNI_2, cookie=CAREOF_COOKIE, token=CKT_2)),
        "second CoT to CoA, care-of nonce index 0x0204", 4, True)

    add(bu_pkt(0x2001, 105, [nonce_indices(HNI, CNI)], KBM, COA), "BU valid", 5, True, True)

    p = bu_pkt(0x2002, 105, [nonce_indices(HNI, CNI)], KBM, COA)
    p[-7] ^= 0x40  # an authenticator octet; checksum fixed afterwards
    add(recompute_mh_checksum(p, BU_MH_OFF, HOA, CN), "BU corrupted authenticator octet", 5, True, False)

    # The same valid BU sent from another source address (the HAO keeps the
    # MH checksum valid: its pseudo-header source is the home address).
    p = bu_pkt(0x2003, 105, [nonce_indices(HNI, CNI)], KBM, COA, src=ALT_COA)
    add(p, "BU from a wrong CoA (source ALT_COA), no CoT for it with index 0x0202", 5, True, None)
    p = bu_pkt(0x2004, 105, [nonce_indices(HNI, CNI_ALT)], KBM, COA, src=ALT_COA)
    add(p, "BU from a wrong CoA (source ALT_COA, whose CoT 0x0303 is known), authenticator for CoA",
        5, True, False)

    p = bu_pkt(0x2005, 105, [nonce_indices(HNI, CNI_2)], KBM, COA)
    add(p, "BU naming the wrong care-of nonce index 0x0204 (authenticator from 0x0202's token)",
        5, True, False)
    p = bu_pkt(0x2006, 105, [nonce_indices(0x0999, CNI)], KBM, COA)
    add(p, "BU naming a home nonce index 0x0999 never seen", 5, True, None)

    p = bu_pkt(0x2007, 105, [nonce_indices(HNI, CNI)], KBM, COA)
    p[BU_MH_OFF + 5] ^= 0x01
    add(p, "BU corrupted checksum (authenticator valid)", 5, False, True)

    p = bu_pkt(0x2008, 105, [MIP6OptAltCoA(acoa=ALT_COA), nonce_indices(HNI, CNI_ALT)], KBM_ALT, ALT_COA)
    add(p, "BU with Alternate CoA option (authenticated with the alternate CoA)", 5, True, True)

    add(ba_pkt(0x2001, KBM, COA), "BA for BU 0x2001 with valid Binding Authorization Data", 6, True, True)
    p = ba_pkt(0x2001, KBM, COA)
    p[-1] ^= 0x01
    add(recompute_mh_checksum(p, BA_MH_OFF, CN, HOA), "BA corrupted authenticator", 6, True, False)
    add(ba_pkt(0x3000, KBM, COA), "BA for a sequence no checkable BU had", 6, True, None)

    p = bu_pkt(0x2009, 0, [nonce_indices(HNI, 0)], KBM_DEREG, HOA)
    add(p, "BU de-registration (lifetime 0): Kbm = SHA1(home token), home address authenticated",
        5, True, True)

    tcp = raw(ip(COA, CN, 60) / dst_hao(6) / TCP(sport=40001, dport=80, flags="S", seq=1))
    add(tcp, "TCP SYN MN->CN with HAO (checksum with the home address)", None, True)
    p = bytearray(raw(ip(CN, COA, 43) / rh2(6) / TCP(sport=80, dport=40001, flags="SA", seq=7, ack=2)))
    seg = bytes(p[64:])
    seg = seg[:16] + b"\x00\x00" + seg[18:]
    p[64 + 16:64 + 18] = struct.pack("!H", inet_checksum(a16(CN), a16(COA), 6, seg))
    add(p, "TCP SYN-ACK CN->MN with RH2 whose checksum used the CoA (wrong)", None, False)
    add(raw(ip(COA, CN, 60) / dst_hao(17) / UDP(sport=5353, dport=53) / b"query"),
        "UDP MN->CN with HAO", None, True)

    full = raw(ip(CN, COA, 135) / MIP6MH_CoT(res=0, index=0x0205, cookie=CAREOF_COOKIE, token=CKT_2))
    add(full[:60], "CoT truncated to 60 octets (caplen < len)", 4, False, malformed=True, orig=len(full))

    p = bytearray(bu_pkt(0x200a, 105, [nonce_indices(HNI, CNI)], KBM, COA))
    p += bytes([4, 4, 1, 1, 2, 2, 0, 0])  # a Nonce Indices option after the authenticator
    p[4:6] = struct.pack("!H", len(p) - 40)
    p[BU_MH_OFF + 1] += 1
    add(recompute_mh_checksum(p, BU_MH_OFF, HOA, CN),
        "BU with an option after Binding Authorization Data (must be last)", 5, True, None, True)

    add(raw(IP(src="192.0.2.1", dst="198.51.100.2") / UDP(sport=1, dport=2)),
        "IPv4 packet (not IPv6, not malformed)", None, None)

    p = bu_pkt(0x200b, 0, [nonce_indices(HNI, 0)], KBM_DEREG, COA)
    add(p, "BU de-registration (lifetime 0) from the CoA, authenticated over the CoA instead of "
        "the home address (RFC 6275 6.2.7)", 5, True, False)
    add(ba_pkt(0x2009, KBM_DEREG, HOA), "BA for the de-registration 0x2009 (home address "
        "authenticated)", 6, True, True)
    return pkts


def check(pkts):
    """Re-derives every expectation from the bytes alone."""
    hot, cot, bus = {}, {}, {}
    for i, (p, orig, e) in enumerate(pkts):
        if p[0] >> 4 == 4:
            assert e["checksum_ok"] is None and not e["malformed"], i
            continue
        if orig > len(p):
            assert e["malformed"], i
            continue
        if p[6] == 60 and p[40] == 17:  # UDP after a HAO: the reference parser has no UDP
            seg = p[64:]
            ok = inet_checksum(a16(HOA), a16(CN), 17, seg[:6] + b"\0\0" + seg[8:]) == \
                struct.unpack("!H", seg[6:8])[0]
            assert ok == e["checksum_ok"], i
            continue
        try:
            x = parse_packet(p)
        except Malformed:
            assert e["malformed"], i
            continue
        if e["malformed"]:
            continue
        if "mh" not in x:
            assert x["upper"]["checksum_ok"] == e["checksum_ok"], i
            continue
        mh, f = x["mh"], x["mh"]["fields"]
        assert mh["type"] == e["mh_type"] and mh["checksum_ok"] == e["checksum_ok"], i
        src, dst = x["ipv6"]["src"], x["ipv6"]["dst"]
        ext = x["ext"]
        hao = [o["home_address"] for h in ext if h["kind"] == "dstopts" for o in h["options"]
               if o.get("type") == 201]
        rh = [h["home_address"] for h in ext if h["kind"] == "rh2"]
        inner = [h for h in ext if h["kind"] == "ip6ip6"]
        if inner:
            src, dst = inner[-1]["inner_src"], inner[-1]["inner_dst"]
        if mh["type"] == 3 and mh["checksum_ok"]:
            hot[(src, dst, f["home_nonce_index"])] = bytes.fromhex(f["home_keygen_token"])
        if mh["type"] == 4 and mh["checksum_ok"]:
            cot[(src, dst, f["care_of_nonce_index"])] = bytes.fromhex(f["care_of_keygen_token"])
        raw_mh = p[BU_MH_OFF:]
        data = raw_mh[:4] + b"\x00\x00" + raw_mh[6:-12]
        if mh["type"] == 5:
            hoa = hao[0] if hao else src
            acoa = [o["alternate_coa"] for o in mh["options"] if o["type"] == 3]
            coa = acoa[0] if acoa else src
            ni = [o for o in mh["options"] if o["type"] == 4][0]
            dereg = f["lifetime_units"] == 0 or coa == hoa
            h = hot.get((dst, hoa, ni["home_nonce_index"]))
            c = None if dereg else cot.get((dst, coa, ni["care_of_nonce_index"]))
            if h is None or (c is None and not dereg):
                assert e["authenticator_ok"] is None, i
                continue
            key = kbm_of(h, c)
            addr = hoa if dereg else coa
            bus[(dst, hoa, f["sequence"])] = (key, addr)
            assert (bu_authenticator(key, addr, dst, data) == raw_mh[-12:]) == e["authenticator_ok"], i
        if mh["type"] == 6:
            b = bus.get((src, rh[0] if rh else dst, f["sequence"]))
            if b is None:
                assert e["authenticator_ok"] is None, i
                continue
            assert (bu_authenticator(b[0], b[1], src, data) == raw_mh[-12:]) == e["authenticator_ok"], i


def write_pcap(path, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for i, (data, orig, _) in enumerate(pkts):
            f.write(struct.pack("<IIII", TS_BASE, i * 1000, len(data), orig))
            f.write(data)


def block(btype, body):
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def sll(data):
    """Linux cooked header: packet type 4 (outgoing), ARPHRD 1, 6-octet
    address, protocol."""
    proto = 0x86DD if data[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHH8sH", 4, 1, 6, bytes.fromhex("00005e0053010000"), proto) + data


def write_pcapng(path, pkts):
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        # if_tsresol (9) = 9: nanoseconds; opt_endofopt.
        opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
        f.write(block(1, struct.pack("<HHI", LINKTYPE_LINUX_SLL, 0, 65535) + opts))
        for i, (data, orig, _) in enumerate(pkts):
            ts = (TS_BASE * 1_000_000_000) + i * 1_000_000
            d = sll(data)
            body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(d), orig + 16) + d
            f.write(block(6, body))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    pkts = build()
    check(pkts)
    write_pcap(os.path.join(out, "inspect_scapy.pcap"), pkts)
    write_pcapng(os.path.join(out, "inspect_scapy.pcapng"), pkts)
    with open(os.path.join(out, "inspect_scapy_expected.json"), "w") as f:
        json.dump({"captures": ["inspect_scapy.pcap", "inspect_scapy.pcapng"],
                   "timestamp_base": TS_BASE,
                   "packets": [dict(index=i, **e) for i, (_, _, e) in enumerate(pkts)]}, f, indent=1)
        f.write("\n")
    print("%d packets" % len(pkts))


if __name__ == "__main__":
    main()
