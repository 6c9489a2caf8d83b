"""Reference model of the RFC 6275 / RFC 4285 wire formats and crypto,
written from the RFC text for the fixture generator (no scapy, no project
code): Return Routability and MN-HA authenticators (hmac/hashlib), a strict
parser that produces the `expect` objects of mip6_fixtures.json, the
minimal-padding ("canonical") emitter, and a classic pcap writer.
"""

import hashlib
import hmac
import ipaddress
import struct

def a16(addr):
    return ipaddress.IPv6Address(addr).packed


def astr(b):
    return str(ipaddress.IPv6Address(bytes(b)))


# --------------------------------------------------------------------------
# RFC 6275 5.2 Return Routability crypto, RFC 4285 MN-HA authenticator
# --------------------------------------------------------------------------
def keygen_token(kcn, addr, nonce, which):
    """RFC 6275 5.2.5: First(64, HMAC_SHA1(Kcn, address | nonce | 0/1)).

    `which` is 0 for the home keygen token, 1 for the care-of keygen token;
    it is a single octet."""
    return hmac.new(kcn, a16(addr) + nonce + bytes([which]), hashlib.sha1).digest()[:8]


def kbm_of(home_token, care_of_token=None):
    """RFC 6275 5.2.5: Kbm = SHA1(home keygen token | care-of keygen token);
    when de-registering (returning home) Kbm = SHA1(home keygen token)."""
    data = home_token + (care_of_token if care_of_token is not None else b"")
    return hashlib.sha1(data).digest()


def bu_authenticator(kbm, coa, cn, mh_data):
    """RFC 6275 6.2.7: First(96, HMAC_SHA1(Kbm, care-of address |
    correspondent | MH Data)), MH Data = the Mobility Header with checksum
    zero, excluding the Authenticator field itself."""
    return hmac.new(kbm, a16(coa) + a16(cn) + mh_data, hashlib.sha1).digest()[:12]


def rfc4285_authenticator(key, coa, hoa, mh_data):
    """RFC 4285 5.1: First(96, HMAC_SHA1(MN-HA shared key, Mobility Data)),
    Mobility Data = care-of address | home address | MH Data, MH Data = the
    Mobility Header up to and including the Mobility SPI field of the option,
    checksum zero."""
    return hmac.new(key, a16(coa) + a16(hoa) + mh_data, hashlib.sha1).digest()[:12]




# --------------------------------------------------------------------------
# Independent parser (RFC text), used to verify every packet and to produce
# the "expect" objects.
# --------------------------------------------------------------------------


class Malformed(Exception):
    pass


def ones_sum(data):
    if len(data) % 2:
        data += b"\x00"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def inet_checksum(pseudo_src, pseudo_dst, nh, upper):
    """RFC 8200 8.1 pseudo-header (src, dst, 32-bit length, 3 zero, nh)."""
    ph = pseudo_src + pseudo_dst + struct.pack("!I", len(upper)) + b"\x00\x00\x00" + bytes([nh])
    return (~ones_sum(ph + upper)) & 0xFFFF


# RFC 6275 6.1.x: fixed part length (from MH start) per MH type, and which
# options 6.2 allows in it (checked loosely: only alignment and bounds here).
MH_FIXED = {0: 8, 1: 16, 2: 16, 3: 24, 4: 24, 5: 12, 6: 12, 7: 24}
# RFC 6275 6.2.x alignment (x, y) meaning x*n + y, from the MH start
OPT_ALIGN = {2: (2, 0), 3: (8, 6), 4: (2, 0), 5: (8, 2),
             9: (4, 1),    # RFC 4285 5 (MN-HA auth): 4n+1
             10: (8, 2)}   # RFC 4285 6 (Mesg-ID): 8n+2
OPT_LEN = {2: 2, 3: 16, 4: 4, 5: 12, 10: 8}


