#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the independent fixtures in testdata/.

Standard library only. Deterministic: file names are the fixture names,
so regenerating leaves `git status` clean.

  packet targets (ipv6_chain, mh_packet, ip6ip6):  every fixture packet
  edit:            op byte | headroom | care-of address | packet, two ops each
  dest_opts, rh2, mh:  the header of that kind cut out of every fixture
  repr_roundtrip:  a few byte strings selecting each Repr kind
  inspect_pcap:    the three capture files (+ the scapy-generated one)
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTDATA = os.path.join(ROOT, "testdata")
SEEDS = os.path.join(HERE, "seeds")

COA = bytes.fromhex("20010db8000200000000000000000100")


def headers(pkt):
    """(kind, bytes) of every extension header and the upper layer."""
    out = []
    if len(pkt) < 40:
        return out
    nh, off = pkt[6], 40
    end = min(len(pkt), 40 + int.from_bytes(pkt[4:6], "big"))
    while off + 2 <= end:
        if nh in (0, 60, 43):
            ln = (pkt[off + 1] + 1) * 8
            kind = {0: "hbh", 60: "dest_opts", 43: "rh2"}[nh]
            out.append((kind, pkt[off:off + ln]))
            nh, off = pkt[off], off + ln
        elif nh == 135:
            ln = (pkt[off + 1] + 1) * 8
            out.append(("mh", pkt[off:off + ln]))
            break
        elif nh == 41:
            out.extend(headers(pkt[off:end]))
            break
        else:
            break
    return out


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def handoff_seeds():
    """Streams of [control][frame] for `handoff_msg` (see checks.rs)."""
    X = bytes.fromhex("20010db8000100000000000000000100")
    C = bytes.fromhex("20010db8000300000000000000000010")

    def frame(kind, body):
        return bytes([1, kind]) + len(body).to_bytes(2, "big") + body

    ident = (1).to_bytes(8, "big")
    token = bytes(range(8)) + (3).to_bytes(2, "big") + (1500).to_bytes(4, "big")
    prepare = frame(1, ident + C + X + (7).to_bytes(2, "big") + (1).to_bytes(4, "big") + b"\x01" + token)
    prepare_no_token = frame(1, (2).to_bytes(8, "big") + C + X + (9).to_bytes(2, "big")
                             + (1).to_bytes(4, "big") + b"\x00")
    cancel, done = frame(7, ident), frame(6, ident)
    tok = frame(10, C + token)
    load = frame(13, (5).to_bytes(4, "big") + (2).to_bytes(4, "big") + (1).to_bytes(2, "big")
                 + C + (250).to_bytes(4, "big"))
    drain = frame(12, b"\x02")
    write("handoff_msg", "prepare", prepare)
    write("handoff_msg", "stream_prepare_cancel", b"\x00" + prepare + b"\x04" + cancel + b"\x00" + cancel)
    write("handoff_msg", "stream_token_done", b"\x00" + prepare_no_token + b"\x00" + tok
          + b"\x28" + done + b"\x01" + load + b"\x02" + drain + b"\x00" + drain)
    write("handoff_msg", "stream_timeouts", b"\x00" + prepare + b"\xfc" + done + b"\xfc" + prepare)


def main():
    if os.path.isdir(SEEDS):
        shutil.rmtree(SEEDS)
    with open(os.path.join(TESTDATA, "mip6_fixtures.json")) as f:
        fixtures = json.load(f)
    for i, fx in enumerate(fixtures):
        name, pkt = fx["name"], bytes.fromhex(fx["hex"])
        for t in ("ipv6_chain", "mh_packet", "ip6ip6"):
            write(t, name, pkt)
        for op in sorted({i % 8, (i + 3) % 8}):
            write("edit", f"{name}.op{op}", bytes([op, 48]) + COA + pkt)
        seen = set()
        for kind, b in headers(pkt):
            if kind in ("dest_opts", "rh2", "mh") and kind not in seen:
                seen.add(kind)
                write(kind, name, b)
    for sel in range(5):
        write("repr_roundtrip", f"kind{sel}", bytes([sel]) + bytes(range(1, 120)))
    for cap in ("mip6_fixtures.pcap", "mip6_fixtures_eth.pcap", "inspect_capture.pcap",
                "inspect_scapy.pcap", "inspect_scapy.pcapng"):
        p = os.path.join(TESTDATA, cap)
        if os.path.exists(p):
            os.makedirs(os.path.join(SEEDS, "inspect_pcap"), exist_ok=True)
            shutil.copy(p, os.path.join(SEEDS, "inspect_pcap", cap))
    handoff_seeds()
    for t in sorted(os.listdir(SEEDS)):
        print(f"{t}: {len(os.listdir(os.path.join(SEEDS, t)))} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
