"""Where a calibrated pruning job keeps its model on an accelerator: as the method's authors do (SparseGPT
offloads block by block; Wanda and the codebases built on it keep the whole model on the device when it
fits), unless the hardware profile's ``offload`` forces it; the result says why."""

import types

import pytest
import torch

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.families.pruning import offloads
from sparsebench.hardware import load_profile, profile
from sparsebench.placement import decide_offload
from test_pruning_calibration import tiny_llama

GIB = 2**30


def test_auto_follows_the_authors_and_offloads_what_does_not_fit():
    assert decide_offload("auto", "offload", 1 * GIB, 100 * GIB)[0] is True
    assert decide_offload("auto", "resident", 13 * GIB, 139 * GIB)[0] is False
    off, why = decide_offload("auto", "resident", 130 * GIB, 139 * GIB)  # a 70B model in float16
    assert off is True and "130.0 GiB" in why and "139.0 GiB" in why


@pytest.mark.parametrize("authors", ["offload", "resident"])
def test_the_profile_forces_offloading_on_or_off(authors):
    assert decide_offload("always", authors, 1, 100 * GIB) == (True, "profile offload=always")
    assert decide_offload("never", authors, 500 * GIB, 100 * GIB) == (False, "profile offload=never")


def test_sparsegpt_offloads_like_its_authors_and_wanda_stays_resident():
    assert registry.method("sparsegpt").cls.authors_placement == "offload"
    for name in ("wanda", "dsnot", "owl", "ria", "flap"):
        assert registry.method(name).cls.authors_placement == "resident", name


def test_a_profile_with_an_unknown_offload_mode_names_key_value_and_choices(tmp_path):
    p = tmp_path / "gpu.yaml"
    p.write_text("device: cuda\ndtype: float16\noffload: sometimes\n")
    with pytest.raises(ConfigError, match=r"gpu.yaml: offload='sometimes'; allowed: auto, always, never"):
        load_profile(p)
    assert profile("h200").offload == "auto"


def fake_cuda_context(method: str, mode: str):
    prof = types.SimpleNamespace(offload=mode)
    task = types.SimpleNamespace(decoder_blocks=lambda m: m.model.layers)
    return types.SimpleNamespace(device=torch.device("cuda"), dtype=torch.float16, profile=prof, task=task,
                                 method=registry.method(method).cls(), extra={})


def _fp16_bytes(model) -> int:
    return sum(p.numel() for p in model.parameters()) * 2


@pytest.mark.parametrize("method,free_over_fp16,want", [
    ("wanda", 2.01, False),  # fits in half the free memory in float16 (it would not in float32)
    ("wanda", 1.99, True),
    ("sparsegpt", 1000, True),
])
def test_the_job_decides_from_its_weights_in_the_profiles_dtype_and_records_why(monkeypatch, method,
                                                                                free_over_fp16, want):
    model = tiny_llama()  # float32 parameters; the profile asks for float16
    free = int(free_over_fp16 * _fp16_bytes(model))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    ctx = fake_cuda_context(method, "auto")
    assert offloads(ctx, model) is want
    assert ctx.extra["offload_reason"]


def test_no_offloading_on_the_cpu_or_without_calibration():
    ctx = fake_cuda_context("wanda", "always")
    ctx.device = torch.device("cpu")
    assert offloads(ctx, tiny_llama()) is False and "offload_reason" not in ctx.extra
    ctx = fake_cuda_context("magnitude", "always")
    assert offloads(ctx, tiny_llama()) is False