def parse_mh_options(mh, start, end):
    opts = []
    off = start
    while off < end:
        t = mh[off]
        if t == 0:
            opts.append({"type": 0})
            off += 1
            continue
        if off + 2 > end:
            raise Malformed("option header at %d overruns the message" % off)
        ln = mh[off + 1]
        if off + 2 + ln > end:
            raise Malformed("option type %d at %d (len %d) overruns the message end %d" % (t, off, ln, end))
        data = mh[off + 2: off + 2 + ln]
        if t in OPT_ALIGN:
            x, y = OPT_ALIGN[t]
            if off % x != y:
                raise Malformed("option type %d at offset %d violates alignment %dn+%d" % (t, off, x, y))
        if t in OPT_LEN and ln != OPT_LEN[t]:
            raise Malformed("option type %d has length %d, expected %d" % (t, ln, OPT_LEN[t]))
        if t == 1:
            if any(data):
                raise Malformed("PadN with non-zero data")
            o = {"type": 1, "len": ln}
        elif t == 2:
            o = {"type": 2, "refresh_interval_units": struct.unpack("!H", data)[0]}
        elif t == 3:
            o = {"type": 3, "alternate_coa": astr(data)}
        elif t == 4:
            h, c = struct.unpack("!HH", data)
            o = {"type": 4, "home_nonce_index": h, "care_of_nonce_index": c}
        elif t == 5:
            o = {"type": 5, "authenticator": data.hex()}
        elif t == 9:
            if ln < 5:
                raise Malformed("auth option too short")
            o = {"type": 9, "subtype": data[0], "spi": struct.unpack("!I", data[1:5])[0],
                 "auth_data": data[5:].hex()}
        elif t == 10:
            o = {"type": 10, "timestamp": struct.unpack("!Q", data)[0]}
        else:
            raise Malformed("unknown mobility option %d" % t)
        o["_off"] = off
        opts.append(o)
        off += 2 + ln
    return opts


def parse_mh(buf, psrc, pdst):
    if len(buf) < 6:
        raise Malformed("MH shorter than its 6-octet header")
    proto, hlen, mtype, _res = buf[0], buf[1], buf[2], buf[3]
    total = (hlen + 1) * 8
    if total > len(buf):
        raise Malformed("MH Header Len says %d octets, only %d present" % (total, len(buf)))
    if total < len(buf):
        raise Malformed("%d octets after the MH with Payload Proto 59" % (len(buf) - total))
    if proto != 59:
        raise Malformed("Payload Proto %d, RFC 6275 9.2 requires 59 (IPPROTO_NONE)" % proto)
    if mtype not in MH_FIXED:
        raise Malformed("unknown MH type %d" % mtype)
    fixed = MH_FIXED[mtype]
    if total < fixed:
        raise Malformed("Header Len %d too short for MH type %d (needs %d octets)" % (hlen, mtype, fixed))
    mh = bytes(buf[:total])
    cks = struct.unpack("!H", mh[4:6])[0]
    ok = inet_checksum(psrc, pdst, 135, mh) == 0
    f = {}
    if mtype == 1:
        f = {"home_init_cookie": mh[8:16].hex()}
    elif mtype == 2:
        f = {"care_of_init_cookie": mh[8:16].hex()}
    elif mtype == 3:
        f = {"home_nonce_index": struct.unpack("!H", mh[6:8])[0],
             "home_init_cookie": mh[8:16].hex(), "home_keygen_token": mh[16:24].hex()}
    elif mtype == 4:
        f = {"care_of_nonce_index": struct.unpack("!H", mh[6:8])[0],
             "care_of_init_cookie": mh[8:16].hex(), "care_of_keygen_token": mh[16:24].hex()}
    elif mtype == 5:
        seq, fl, life = struct.unpack("!HHH", mh[6:12])
        f = {"sequence": seq,
             "flags": {"a": bool(fl & 0x8000), "h": bool(fl & 0x4000),
                       "l": bool(fl & 0x2000), "k": bool(fl & 0x1000)},
             "lifetime_units": life}
    elif mtype == 6:
        f = {"status": mh[6], "flags": {"k": bool(mh[7] & 0x80)},
             "sequence": struct.unpack("!H", mh[8:10])[0],
             "lifetime_units": struct.unpack("!H", mh[10:12])[0]}
    elif mtype == 7:
        f = {"status": mh[6], "home_address": astr(mh[8:24])}
    opts = parse_mh_options(mh, fixed, total)
    return {"type": mtype, "header_len": hlen, "checksum": cks, "checksum_ok": ok,
            "fields": f, "options": opts}, mh


