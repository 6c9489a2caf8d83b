#!/usr/bin/python3
"""Independent RFC 6275 / RFC 4285 test fixtures for mip6-anycast.

Packets are built with scapy's Mobile IPv6 layers (Debian python3-scapy 2.5)
and the Return Routability / RFC 4285 crypto with Python's hmac/hashlib; no
code of this project is used.  Every packet is then re-parsed by the
RFC-text reference parser in mip6ref.py (`parse_packet`), which checks
lengths, alignment, checksums and authenticators independently of scapy;
where scapy's output deviates from the RFC the generator fixes the bytes (see
README.md).  check_external.py then cross-checks the outputs with tshark and
openssl.

Deterministic: fixed keys, nonces, cookies, addresses, timestamps; no
randomness, no clock.  Run with /usr/bin/python3 from anywhere:

    /usr/bin/python3 testdata/gen_fixtures.py

Outputs (next to this file): mip6_fixtures.json, mip6_fixtures.pcap,
mip6_fixtures_eth.pcap, rr_vectors.json, inspect_capture.pcap,
inspect_expected.json.
"""

import json
import os
import struct
import sys

from mip6ref import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    Malformed,
    a16,
    bu_authenticator,
    inet_checksum,
    is_canonical,
    kbm_of,
    keygen_token,
    pad_bytes,
    parse_ipv6,
    parse_packet,
    rfc4285_authenticator,
    strip_private,
    write_pcap,
)
from scapy.compat import raw
from scapy.layers.inet import TCP
from scapy.layers.inet6 import (
    HAO,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptMsgAuth,
    MIP6OptNonceIndices,
    MIP6OptReplayProtection,
    Pad1,
    PadN,
)

OUT = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# Fixed identities (documentation prefix 2001:db8::/32 only, RFC 3849)
# --------------------------------------------------------------------------
HOA = "2001:db8:1::100"      # mobile node home address
HA = "2001:db8:1::1"         # home agent
COA = "2001:db8:2::100"      # care-of address
CN = "2001:db8:3::10"        # correspondent node
ALT_COA = "2001:db8:4::100"  # alternate care-of address
HOA2 = "2001:db8:1::200"     # second mobile node (RR vector 2)
COA2 = "2001:db8:5::200"
CN2 = "2001:db8:6::20"

MAC_A = bytes.fromhex("00005e005301")  # RFC 7042 documentation MACs
MAC_B = bytes.fromhex("00005e005302")

PCAP_TS = 1700000000  # fixed capture timestamp base (seconds)


# RR vector 0 is the one used by the packet fixtures and the inspect capture.
RR_INPUTS = [
    dict(name="rr_basic", kcn=bytes.fromhex("00112233445566778899aabbccddeeff01234567"),
         home_nonce=bytes.fromhex("a1a2a3a4a5a6a7a8"), care_of_nonce=bytes.fromhex("c1c2c3c4c5c6c7c8"),
         home_nonce_index=0x0101, care_of_nonce_index=0x0202,
         hoa=HOA, coa=COA, cn=CN, seq=0x1234, flags="A", lifetime_units=105),
    dict(name="rr_no_ack_k_flag", kcn=bytes.fromhex("ffeeddccbbaa99887766554433221100fedcba98"),
         home_nonce=bytes.fromhex("0000000000000001"), care_of_nonce=bytes.fromhex("fffffffffffffffe"),
         home_nonce_index=0x0000, care_of_nonce_index=0xffff,
         hoa=HOA, coa=COA, cn=CN, seq=0xfffe, flags="K", lifetime_units=1),
    dict(name="rr_other_nodes", kcn=bytes.fromhex("5a" * 20),
         home_nonce=bytes.fromhex("0123456789abcdef"), care_of_nonce=bytes.fromhex("fedcba9876543210"),
         home_nonce_index=7, care_of_nonce_index=9,
         hoa=HOA2, coa=COA2, cn=CN2, seq=1, flags="AK", lifetime_units=0x00ff),
]

# RFC 4285 MN-HA security association used by the home registration fixtures
MNHA_KEY = bytes.fromhex("4d4e2d48412d6b65792d666f722d7465737473")  # b"MN-HA-key-for-tests"
MNHA_SPI = 0x00000100
MESG_ID_TS = 0xE8A1C2B300000000  # fixed 64-bit timestamp (NTP-style seconds<<32)


# --------------------------------------------------------------------------
# scapy builders
# --------------------------------------------------------------------------
def nonce_indices(h, c):
    # scapy 2.5 quirk: MIP6OptNonceIndices defaults to olen=16; RFC 6275
    # 6.2.6 says 4.
    return MIP6OptNonceIndices(olen=4, hni=h, coni=c)


def bind_auth(auth_bytes):
    # scapy 2.5 quirk: MIP6OptBindingAuthData defaults to olen=16; RFC 6275
    # 6.2.7 says 12.  The authenticator is a 96-bit integer field.
    return MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(auth_bytes, "big"))


