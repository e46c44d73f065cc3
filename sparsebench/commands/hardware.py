"""sparsebench hardware detect | peaks: which profile this machine is, and its peaks."""

from __future__ import annotations

import json


def register(sub):
    p = sub.add_parser("hardware", help="hardware profiles: detect this machine's, show peaks")
    hs = p.add_subparsers(dest="hardware_command", required=True, metavar="ACTION")
    d = hs.add_parser("detect", help="print the hardware profile this machine matches")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=detect)
    k = hs.add_parser("peaks", help="peak FLOP/s and bandwidth of a profile (the cpu profile measures and caches)")
    k.add_argument("--profile", default=None, help="default: the detected profile")
    k.set_defaults(func=peaks)


def detect(args) -> int:
    from sparsebench.hardware import detect as detect_profile, profiles

    found = detect_profile()
    if args.json:
        print(json.dumps({"profile": found.name, "available": {n: p.available()[0] for n, p in profiles().items()}}))
        return 0
    print(found.name)
    for name, prof in profiles().items():
        ok, why = prof.available()
        print(f"  {name:<8} {'available' if ok else 'not here: ' + why}")
    return 0


def peaks(args) -> int:
    from sparsebench.hardware import detect as detect_profile, profile

    prof = profile(args.profile, "--profile") if args.profile else detect_profile()
    p = prof.peaks()
    print(f"{prof.name}: {p['flops'] / 1e12:.3f} TFLOP/s ({prof.dtype}), {p['bandwidth'] / 1e9:.1f} GB/s [{p['source']}]")
    return 0