def parse_dstopts(buf):
    if len(buf) < 2:
        raise Malformed("truncated destination options header")
    nh, hlen = buf[0], buf[1]
    total = (hlen + 1) * 8
    if total > len(buf):
        raise Malformed("destination options header overruns the packet")
    off = 2
    opts = []
    hoa = None
    while off < total:
        t = buf[off]
        if t == 0:
            opts.append({"type": "pad1"})
            off += 1
            continue
        if off + 2 > total:
            raise Malformed("dest option header overruns")
        ln = buf[off + 1]
        if off + 2 + ln > total:
            raise Malformed("dest option overruns header")
        data = buf[off + 2: off + 2 + ln]
        if t == 1:
            opts.append({"type": "padn", "len": ln})
        elif t == 201:
            if ln != 16:
                raise Malformed("HAO length %d != 16" % ln)
            if off % 8 != 6:
                raise Malformed("HAO at offset %d, RFC 6275 6.3 requires 8n+6" % off)
            hoa = astr(data)
            opts.append({"type": 201, "home_address": hoa})
        else:
            raise Malformed("unexpected destination option %d" % t)
        off += 2 + ln
    return nh, total, {"kind": "dstopts", "options": opts}, hoa


def parse_rh2(buf):
    if len(buf) < 24:
        raise Malformed("truncated type 2 routing header")
    nh, hlen, rtype, segleft = buf[0], buf[1], buf[2], buf[3]
    if rtype != 2:
        raise Malformed("routing type %d" % rtype)
    if hlen != 2:
        raise Malformed("RH2 Hdr Ext Len %d != 2" % hlen)
    if segleft != 1:
        raise Malformed("RH2 Segments Left %d != 1 (RFC 6275 6.4.1)" % segleft)
    hoa = astr(buf[8:24])
    return nh, 24, {"kind": "rh2", "home_address": hoa, "segments_left": segleft}, hoa


def parse_ipv6(buf):
    if len(buf) < 40:
        raise Malformed("shorter than an IPv6 header")
    if buf[0] >> 4 != 6:
        raise Malformed("not IPv6")
    plen, nh, hlim = struct.unpack("!HBB", buf[4:8])
    src, dst = bytes(buf[8:24]), bytes(buf[24:40])
    hdr = {"src": astr(src), "dst": astr(dst), "next_header": nh, "payload_len": plen, "hop_limit": hlim}
    return hdr, src, dst, plen, nh


def parse_packet(buf):
    """Parse a raw IPv6 packet; returns the `expect` object.  Raises Malformed."""
    buf = bytes(buf)
    hdr, src, dst, plen, nh = parse_ipv6(buf)
    if 40 + plen != len(buf):
        raise Malformed("IPv6 Payload Length %d but %d octets follow the header" % (plen, len(buf) - 40))
    exp = {"ipv6": hdr, "ext": []}
    rest = buf[40:]
    psrc, pdst = src, dst
    while True:
        if nh == 60:
            nh, n, e, hoa = parse_dstopts(rest)
            if hoa:
                psrc = a16(hoa)  # RFC 6275 6.3 / 6.1.1: HoA is the pseudo-header source
            exp["ext"].append(e)
            rest = rest[n:]
        elif nh == 43:
            nh, n, e, hoa = parse_rh2(rest)
            pdst = a16(hoa)  # RFC 8200 8.1: final destination
            exp["ext"].append(e)
            rest = rest[n:]
        elif nh == 41:
            ihdr, isrc, idst, iplen, inh = parse_ipv6(rest)
            if 40 + iplen != len(rest):
                raise Malformed("inner IPv6 length mismatch")
            exp["ext"].append({"kind": "ip6ip6", "inner_src": ihdr["src"], "inner_dst": ihdr["dst"]})
            nh, psrc, pdst = inh, isrc, idst
            rest = rest[40:]
        elif nh == 135:
            mh, _ = parse_mh(rest, psrc, pdst)
            exp["mh"] = mh
            return exp
        elif nh in (58, 6):
            if len(rest) < (8 if nh == 58 else 20):
                raise Malformed("truncated upper layer")
            ok = inet_checksum(psrc, pdst, nh, rest) == 0
            exp["upper"] = {"next_header": nh, "checksum_ok": ok}
            return exp
        else:
            raise Malformed("unexpected next header %d" % nh)


def strip_private(exp):
    if "mh" in exp:
        for o in exp["mh"]["options"]:
            o.pop("_off", None)
    return exp


# --------------------------------------------------------------------------
# Canonical emitter (minimal padding), independent of scapy: used to decide
# the "canonical" flag by re-emitting the parsed representation.
# --------------------------------------------------------------------------
def pad_bytes(n):
    if n == 0:
        return b""
    if n == 1:
        return b"\x00"
    return bytes([1, n - 2]) + b"\x00" * (n - 2)