def bu(seq, flags="", life=0, options=(), cksum=None, autopad=1):
    return MIP6MH_BU(seq=seq, flags=flags, res=0, reserved=0, mhtime=life,
                     options=list(options), cksum=cksum, autopad=autopad)


def ba(status, seq, life, k=False, options=(), cksum=None, res2=0):
    return MIP6MH_BA(status=status, flags=("K" if k else 0), res2=res2, seq=seq, mhtime=life,
                     options=list(options), cksum=cksum)


def dst_hao(nh, hoa=HOA):
    return IPv6ExtHdrDestOpt(nh=nh, options=[HAO(hoa=hoa)])


def rh2(nh, hoa=HOA):
    return IPv6ExtHdrRouting(nh=nh, type=2, segleft=1, addresses=[hoa])


def ip(src, dst, nh, hlim=64):
    return IPv6(src=src, dst=dst, nh=nh, hlim=hlim)


def bu_with_bad(ipv6_and_ext, seq, flags, life, pre_opts, kbm, coa, cn):
    """Build a BU whose last option is a Binding Authorization Data option
    carrying a valid RFC 6275 6.2.7 authenticator.  Returns (bytes, mh_data,
    authenticator)."""
    opts = list(pre_opts) + [bind_auth(b"\x00" * 12)]
    probe = raw(bu(seq, flags, life, opts, cksum=0))
    assert probe[-14:-12] == b"\x05\x0c", "BAD must be the last option, no trailing padding"
    mh_data = probe[:-12]
    auth = bu_authenticator(kbm, coa, cn, mh_data)
    opts[-1] = bind_auth(auth)
    pkt = raw(ipv6_and_ext / bu(seq, flags, life, opts))
    return pkt, mh_data, auth


def rr_derive(v):
    hkt = keygen_token(v["kcn"], v["hoa"], v["home_nonce"], 0)
    ckt = keygen_token(v["kcn"], v["coa"], v["care_of_nonce"], 1)
    return hkt, ckt, kbm_of(hkt, ckt)


HOME_COOKIE = bytes.fromhex("1111222233334444")
CAREOF_COOKIE = bytes.fromhex("5555666677778888")


def mnha_bu(seq, life):
    """Home registration BU (A|H) to the HA with RFC 4285 Mesg-ID + MN-HA
    auth.  Returns (packet bytes, mh_data, auth).  Built as raw option bytes
    per the RFC 4285 text, cross-checked against scapy's MIP6OptMsgAuth /
    MIP6OptReplayProtection."""
    # BU fixed part ends at 12.  Mesg-ID (8n+2): PadN(4 data) 12..18, option
    # 18..28.  MN-HA auth (4n+1): Pad1 at 28, option 29..48 (2+1+4+12 octets).
    # 48 is a multiple of 8: Header Len 5, no trailing padding.
    fixed = struct.pack("!BBBBHHHH", 59, 5, 5, 0, 0, seq, 0xC000, life)
    mesg = bytes([10, 8]) + struct.pack("!Q", MESG_ID_TS)
    auth_head = bytes([9, 17, 1]) + struct.pack("!I", MNHA_SPI)
    mh_upto_spi = fixed + pad_bytes(6) + mesg + b"\x00" + auth_head
    assert len(mh_upto_spi) == 36
    auth = rfc4285_authenticator(MNHA_KEY, COA, HOA, mh_upto_spi)
    mh = bytearray(mh_upto_spi + auth)
    assert len(mh) == 48
    # scapy cross-check (its RFC 4285 classes, autopad on)
    sc = raw(MIP6MH_BU(seq=seq, flags="AH", mhtime=life, cksum=0, res=0, reserved=0, options=[
        MIP6OptReplayProtection(timestamp=MESG_ID_TS),
        MIP6OptMsgAuth(subtype=1, mspi=MNHA_SPI, authdata=auth)]))
    assert sc == bytes(mh), "scapy RFC 4285 options disagree with hand-built bytes"
    c = inet_checksum(a16(HOA), a16(HA), 135, bytes(mh))
    mh[4:6] = struct.pack("!H", c)
    pkt = raw(ip(COA, HA, 60) / IPv6ExtHdrDestOpt(nh=135, options=[HAO(hoa=HOA)])) + bytes(mh)
    pkt = bytearray(pkt)
    pkt[4:6] = struct.pack("!H", len(pkt) - 40)
    return bytes(pkt), mh_upto_spi, auth


