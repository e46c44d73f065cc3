"""Merge re-measured suite rows into a measurements file: rows of the same id replaced, the rest kept.

    python3 bench/merge_kernel_rows.py --base hardware/baselines/h200_measurements.json --new a.json b.json \
        --commit <sha> --rows-commits '{"<sha>": "<ids>", "<older sha>": "every other row"}' --note "<how>" \
        --out merged.json

The merged file's ``environment`` is the new run's, with ``commit`` set to the code that ran, ``commit_note``
saying how the rows were measured and ``rows_commits`` which rows come from which commit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def merge(base: dict, news: list[dict], commit: str, rows_commits: dict, note: str) -> dict:
    fresh = {r["id"]: r for doc in news for r in doc["rows"]}
    rows = [fresh.pop(r["id"], r) for r in base["rows"]] + list(fresh.values())
    env = dict(news[0]["environment"], commit=commit, dirty=False, commit_note=note, rows_commits=rows_commits)
    return base | {"environment": env, "created": news[0]["created"], "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--new", nargs="+", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--rows-commits", required=True, help="JSON: commit -> which rows come from it")
    ap.add_argument("--note", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    base = json.loads(Path(a.base).read_text())
    news = [json.loads(Path(p).read_text()) for p in a.new]
    doc = merge(base, news, a.commit, json.loads(a.rows_commits), a.note)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(doc['rows'])} rows ({sum(len(d['rows']) for d in news)} re-measured) -> {a.out}")


if __name__ == "__main__":
    main()