def emit_mh_option(o):
    t = o["type"]
    if t == 2:
        return bytes([2, 2]) + struct.pack("!H", o["refresh_interval_units"])
    if t == 3:
        return bytes([3, 16]) + a16(o["alternate_coa"])
    if t == 4:
        return bytes([4, 4]) + struct.pack("!HH", o["home_nonce_index"], o["care_of_nonce_index"])
    if t == 5:
        return bytes([5, 12]) + bytes.fromhex(o["authenticator"])
    if t == 9:
        d = bytes([o["subtype"]]) + struct.pack("!I", o["spi"]) + bytes.fromhex(o["auth_data"])
        return bytes([9, len(d)]) + d
    if t == 10:
        return bytes([10, 8]) + struct.pack("!Q", o["timestamp"])
    raise ValueError(t)


def canonical_mh(mh):
    """Re-emit a parsed MH with minimal padding and zero reserved fields."""
    t, f = mh["type"], mh["fields"]
    if t == 0:
        body = b"\x00\x00"
    elif t == 1:
        body = b"\x00\x00" + bytes.fromhex(f["home_init_cookie"])
    elif t == 2:
        body = b"\x00\x00" + bytes.fromhex(f["care_of_init_cookie"])
    elif t == 3:
        body = struct.pack("!H", f["home_nonce_index"]) + bytes.fromhex(f["home_init_cookie"]) + \
            bytes.fromhex(f["home_keygen_token"])
    elif t == 4:
        body = struct.pack("!H", f["care_of_nonce_index"]) + bytes.fromhex(f["care_of_init_cookie"]) + \
            bytes.fromhex(f["care_of_keygen_token"])
    elif t == 5:
        fl = f["flags"]
        bits = (0x8000 if fl["a"] else 0) | (0x4000 if fl["h"] else 0) | \
            (0x2000 if fl["l"] else 0) | (0x1000 if fl["k"] else 0)
        body = struct.pack("!HHH", f["sequence"], bits, f["lifetime_units"])
    elif t == 6:
        body = bytes([f["status"], 0x80 if f["flags"]["k"] else 0]) + \
            struct.pack("!HH", f["sequence"], f["lifetime_units"])
    elif t == 7:
        body = bytes([f["status"], 0]) + a16(f["home_address"])
    out = bytearray(bytes([59, 0, t, 0, 0, 0]) + body)
    for o in mh["options"]:
        if o["type"] in (0, 1):
            continue
        x, y = OPT_ALIGN[o["type"]]
        d = (y - len(out)) % x
        out += pad_bytes(d)
        out += emit_mh_option(o)
    out += pad_bytes((-len(out)) % 8)
    out[1] = len(out) // 8 - 1
    return bytes(out)


def canonical_dstopts(nh, hoa):
    out = bytearray([nh, 0])
    out += pad_bytes((6 - len(out)) % 8)
    out += bytes([201, 16]) + a16(hoa)
    out += pad_bytes((-len(out)) % 8)
    out[1] = len(out) // 8 - 1
    return bytes(out)


def is_canonical(buf, exp):
    """True if every MIPv6 header of the packet equals its minimal-padding
    re-emission (checksum field aside)."""
    buf = bytes(buf)
    off = 40
    nh = buf[6]
    ei = 0
    while True:
        if nh == 60:
            e = exp["ext"][ei]
            hoa = [o for o in e["options"] if o["type"] == 201][0]["home_address"]
            n = (buf[off + 1] + 1) * 8
            if buf[off:off + n] != canonical_dstopts(buf[off], hoa):
                return False
            nh = buf[off]
            off += n
            ei += 1
        elif nh == 43:
            n = 24
            want = bytes([buf[off], 2, 2, 1, 0, 0, 0, 0]) + a16(exp["ext"][ei]["home_address"])
            if buf[off:off + n] != want:
                return False
            nh = buf[off]
            off += n
            ei += 1
        elif nh == 41:
            nh = buf[off + 6]
            off += 40
            ei += 1
        elif nh == 135:
            mh = buf[off:]
            c = canonical_mh(exp["mh"])
            return mh[:4] + mh[6:] == c[:4] + c[6:]
        else:
            return True



# --------------------------------------------------------------------------
# pcap writer (classic libpcap format, microsecond timestamps)
# --------------------------------------------------------------------------
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101


def write_pcap(path, linktype, records, ts_base):
    """Record i gets timestamp ts_base seconds + i milliseconds."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for i, (data, orig_len) in enumerate(records):
            f.write(struct.pack("<IIII", ts_base, i * 1000, len(data), orig_len))
            f.write(data)