def mnha_ba(seq, life, status=0):
    """HA's BA to a home registration, RH2 to the HoA, Mesg-ID + MN-HA auth."""
    fixed = struct.pack("!BBBBHBBHH", 59, 5, 6, 0, 0, status, 0, seq, life)
    mesg = bytes([10, 8]) + struct.pack("!Q", MESG_ID_TS + 1)
    auth_head = bytes([9, 17, 1]) + struct.pack("!I", MNHA_SPI)
    mh_upto_spi = fixed + pad_bytes(6) + mesg + b"\x00" + auth_head
    auth = rfc4285_authenticator(MNHA_KEY, COA, HOA, mh_upto_spi)
    mh = bytearray(mh_upto_spi + auth)
    c = inet_checksum(a16(HA), a16(HOA), 135, bytes(mh))
    mh[4:6] = struct.pack("!H", c)
    pkt = bytearray(raw(ip(HA, COA, 43) / rh2(135)) + bytes(mh))
    pkt[4:6] = struct.pack("!H", len(pkt) - 40)
    return bytes(pkt), mh_upto_spi, auth


# --------------------------------------------------------------------------
# Fixture list
# --------------------------------------------------------------------------
FIXTURES = []


def add(name, pkt, canonical=True, intent=None):
    """Add a valid packet: parse independently, check intent, canonical flag."""
    pkt = bytes(pkt)
    exp = parse_packet(pkt)
    if "mh" in exp:
        assert exp["mh"]["checksum_ok"], name + ": checksum"
    if "upper" in exp:
        assert exp["upper"]["checksum_ok"], name + ": upper checksum"
    if intent:
        for k, v in intent.get("fields", {}).items():
            assert exp["mh"]["fields"][k] == v, (name, k, exp["mh"]["fields"][k], v)
        if "options" in intent:
            got = [{k: v for k, v in o.items() if k != "_off"} for o in exp["mh"]["options"]
                   if o["type"] not in (0, 1)]
            assert got == intent["options"], (name, got, intent["options"])
        if "type" in intent:
            assert exp["mh"]["type"] == intent["type"], name
    canon = is_canonical(pkt, exp)
    assert canon == canonical, "%s: canonical flag %s but re-emission says %s" % (name, canonical, canon)
    FIXTURES.append({"name": name, "hex": pkt.hex(), "canonical": canonical, "malformed": False,
                     "expect": strip_private(exp)})


def add_malformed(name, pkt, why, expect):
    pkt = bytes(pkt)
    try:
        e = parse_packet(pkt)
        if "mh" in e and not e["mh"]["checksum_ok"]:
            err = "checksum mismatch"
            expect = strip_private(e)
        else:
            raise AssertionError(name + ": malformed packet parsed cleanly")
    except Malformed as ex:
        err = str(ex)
    FIXTURES.append({"name": name, "hex": pkt.hex(), "canonical": False, "malformed": True,
                     "why": why, "expect": expect, "_err": err})


def ipv6_expect(pkt):
    return {"ipv6": parse_ipv6(bytes(pkt))[0]}


def fix_plen(pkt):
    pkt = bytearray(pkt)
    pkt[4:6] = struct.pack("!H", len(pkt) - 40)
    return pkt


def recompute_mh_checksum(pkt, mh_off, psrc, pdst, mh_len=None):
    pkt = bytearray(pkt)
    mh = bytes(pkt[mh_off:mh_off + mh_len] if mh_len else pkt[mh_off:])
    mh = mh[:4] + b"\x00\x00" + mh[6:]
    pkt[mh_off + 4:mh_off + 6] = struct.pack("!H", inet_checksum(a16(psrc), a16(pdst), 135, mh))
    return pkt


