#!/usr/bin/python3
"""Cross-check the generated files with tools nobody here wrote.

    /usr/bin/python3 testdata/check_external.py

1. openssl: every Return Routability / RFC 4285 value in rr_vectors.json is
   recomputed with `openssl dgst` (HMAC-SHA1, SHA1) instead of Python's hmac.
2. tshark (Wireshark's dissectors):
For every valid fixture: tshark must decode the expected MH type (or the
expected ICMPv6/TCP upper layer with a good checksum, verified with the HAO /
RH2 addresses) and report no malformed-packet or expert item of severity
warning or error.  For malformed fixtures it prints what tshark says (this
text is recorded in README.md).  The inspect capture is checked the same way.
Exit status 1 on any mismatch.
"""

import ipaddress
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PI_WARN = 0x00600000  # epan/proto.h expert severities: chat 2<<20, note 4<<20, warn 6<<20, error 8<<20


def openssl_hmac(key_hex, data_hex):
    r = subprocess.run(["openssl", "dgst", "-sha1", "-mac", "HMAC", "-macopt", "hexkey:" + key_hex],
                       input=bytes.fromhex(data_hex), capture_output=True, check=True)
    return r.stdout.decode().rsplit("= ", 1)[1].strip()


def openssl_sha1(data_hex):
    r = subprocess.run(["openssl", "dgst", "-sha1"], input=bytes.fromhex(data_hex), capture_output=True, check=True)
    return r.stdout.decode().rsplit("= ", 1)[1].strip()


def check_vectors(failures):
    with open(os.path.join(HERE, "rr_vectors.json")) as f:
        v = json.load(f)

    def a(x):
        return ipaddress.IPv6Address(x).packed.hex()

    for r in v["rr"]:
        h = openssl_hmac(r["kcn"], a(r["hoa"]) + r["home_nonce"] + "00")[:16]
        c = openssl_hmac(r["kcn"], a(r["coa"]) + r["care_of_nonce"] + "01")[:16]
        got = {"home_keygen_token": h, "care_of_keygen_token": c, "kbm": openssl_sha1(h + c),
               "kbm_dereg": openssl_sha1(h),
               "bu_authenticator": openssl_hmac(r["kbm"], a(r["coa"]) + a(r["cn"]) + r["bu_mh_data"])[:24]}
        for k, x in got.items():
            if r[k] != x:
                failures.append("rr %s %s: openssl %s" % (r["name"], k, x))
        mh = r["bu_packet"][2 * 64:]  # IPv6 40 + Destination Options (HAO) 24 octets
        if mh[:8] + "0000" + mh[12:-24] != r["bu_mh_data"]:
            failures.append("rr %s: bu_mh_data is not the packet's MH with checksum zero" % r["name"])
    for r in v["rfc4285"]:
        x = openssl_hmac(r["key"], a(r["coa"]) + a(r["hoa"]) + r["mh_data"])[:24]
        if r["authenticator"] != x:
            failures.append("rfc4285 %s: openssl %s" % (r["name"], x))
    return len(v["rr"]) + len(v["rfc4285"])


def walk(obj, key):
    """All values of `key` anywhere in a tshark -T json layer tree."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.extend(v if isinstance(v, list) else [v])
            out.extend(walk(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(walk(v, key))
    return out


def tshark(path):
    res = subprocess.run(["tshark", "-r", path, "-T", "json", "-o", "tcp.check_checksum:TRUE",
                          "-o", "udp.check_checksum:TRUE"],
                         capture_output=True, text=True, check=True)
    return [p["_source"]["layers"] for p in json.loads(res.stdout)]


def summary(layers):
    sev = [int(s) for s in walk(layers, "_ws.expert.severity")]
    msgs = walk(layers, "_ws.expert.message")
    return {
        "mhtype": [int(x) for x in walk(layers, "mip6.mhtype")],
        "bad": bool(walk(layers, "_ws.malformed")) or any(s >= PI_WARN for s in sev),
        "messages": msgs,
        "icmpv6_ck": walk(layers, "icmpv6.checksum.status"),
        "tcp_ck": walk(layers, "tcp.checksum.status"),
    }


def check_fixtures(pcap, fixtures, failures, report):
    frames = tshark(os.path.join(HERE, pcap))
    assert len(frames) == len(fixtures), (pcap, len(frames), len(fixtures))
    for fx, layers in zip(fixtures, frames):
        s = summary(layers)
        exp = fx["expect"]
        if fx["malformed"]:
            if pcap == "mip6_fixtures.pcap":
                report.append((fx["name"], "; ".join(s["messages"]) or "(nothing: decodes without complaint)"))
            continue
        problems = []
        if s["bad"]:
            problems.append("expert/malformed: %s" % s["messages"])
        if "mh" in exp and s["mhtype"] != [exp["mh"]["type"]]:
            problems.append("mh type %s != %s" % (s["mhtype"], exp["mh"]["type"]))
        if "upper" in exp:
            ck = s["icmpv6_ck"] if exp["upper"]["next_header"] == 58 else s["tcp_ck"]
            if ck != ["1"]:  # 1 = PROTO_CHECKSUM_E_GOOD
                problems.append("upper checksum status %s" % ck)
        if problems:
            failures.append("%s %s: %s" % (pcap, fx["name"], problems))


def main():
    failures, report = [], []
    nvec = check_vectors(failures)
    with open(os.path.join(HERE, "mip6_fixtures.json")) as f:
        fixtures = json.load(f)
    for pcap in ("mip6_fixtures.pcap", "mip6_fixtures_eth.pcap"):
        check_fixtures(pcap, fixtures, failures, report)

    with open(os.path.join(HERE, "inspect_expected.json")) as f:
        ins = json.load(f)
    frames = tshark(os.path.join(HERE, ins["capture"]))
    assert len(frames) == len(ins["packets"])
    for e, layers in zip(ins["packets"], frames):
        s = summary(layers)
        if s["mhtype"] != [e["mh_type"]]:
            failures.append("inspect %d: mh type %s" % (e["index"], s["mhtype"]))
        if not e["malformed"] and s["bad"]:
            failures.append("inspect %d: %s" % (e["index"], s["messages"]))
        report.append(("inspect[%d]" % e["index"], "; ".join(s["messages"]) or "(clean)"))

    for name, msg in report:
        print("%-40s %s" % (name, msg))
    for f in failures:
        print("FAIL", f)
    valid = sum(not f["malformed"] for f in fixtures)
    print("openssl: %d vectors; tshark: %d valid fixtures x 2 captures + %d inspect packets; %d failures" % (
        nvec, valid, len(frames), len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
