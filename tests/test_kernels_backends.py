"""A profile runs only the kernels whose backends it lists; the others are skipped, saying why."""

import dataclasses

from sparsebench.hardware import profile, profiles
from sparsebench.kernels.cases import ops
from sparsebench.kernels.suite import full_set, run_suite, small_set

CSR = "csr/smollm2-135m.up_proj/t1/d0.1"
GATHER = "act_sparse_gather/smollm2-135m.down_proj/t1/d0.3"
QUICK = {"warmup": 1, "repeats": 3, "rotate_mb": 1, "threads": 1}
PEAK = {"tflops": {"float32": 1.0}, "bandwidth_gbs": 1.0}  # given, so the test does not measure this CPU


def _cpu_without(*backends):
    cpu = profile("cpu")
    kept = tuple(b for b in cpu.backends if b not in backends)
    return dataclasses.replace(cpu, backends=kept, timing=QUICK, peak=PEAK)


def _rows(prof):
    return {r["id"]: r for r in run_suite(prof, "small", [CSR, GATHER], log=lambda msg: None)["rows"]}


def test_a_profile_without_csr_runs_no_csr_rows_and_says_why():
    rows = _rows(_cpu_without("csr"))
    assert rows[CSR]["status"] == "skipped" and "dense_ms" not in rows[CSR]
    assert "csr" in rows[CSR]["reason"] and "'cpu'" in rows[CSR]["reason"]
    assert rows[GATHER]["status"] == "ok"  # the other kernels still run


def test_a_kernel_whose_dense_twin_backend_is_missing_is_skipped_too():
    rows = _rows(_cpu_without("dense"))
    assert all(r["status"] == "skipped" and "dense" in r["reason"] for r in rows.values())


def test_the_shipped_cpu_profile_runs_its_whole_small_set():
    rows = _rows(dataclasses.replace(profile("cpu"), timing=QUICK, peak=PEAK))
    assert {r["status"] for r in rows.values()} == {"ok"}


def test_every_backend_a_profile_names_is_one_a_kernel_uses():
    used = {b for op in ops().values() for b in (op.backend, op.dense_backend)}
    for name, prof in profiles().items():
        assert prof.backends, f"hardware/{name}.yaml lists no backends"
        assert set(prof.backends) <= used, f"hardware/{name}.yaml: unknown backend(s) {set(prof.backends) - used}"


def test_each_profile_lists_the_backends_of_its_own_kernel_set():
    sets = {"small": small_set, "full": full_set}
    for name, prof in profiles().items():
        needed = {b for c in sets[prof.kernels]() for b in (ops()[c.op].backend, ops()[c.op].dense_backend)}
        assert needed <= set(prof.backends), f"hardware/{name}.yaml misses {needed - set(prof.backends)}"