def build_fixtures():
    v0 = RR_INPUTS[0]
    hkt, ckt, kbm = rr_derive(v0)
    hni, cni = v0["home_nonce_index"], v0["care_of_nonce_index"]

    # ---- every MH type, plain IPv6 ---------------------------------------
    add("brr_cn_to_hoa", raw(ip(CN, HOA, 135) / MIP6MH_BRR(res=0, res2=0)), intent={"type": 0})
    add("hoti_hoa_to_cn", raw(ip(HOA, CN, 135) / MIP6MH_HoTI(res=0, cookie=HOME_COOKIE)),
        intent={"type": 1, "fields": {"home_init_cookie": HOME_COOKIE.hex()}})
    add("coti_coa_to_cn", raw(ip(COA, CN, 135) / MIP6MH_CoTI(res=0, cookie=CAREOF_COOKIE)),
        intent={"type": 2, "fields": {"care_of_init_cookie": CAREOF_COOKIE.hex()}})
    add("hot_cn_to_hoa", raw(ip(CN, HOA, 135) / MIP6MH_HoT(res=0, index=hni, cookie=HOME_COOKIE, token=hkt)),
        intent={"type": 3, "fields": {"home_nonce_index": hni, "home_keygen_token": hkt.hex()}})
    add("cot_cn_to_coa", raw(ip(CN, COA, 135) / MIP6MH_CoT(res=0, index=cni, cookie=CAREOF_COOKIE, token=ckt)),
        intent={"type": 4, "fields": {"care_of_nonce_index": cni, "care_of_keygen_token": ckt.hex()}})

    # ---- BU: every A/H/L/K combination, no options -------------------------
    for bits in range(16):
        fl = "".join(c for c, b in zip("AHLK", (8, 4, 2, 1)) if bits & b)
        want = {"a": bool(bits & 8), "h": bool(bits & 4), "l": bool(bits & 2), "k": bool(bits & 1)}
        name = "bu_flags_" + (fl.lower() or "none")
        add(name, raw(ip(COA, CN, 135) / bu(0x0100 + bits, fl, 105)),
            intent={"type": 5, "fields": {"sequence": 0x0100 + bits, "flags": want, "lifetime_units": 105},
                    "options": []})

    # ---- BU: with / without each option -----------------------------------
    add("bu_opt_altcoa", raw(ip(COA, CN, 135) / bu(7, "A", 60, [MIP6OptAltCoA(acoa=ALT_COA)])),
        intent={"options": [{"type": 3, "alternate_coa": ALT_COA}]})
    add("bu_opt_nonce_indices", raw(ip(COA, CN, 135) / bu(8, "A", 60, [nonce_indices(hni, cni)])),
        intent={"options": [{"type": 4, "home_nonce_index": hni, "care_of_nonce_index": cni}]})
    add("bu_opt_bind_auth_only", raw(ip(COA, CN, 135) / bu(9, "A", 60, [bind_auth(bytes(range(12)))])),
        intent={"options": [{"type": 5, "authenticator": bytes(range(12)).hex()}]})
    add("bu_opt_altcoa_ni_bad", raw(ip(COA, CN, 135) / bu(10, "A", 60, [
        MIP6OptAltCoA(acoa=ALT_COA), nonce_indices(hni, cni), bind_auth(bytes(range(12, 24)))])),
        intent={"options": [{"type": 3, "alternate_coa": ALT_COA},
                            {"type": 4, "home_nonce_index": hni, "care_of_nonce_index": cni},
                            {"type": 5, "authenticator": bytes(range(12, 24)).hex()}]})
    add("bu_opt_ni_altcoa", raw(ip(COA, CN, 135) / bu(11, "", 60, [
        nonce_indices(hni, cni), MIP6OptAltCoA(acoa=ALT_COA)])),
        intent={"options": [{"type": 4, "home_nonce_index": hni, "care_of_nonce_index": cni},
                            {"type": 3, "alternate_coa": ALT_COA}]})
    add("bu_deregistration_lifetime0", raw(ip(COA, CN, 135) / bu(12, "A", 0)),
        intent={"fields": {"lifetime_units": 0}})

    # ---- BU to a correspondent as the MN sends it: src CoA, HAO = HoA,
    #      Nonce Indices + Binding Authorization Data (valid authenticator)
    pkt, mh_data, auth = bu_with_bad(ip(COA, CN, 60) / dst_hao(135), v0["seq"], v0["flags"],
                                     v0["lifetime_units"], [nonce_indices(hni, cni)], kbm, COA, CN)
    add("bu_mn_to_cn_hao_ni_bad", pkt,
        intent={"type": 5, "options": [{"type": 4, "home_nonce_index": hni, "care_of_nonce_index": cni},
                                       {"type": 5, "authenticator": auth.hex()}]})

    # ---- BA with every RFC 6275 status code (CN -> CoA) --------------------
    for st in [0, 1] + list(range(128, 139)) + [174]:
        add("ba_status_%d" % st, raw(ip(CN, COA, 135) / ba(st, 0x1234, 105 if st < 128 else 0)),
            intent={"type": 6, "fields": {"status": st, "flags": {"k": False}}, "options": []})
    add("ba_k_flag", raw(ip(HA, COA, 135) / ba(0, 77, 1000, k=True)),
        intent={"fields": {"flags": {"k": True}, "sequence": 77, "lifetime_units": 1000}})
    add("ba_opt_bra", raw(ip(HA, COA, 135) / ba(0, 78, 1000, options=[MIP6OptBRAdvice(rinter=250)])),
        intent={"options": [{"type": 2, "refresh_interval_units": 250}]})

    # BA from CN carried with RH2 (RFC 6275 9.5.4), BRA + Binding Auth Data
    opts = [MIP6OptBRAdvice(rinter=100), bind_auth(b"\x00" * 12)]
    probe = raw(ba(0, v0["seq"], v0["lifetime_units"], options=opts, cksum=0))
    ba_auth = bu_authenticator(kbm, COA, CN, probe[:-12])
    opts[-1] = bind_auth(ba_auth)
    add("ba_cn_to_mn_rh2_bra_bad", raw(ip(CN, COA, 43) / rh2(135) / ba(0, v0["seq"], v0["lifetime_units"],
                                                                     options=opts)),
        intent={"options": [{"type": 2, "refresh_interval_units": 100},
                            {"type": 5, "authenticator": ba_auth.hex()}]})

    # ---- BE status 1 and 2 -------------------------------------------------
    add("be_status1_unknown_binding", raw(ip(CN, COA, 135) / MIP6MH_BE(status=1, ha=HOA)),
        intent={"type": 7, "fields": {"status": 1, "home_address": HOA}})
    add("be_status2_unrecognized_type", raw(ip(CN, HOA, 135) / MIP6MH_BE(status=2, ha="::")),
        intent={"type": 7, "fields": {"status": 2, "home_address": "::"}})

    # ---- data packets with RH2 / HAO --------------------------------------
    add("data_icmpv6_echo_request_hao",
        raw(ip(COA, CN, 60) / dst_hao(58) / ICMPv6EchoRequest(id=0x4d49, seq=1, data=b"mip6-anycast")))
    add("data_icmpv6_echo_reply_rh2",
        raw(ip(CN, COA, 43) / rh2(58) / ICMPv6EchoReply(id=0x4d49, seq=1, data=b"mip6-anycast")))
    add("data_tcp_syn_hao",
        raw(ip(COA, CN, 60) / dst_hao(6) / TCP(sport=40000, dport=80, seq=1000, ack=0, flags="S",
                                               window=65535, options=[])))
    add("data_tcp_synack_rh2",
        raw(ip(CN, COA, 43) / rh2(6) / TCP(sport=80, dport=40000, seq=5000, ack=1001, flags="SA",
                                            window=65535, options=[])))

    # ---- IPv6-in-IPv6: HoTI reverse tunnelled through the HA ---------------
    add("ip6ip6_hoti_reverse_tunnel",
        raw(ip(COA, HA, 41) / ip(HOA, CN, 135, hlim=64) / MIP6MH_HoTI(res=0, cookie=HOME_COOKIE)),
        intent={"type": 1, "fields": {"home_init_cookie": HOME_COOKIE.hex()}})
    add("ip6ip6_hot_tunnel_to_coa",
        raw(ip(HA, COA, 41) / ip(CN, HOA, 135, hlim=63) /
            MIP6MH_HoT(res=0, index=hni, cookie=HOME_COOKIE, token=hkt)),
        intent={"type": 3, "fields": {"home_keygen_token": hkt.hex()}})

    # ---- home registration with RFC 4285 Mesg-ID + MN-HA auth --------------
    pkt, _, mnha_auth = mnha_bu(0x2000, 1000)
    add("bu_home_registration_rfc4285", pkt,
        intent={"type": 5, "fields": {"flags": {"a": True, "h": True, "l": False, "k": False}},
                "options": [{"type": 10, "timestamp": MESG_ID_TS},
                            {"type": 9, "subtype": 1, "spi": MNHA_SPI, "auth_data": mnha_auth.hex()}]})
    pkt, _, _ = mnha_ba(0x2000, 1000)
    add("ba_home_registration_rfc4285_rh2", pkt, intent={"type": 6})

    # ---- valid but non-canonical layouts -----------------------------------
    add("bu_noncanonical_four_pad1",
        raw(ip(COA, CN, 135) / bu(20, "A", 60, [Pad1(), Pad1(), Pad1(), Pad1()], autopad=0)),
        canonical=False, intent={"options": []})
    add("bu_noncanonical_extra_trailing_padn",
        raw(ip(COA, CN, 135) / bu(21, "A", 60, [PadN(optdata=b""), MIP6OptAltCoA(acoa=ALT_COA),
                                                PadN(optdata=b"\x00" * 6)], autopad=0)),
        canonical=False, intent={"options": [{"type": 3, "alternate_coa": ALT_COA}]})
    add("ba_noncanonical_reserved_bits_set", raw(ip(CN, COA, 135) / ba(0, 22, 60, res2=0x15)),
        canonical=False, intent={"fields": {"flags": {"k": False}}})
    # scapy deviation: in6_pseudoheader() only honours a HAO when it is the
    # sole option of the Destination Options header, so with explicit Pad1s it
    # checksums over the CoA.  Recompute the ICMPv6 checksum with the HoA.
    p = bytearray(raw(ip(COA, CN, 60) / IPv6ExtHdrDestOpt(nh=58, autopad=0, options=[
        Pad1(), Pad1(), Pad1(), Pad1(), HAO(hoa=HOA)]) / ICMPv6EchoRequest(id=1, seq=2)))
    icmp = bytes(p[64:66]) + b"\x00\x00" + bytes(p[68:])
    p[66:68] = struct.pack("!H", inet_checksum(a16(HOA), a16(CN), 58, icmp))
    add("data_icmpv6_hao_noncanonical_pad1s", p, canonical=False)

    # ---- malformed ---------------------------------------------------------
    base = raw(ip(CN, HOA, 135) / MIP6MH_HoT(res=0, index=hni, cookie=HOME_COOKIE, token=hkt))
    p = fix_plen(base[:40 + 16])
    add_malformed("malformed_truncated_mh", p,
                  "MH Header Len 2 says 24 octets but the IPv6 payload holds only 16 (truncated HoT)",
                  ipv6_expect(p))

    good_bu, _, _ = bu_with_bad(ip(COA, CN, 60) / dst_hao(135), v0["seq"], v0["flags"], v0["lifetime_units"],
                                [nonce_indices(hni, cni)], kbm, COA, CN)
    p = good_bu[:-10]  # IPv6 Payload Length still claims the full packet
    add_malformed("malformed_truncated_ipv6_payload", p,
                  "IPv6 Payload Length claims %d octets but only %d follow the header (BU cut inside the "
                  "Binding Authorization Data option)" % (len(good_bu) - 40, len(p) - 40), ipv6_expect(p))

    p = bytearray(raw(ip(CN, HOA, 135) / MIP6MH_BRR(res=0, res2=0)))
    p[40] = 6
    p = recompute_mh_checksum(p, 40, CN, HOA)
    add_malformed("malformed_bad_payload_proto", p,
                  "MH Payload Proto is 6 (TCP); RFC 6275 6.1.1/9.2 require 59 (IPPROTO_NONE) "
                  "and a receiver must discard the message (checksum is correct)", ipv6_expect(p))

    p = bytearray(base[:40 + 16])
    p[41] = 1  # Header Len 1 = 16 octets, HoT needs 24
    p = recompute_mh_checksum(fix_plen(p), 40, CN, HOA)
    add_malformed("malformed_header_len_too_short_hot", p,
                  "HoT with Header Len 1 (16 octets); a Home Test needs 24 octets (RFC 6275 6.1.5, 9.2)",
                  ipv6_expect(p))

    p = bytearray(raw(ip(COA, CN, 135) / bu(30, "A", 60))[:40 + 8])
    p[41] = 0  # BU in 8 octets: lifetime and flags missing
    p = recompute_mh_checksum(fix_plen(p), 40, COA, CN)
    add_malformed("malformed_header_len_too_short_bu", p,
                  "BU with Header Len 0 (8 octets); a Binding Update needs at least 12 (RFC 6275 6.1.7)",
                  ipv6_expect(p))

    p = bytearray(raw(ip(COA, CN, 135) / bu(31, "A", 60)))
    assert p[40 + 12:40 + 16] == b"\x01\x02\x00\x00"
    p[40 + 12:40 + 16] = b"\x04\x04\x01\x01"  # Nonce Indices claims 6 octets, 4 left
    p = recompute_mh_checksum(p, 40, COA, CN)
    add_malformed("malformed_option_overrun", p,
                  "Nonce Indices option at MH offset 12 has length 4 (6 octets) but the 16-octet message "
                  "ends after 4 (RFC 6275 6.2.1: option must fit in the message)", ipv6_expect(p))

    p = bytearray(raw(ip(COA, CN, 135) / bu(32, "A", 60, [MIP6OptAltCoA(acoa=ALT_COA)])))
    assert p[40 + 14] == 3 and p[41] == 3
    p[40 + 14 + 1] = 40  # AltCoA says 40 data octets in a 32-octet message
    p = recompute_mh_checksum(p, 40, COA, CN)
    add_malformed("malformed_altcoa_length_overrun", p,
                  "Alternate CoA option length 40 overruns the 32-octet message", ipv6_expect(p))

    p = bytearray(raw(ip(CN, COA, 43) / rh2(135) / ba(0, 33, 60)))
    p[40 + 3] = 2
    add_malformed("malformed_rh2_segments_left_2", p,
                  "type 2 routing header with Segments Left 2; RFC 6275 6.4.1 requires exactly 1 "
                  "(one address, Hdr Ext Len 2)", ipv6_expect(p))

    p = bytearray(raw(ip(CN, COA, 43) / rh2(58) / ICMPv6EchoReply(id=1, seq=1)))
    p[40 + 3] = 0
    add_malformed("malformed_rh2_segments_left_0", p,
                  "type 2 routing header with Segments Left 0; RFC 6275 6.4.1 requires 1 (a plain RFC 8200 "
                  "node would skip the header; a MIPv6 receiver must not treat it as a valid RH2)",
                  ipv6_expect(p))

    # HAO at offset 2 (8n+2) of the Destination Options header, PadN after it
    mis = bytes([58, 2]) + bytes([201, 16]) + a16(HOA) + pad_bytes(4)
    icmp = raw(ICMPv6EchoRequest(id=1, seq=3, cksum=0))
    c = inet_checksum(a16(HOA), a16(CN), 58, icmp)
    icmp = icmp[:2] + struct.pack("!H", c) + icmp[4:]
    p = fix_plen(raw(ip(COA, CN, 60)) + mis + icmp)
    add_malformed("malformed_hao_misaligned", p,
                  "Home Address option at Destination Options offset 2 (8n+2); RFC 6275 6.3 requires 8n+6 "
                  "(everything else, including the ICMPv6 checksum with the HoA, is correct)", ipv6_expect(p))

    p = bytearray(good_bu)
    mh_off = 40 + 24
    c = struct.unpack("!H", p[mh_off + 4:mh_off + 6])[0]
    p[mh_off + 4:mh_off + 6] = struct.pack("!H", c ^ 0x0101)
    add_malformed("malformed_bad_checksum", p,
                  "BU (HAO, Nonce Indices, valid authenticator) whose MH checksum has been altered "
                  "(xor 0x0101); structure is valid, checksum verification must fail", None)

    p = bytearray(raw(ip(COA, CN, 60) / dst_hao(135) / bu(34, "A", 60)))
    # make the MH carry the checksum computed with the CoA instead of the HoA
    p = recompute_mh_checksum(p, 40 + 24, COA, CN)
    add_malformed("malformed_checksum_uses_coa_not_hoa", p,
                  "BU with HAO whose MH checksum was computed over the CoA (IPv6 source) instead of the "
                  "home address; RFC 6275 6.1.1/6.3 make the HoA the pseudo-header source", None)


