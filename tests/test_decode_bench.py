"""The end-to-end decode model: its step runs, and TEAL's thresholds zero the share they were calibrated for."""

import torch

from sparsebench.kernels.decode_bench import LINEARS, Model, ModelShape, calibrate_teal

TINY = ModelShape(hidden=64, intermediate=128, heads=4, head_dim=16, vocab=50)


def _model():
    return Model(TINY, layers=2, context=8, generator=torch.Generator().manual_seed(0))


def test_a_decode_step_gives_finite_logits_of_the_vocabulary():
    m = _model()
    logits = m.step(lambda i, n, a: torch.nn.functional.linear(a.float(), m.w[i][n].float()).half())
    assert logits.shape == (1, TINY.vocab) and logits.isfinite().all()


def test_teal_thresholds_zero_about_the_calibrated_share_of_every_linear_input():
    m = _model()
    th = calibrate_teal(m, 0.5, steps=4)
    assert set(th) == {(i, s) for i in range(2) for s, _ in LINEARS.values()}
    zeros = []
    m.step(lambda i, n, a: torch.nn.functional.linear(a.float(), m.w[i][n].float()).half(),
           record=lambda i, s, a: zeros.append(float((a.abs() < th[(i, s)]).float().mean())))
    assert 0.3 < sum(zeros) / len(zeros) < 0.7
