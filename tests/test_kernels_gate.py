"""The kernel-speed gate: it passes on an unchanged run and fails, naming the kernel, when one is slowed."""

import dataclasses
import json

import pytest

from sparsebench.cli import main
from sparsebench.hardware import profile
from sparsebench.kernels import linear_cases
from sparsebench.kernels.gate import check, make_baseline
from sparsebench.kernels.suite import run_suite

CSR = "csr/smollm2-135m.up_proj/t1/d0.1"
GATHER = "act_sparse_gather/smollm2-135m.down_proj/t1/d0.3"
IDS = [CSR, GATHER]


def _run(ids=IDS):
    return run_suite(profile("cpu"), "small", ids, log=lambda msg: None)


@pytest.fixture(scope="module")
def first_run():
    return _run()


def _slow_down(monkeypatch, op: str, factor: int = 12):
    """Replace ``op``'s sparse kernel with one that does its work ``factor`` times (a real slowdown)."""
    original = linear_cases.OPS[op]

    def build(case, env):
        bench = original.build(case, env)
        fast = bench.sparse

        def slow(i):
            for _ in range(factor - 1):
                fast(i)
            return fast(i)

        bench.sparse = slow
        return bench

    monkeypatch.setitem(linear_cases.OPS, op, dataclasses.replace(original, build=build))


def test_gate_passes_on_an_unchanged_rerun(first_run):
    baseline = make_baseline(first_run, tolerance=0.6)
    assert set(baseline["kernels"]) == set(IDS)
    assert check(_run(), baseline) == []


def test_gate_fails_naming_only_the_kernel_slowed_on_purpose(first_run, monkeypatch):
    baseline = make_baseline(first_run, tolerance=0.6)
    _slow_down(monkeypatch, "csr")
    failures = check(_run(), baseline)
    assert [f.id for f in failures] == [CSR]
    assert "below" in str(failures[0]) or "<" in str(failures[0])


def test_check_command_exits_nonzero_and_names_the_slowed_kernel(first_run, monkeypatch, tmp_path, capsys):
    base = tmp_path / "cpu.json"
    base.write_text(json.dumps(make_baseline(first_run, tolerance=0.6)))
    _slow_down(monkeypatch, "csr")
    assert main(["kernels", "check", "--profile", "cpu", "--baseline", str(base)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and CSR in out and GATHER not in out


def test_gate_fails_when_a_baseline_kernel_no_longer_runs(first_run):
    baseline = make_baseline(first_run, tolerance=0.6)
    broken = dict(first_run, rows=[dict(r, status="error", reason="RuntimeError: boom") if r["id"] == GATHER else r
                                   for r in first_run["rows"]])
    assert [f.id for f in check(broken, baseline)] == [GATHER]
    missing = dict(first_run, rows=[r for r in first_run["rows"] if r["id"] != CSR])
    assert [f.id for f in check(missing, baseline)] == [CSR]


def test_gate_compares_speedups_not_absolute_times(first_run):
    """A uniformly slower machine (dense and sparse both 3x slower) passes."""
    baseline = make_baseline(first_run, tolerance=0.1)
    slower = dict(first_run, rows=[dict(r, dense_ms=3 * r["dense_ms"], sparse_ms=3 * r["sparse_ms"])
                                   for r in first_run["rows"]])
    assert check(slower, baseline) == []


def test_committed_cpu_baseline_names_kernels_of_the_small_set(root):
    from sparsebench.kernels.suite import small_set

    base = json.loads((root / "hardware" / "baselines" / "cpu.json").read_text())
    assert base["profile"] == "cpu" and 0 < base["tolerance"] < 1
    assert set(base["kernels"]) <= {c.id for c in small_set()}


def test_check_only_gates_the_chosen_baseline_kernels(first_run, monkeypatch, tmp_path, capsys):
    base = tmp_path / "cpu.json"
    base.write_text(json.dumps(make_baseline(first_run, tolerance=0.6)))
    _slow_down(monkeypatch, "csr")
    assert main(["kernels", "check", "--profile", "cpu", "--baseline", str(base), "--only", "act_sparse"]) == 0
    assert "1 kernels" in capsys.readouterr().out