# --------------------------------------------------------------------------
# RR / RFC 4285 vectors
# --------------------------------------------------------------------------
def build_rr_vectors():
    rr = []
    for v in RR_INPUTS:
        hkt, ckt, kbm = rr_derive(v)
        pkt, mh_data, auth = bu_with_bad(ip(v["coa"], v["cn"], 60) / dst_hao(135, v["hoa"]), v["seq"],
                                         v["flags"], v["lifetime_units"],
                                         [nonce_indices(v["home_nonce_index"], v["care_of_nonce_index"])],
                                         kbm, v["coa"], v["cn"])
        # independent re-check from the parsed packet
        e = parse_packet(pkt)
        assert e["mh"]["checksum_ok"]
        mh = pkt[64:]
        assert mh[:4] + b"\x00\x00" + mh[6:-12] == mh_data
        rr.append({
            "name": v["name"],
            "kcn": v["kcn"].hex(), "home_nonce": v["home_nonce"].hex(), "care_of_nonce": v["care_of_nonce"].hex(),
            "hoa": v["hoa"], "coa": v["coa"], "cn": v["cn"],
            "home_keygen_token": hkt.hex(), "care_of_keygen_token": ckt.hex(),
            "kbm": kbm.hex(), "kbm_dereg": kbm_of(hkt).hex(),
            "bu_mh_data": mh_data.hex(), "bu_authenticator": auth.hex(),
            "bu_packet": pkt.hex(),
        })
    r4285 = []
    for name, builder in (("mnha_bu_home_registration", lambda: mnha_bu(0x2000, 1000)),
                          ("mnha_ba_home_registration", lambda: mnha_ba(0x2000, 1000)),
                          ("mnha_bu_seq1_lifetime0", lambda: mnha_bu(1, 0))):
        pkt, mh_data, auth = builder()
        r4285.append({"name": name, "key": MNHA_KEY.hex(), "spi": MNHA_SPI, "coa": COA, "hoa": HOA, "ha": HA,
                      "mh_data": mh_data.hex(), "authenticator": auth.hex(), "packet": pkt.hex()})
    return {"rr": rr, "rfc4285": r4285}


