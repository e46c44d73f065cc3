"""sparsebench claims: validate claims/*.yaml and print the scorecard on stored results."""

from __future__ import annotations

from pathlib import Path


def register(sub):
    p = sub.add_parser("claims", help="check the papers' claims (claims/*.yaml) on stored results; reruns nothing")
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--claims", default=None, help="claims directory (default: <project>/claims)")
    p.add_argument("--validate", action="store_true", help="only validate the claim files")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsebench.claims import load_claims
    from sparsebench.verdicts import scorecard
    from sparsebench.report.build import default_claims_dir
    from sparsebench.report.scorecard import counts_line

    claims_dir = Path(args.claims) if args.claims else default_claims_dir()
    claims = load_claims(claims_dir)
    if args.validate:
        print(f"{len(claims)} claims in {claims_dir}: valid")
        return 0
    from sparsebench.report.summary import load_summary

    verdicts = scorecard(claims, load_summary(Path(args.results)), Path(args.results))
    for v in verdicts:
        print(f"[{v.status:^12}] {v.claim.id}: {v.claim.statement}")
        print(f"{'':15}{v.reason}")
        for cmp in v.comparisons:
            print(f"{'':15}- {cmp.describe(v.claim)}")
    print(counts_line(verdicts))
    return 0
