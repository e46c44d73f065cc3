"""A CUDA job times a few spread layers' prefill attention, with few calls per replay when calls are long."""

import pytest

from sparsebench.attention.flex import PrefillLatency, calls_per_pass, spread_layers


def test_spread_layers_takes_first_middle_and_last_of_the_sparsified_layers():
    assert spread_layers(list(range(30)), 3) == (0, 15, 29)
    assert spread_layers(list(range(2, 30)), 3) == (2, 16, 29)  # Quest's dense layers 0-1 are not timed
    assert spread_layers(list(range(4)), 8) == (0, 1, 2, 3)  # fewer layers than asked: all
    assert spread_layers(list(range(30)), 0) == tuple(range(30))  # 0: every layer
    assert spread_layers(list(range(30)), 1) == (15,)


@pytest.mark.parametrize("call_ms,calls", [(0.026, 64), (0.5, 16), (0.8, 10), (2.8, 3), (20.0, 1)])
def test_calls_per_replay_fill_about_8_ms_and_stay_between_1_and_64(call_ms, calls):
    assert calls_per_pass(call_ms) == calls


def test_summary_scales_the_sampled_mean_to_every_sparsified_layer():
    lat = PrefillLatency(dtype=None, sample=(0, 15, 29), scale_to=30)
    lat.layers = {0: {"flex_ms": 1.0, "sdpa_ms": 3.0, "timing": "cuda_graph", "calls": 10},
                  15: {"flex_ms": 2.0, "sdpa_ms": 3.0, "timing": "cuda_graph", "calls": 10},
                  29: {"flex_ms": 3.0, "sdpa_ms": 3.0, "timing": "cuda_graph", "calls": 10}}
    s = lat.summary()
    assert s["flex_ms"] == pytest.approx(60.0) and s["sdpa_ms"] == pytest.approx(90.0)
    assert s["speedup"] == pytest.approx(1.5)
    assert s["layers_sampled"] == [0, 15, 29] and s["layers_total"] == 30


def test_layers_outside_the_sample_are_not_timed():
    import torch

    lat = PrefillLatency(dtype=torch.float16, sample=(0,))
    lat.measure(3, torch.zeros(1), None, None, None, 1.0)  # not in the sample: returns before touching inputs
    assert lat.layers == {}