# --------------------------------------------------------------------------
# inspect capture
# --------------------------------------------------------------------------
def build_inspect():
    v = RR_INPUTS[0]
    hkt, ckt, kbm = rr_derive(v)
    hni, cni = v["home_nonce_index"], v["care_of_nonce_index"]
    pkts = []  # (bytes, orig_len, expected)

    def mh_ok(p):
        return parse_packet(p)["mh"]["checksum_ok"]

    p = raw(ip(COA, HA, 41) / ip(HOA, CN, 135) / MIP6MH_HoTI(res=0, cookie=HOME_COOKIE))
    pkts.append((p, len(p), {"what": "HoTI reverse-tunnelled CoA->HA, inner HoA->CN", "mh_type": 1,
                             "checksum_ok": mh_ok(p), "malformed": False}))
    p = raw(ip(COA, CN, 135) / MIP6MH_CoTI(res=0, cookie=CAREOF_COOKIE))
    pkts.append((p, len(p), {"what": "CoTI CoA->CN", "mh_type": 2, "checksum_ok": mh_ok(p), "malformed": False}))
    p = raw(ip(HA, COA, 41) / ip(CN, HOA, 135, hlim=63) /
            MIP6MH_HoT(res=0, index=hni, cookie=HOME_COOKIE, token=hkt))
    pkts.append((p, len(p), {"what": "HoT tunnelled HA->CoA, inner CN->HoA, home nonce index %d" % hni,
                             "mh_type": 3, "checksum_ok": mh_ok(p), "malformed": False}))
    p = raw(ip(CN, COA, 135) / MIP6MH_CoT(res=0, index=cni, cookie=CAREOF_COOKIE, token=ckt))
    pkts.append((p, len(p), {"what": "CoT CN->CoA, care-of nonce index %d" % cni, "mh_type": 4,
                             "checksum_ok": mh_ok(p), "malformed": False}))

    def mkbu(seq, h, c, key):
        pk, _, _ = bu_with_bad(ip(COA, CN, 60) / dst_hao(135), seq, "A", 105, [nonce_indices(h, c)], key, COA, CN)
        return bytearray(pk)

    p = mkbu(0x1000, hni, cni, kbm)
    pkts.append((bytes(p), len(p), {"what": "BU valid authenticator", "mh_type": 5, "checksum_ok": True,
                                    "authenticator_ok": True, "malformed": False}))
    p = mkbu(0x1001, hni, cni, kbm)
    p[-1] ^= 0xFF  # corrupt last authenticator octet, then fix the checksum
    p = recompute_mh_checksum(p, 64, HOA, CN)
    pkts.append((bytes(p), len(p), {"what": "BU corrupted authenticator (checksum correct)", "mh_type": 5,
                                    "checksum_ok": True, "authenticator_ok": False, "malformed": False}))
    p = mkbu(0x1002, hni, cni, kbm)
    p[64 + 4] ^= 0x80
    pkts.append((bytes(p), len(p), {"what": "BU corrupted checksum (authenticator itself valid: it is computed "
                                    "with checksum zero)", "mh_type": 5, "checksum_ok": False,
                                    "authenticator_ok": True, "malformed": False}))
    other_kbm = kbm_of(b"\x99" * 8, b"\x77" * 8)
    p = mkbu(0x1003, 0x0abc, 0x0def, other_kbm)
    pkts.append((bytes(p), len(p), {"what": "BU with nonce indices 0x0abc/0x0def: no matching HoT/CoT in the "
                                    "capture", "mh_type": 5, "checksum_ok": True, "authenticator_ok": None,
                                    "malformed": False}))
    full = mkbu(0x1004, hni, cni, kbm)
    p = bytes(full[:80])  # cut inside the Binding Update fixed part + options
    pkts.append((p, len(full), {"what": "BU truncated to 80 of %d octets (pcap caplen < len)" % len(full),
                                "mh_type": 5, "checksum_ok": False, "authenticator_ok": None, "malformed": True}))

    # verify expectations with the independent parser / crypto
    tokens = {}
    for i, (p, _, e) in enumerate(pkts):
        try:
            x = parse_packet(p)
        except Malformed:
            assert e["malformed"], i
            continue
        assert not e["malformed"]
        assert x["mh"]["type"] == e["mh_type"]
        assert x["mh"]["checksum_ok"] == e["checksum_ok"], i
        f = x["mh"]["fields"]
        if x["mh"]["type"] == 3:
            tokens[("h", f["home_nonce_index"])] = bytes.fromhex(f["home_keygen_token"])
        if x["mh"]["type"] == 4:
            tokens[("c", f["care_of_nonce_index"])] = bytes.fromhex(f["care_of_keygen_token"])
        if x["mh"]["type"] == 5:
            ni = [o for o in x["mh"]["options"] if o["type"] == 4][0]
            h = tokens.get(("h", ni["home_nonce_index"]))
            c = tokens.get(("c", ni["care_of_nonce_index"]))
            if h is None or c is None:
                assert e["authenticator_ok"] is None, i
            else:
                mh = p[64:]
                data = mh[:4] + b"\x00\x00" + mh[6:-12]
                ok = bu_authenticator(kbm_of(h, c), COA, CN, data) == mh[-12:]
                assert ok == e["authenticator_ok"], i
    return pkts



