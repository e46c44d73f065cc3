"""The GEMV ceiling's arithmetic (the timing itself runs on CUDA: python -m sparsebench.kernels.gemv_ceiling)."""

import pytest

from sparsebench.kernels.gemv_ceiling import summarise


def _rounds(**ms):
    return {k: list(v) for k, v in ms.items()}


def test_ratios_are_over_each_rounds_best_dense_and_a_ceiling_below_target_is_out_of_reach():
    # cuBLAS 13 us, Triton dense 10 us (best); ours 6.4 us (1.5625x); dense on half the bytes 6.0 us (1.667x)
    r = _rounds(cublas=[13.0, 13.1, 12.9, 13.0], triton=[10.0, 10.1, 9.9, 10.0],
                act_sparse_gemv=[6.4, 6.45, 6.35, 6.4], **{"cublas@act_sparse_gemv": [7.0] * 4,
                                                          "triton@act_sparse_gemv": [6.0, 6.05, 5.95, 6.0]})
    s = summarise(r)["act_sparse_gemv"]
    assert s["speedup"][0] == pytest.approx(10.0 / 6.4, rel=2e-3)
    assert s["ceiling"][0] == pytest.approx(10.0 / 6.0, rel=2e-3)
    assert s["verdict"] == "missed" and s["ceiling_verdict"] == "met"
    assert s["of_ceiling"] == pytest.approx(6.0 / 6.4, rel=3e-3)
    # the same kernel where dense on half the bytes gains only 1.25x: the target is out of reach there
    r["triton@act_sparse_gemv"] = [8.0, 8.1, 7.9, 8.0]
    r["cublas@act_sparse_gemv"] = [9.0] * 4
    assert summarise(r)["act_sparse_gemv"]["ceiling_verdict"] == "out of reach"


def test_a_ratio_whose_interval_straddles_the_target_is_inconclusive():
    r = _rounds(cublas=[10.0] * 4, triton=[11.0] * 4, gemv_2_4=[8.9, 9.3, 9.0, 9.2],
                **{"cublas@gemv_2_4": [6.0] * 4, "triton@gemv_2_4": [6.5] * 4})
    s = summarise(r)["gemv_2_4"]
    assert s["speedup"][1] < 1.1 < s["speedup"][2] and s["verdict"] == "inconclusive"
    assert "act_sparse_gemv" not in summarise(r)