def eth(data):
    return MAC_B + MAC_A + b"\x86\xdd" + data


def dump_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def main():
    build_fixtures()
    errs = []
    for fx in FIXTURES:
        if "_err" in fx:
            errs.append((fx["name"], fx.pop("_err")))
    dump_json(os.path.join(OUT, "mip6_fixtures.json"), FIXTURES)
    recs = [(bytes.fromhex(fx["hex"]), len(fx["hex"]) // 2) for fx in FIXTURES]
    write_pcap(os.path.join(OUT, "mip6_fixtures.pcap"), LINKTYPE_RAW, recs, PCAP_TS)
    write_pcap(os.path.join(OUT, "mip6_fixtures_eth.pcap"), LINKTYPE_ETHERNET,
               [(eth(d), n + 14) for d, n in recs], PCAP_TS)
    dump_json(os.path.join(OUT, "rr_vectors.json"), build_rr_vectors())
    ins = build_inspect()
    write_pcap(os.path.join(OUT, "inspect_capture.pcap"), LINKTYPE_RAW, [(p, n) for p, n, _ in ins], PCAP_TS)
    dump_json(os.path.join(OUT, "inspect_expected.json"), {
        "capture": "inspect_capture.pcap", "link_type": LINKTYPE_RAW,
        "packets": [dict(index=i, **e) for i, (_, _, e) in enumerate(ins)]})
    if "-v" in sys.argv:
        for n, e in errs:
            print("%-40s %s" % (n, e))
    print("%d fixtures (%d malformed), %d RR vectors, %d inspect packets" % (
        len(FIXTURES), sum(f["malformed"] for f in FIXTURES), len(RR_INPUTS), len(ins)))


if __name__ == "__main__":
    main()
