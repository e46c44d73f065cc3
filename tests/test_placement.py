"""Hardware profiles drive every job: the profile's device and dtype reach the model, results record what
ran, offloaded (block-at-a-time) pruning gives the masks of in-memory pruning."""

import copy
import dataclasses

import pytest
import torch

from local_lm_fixture import local_task_params, write_checkpoint, write_text
from sparsebench import registry
from sparsebench.pruning.pipeline import prune_sequentially
from sparsebench.errors import ConfigError
from sparsebench.hardware import profile
from sparsebench.params import params_dict
from sparsebench.placement import Placement, place, streamed
from sparsebench.plan import Job
from sparsebench.runner import run_job
from sparsebench.targets import Target
from test_pruning_calibration import context, tiny_llama

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def local_lm(tmp_path_factory):
    d = tmp_path_factory.mktemp("local")
    text = write_text(d / "text")
    return write_checkpoint(d / "ckpt", text), text


@pytest.fixture
def bf16_cpu(monkeypatch):
    """The ``cpu`` profile asking for bfloat16, as the runner sees it."""
    bf16 = dataclasses.replace(profile("cpu"), name="cpu", dtype="bfloat16")
    monkeypatch.setattr("sparsebench.runner.profile", lambda name, where="": bf16)
    return bf16


def job(task, method, target, task_params, family=None):
    entry = registry.method(method)
    tparams = params_dict(registry.task(task).cls.build(task_params, "t").params)
    return Job(task, method, family or entry.family, target, 0, "cpu", tparams, params_dict(entry.cls.Params()))


def offload_vs_in_memory(method_name, target, device, dtype=torch.float32):
    """Masks and weights of block-at-a-time pruning (weights on the host) and of the whole model on ``device``."""
    out = []
    for offload in (False, True):
        model = tiny_llama().to(dtype)
        method = registry.method(method_name).cls()
        ctx = context(method, target)
        blocks = model.model.layers
        place(model, Placement(torch.device(device), dtype), blocks if offload else None)
        layers = ctx.task.prunable_layers(model)
        masks, _ = prune_sequentially(ctx, model, layers, offload=offload)
        out.append(({k: v.cpu() for k, v in masks.items()},
                    {k: m.weight.detach().cpu().clone() for k, m in layers.items()}, model))
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method_name,pattern", [("sparsegpt", "unstructured"), ("sparsegpt", "2:4"),
                                                 ("wanda", "unstructured"), ("wanda", "4:8")])
def test_offloaded_pruning_gives_the_masks_and_weights_of_in_memory_pruning(method_name, pattern, device):
    target = Target.from_config({"sparsity": 0.5} if pattern == "unstructured" else {"pattern": pattern})
    (m_mem, w_mem, _), (m_off, w_off, model) = offload_vs_in_memory(method_name, target, device)
    assert set(m_mem) == set(m_off)
    for name in m_mem:
        assert torch.equal(m_mem[name], m_off[name]), name
        torch.testing.assert_close(w_mem[name], w_off[name], rtol=0, atol=0)
    # offloaded: the blocks, final norm and LM head are back on the host, the input embedding on the device
    assert all(p.device.type == "cpu" for p in model.model.layers.parameters())
    assert model.lm_head.weight.device.type == "cpu" and model.model.norm.weight.device.type == "cpu"
    assert model.model.embed_tokens.weight.device.type == device


def test_streamed_blocks_evaluate_like_the_model_in_memory():
    model = tiny_llama()
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(1))
    want = model(ids).logits
    place(model, Placement(torch.device(DEVICES[-1]), torch.float32), model.model.layers)
    with torch.no_grad(), streamed(model, model.model.layers, torch.device(DEVICES[-1])):
        got = model(ids.to(DEVICES[-1])).logits.cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_pruning_job_runs_in_the_profiles_dtype_and_records_it(local_lm, bf16_cpu, tmp_path):
    ckpt, text = local_lm
    seen = []
    real = registry.method("wanda").cls.prune_layer

    def spy(self, layer, target):
        seen.append(layer.weight.dtype)
        return real(self, layer, target)

    mp = pytest.MonkeyPatch()
    mp.setattr(registry.method("wanda").cls, "prune_layer", spy)
    try:
        r = run_job(job("lm-local", "wanda", {"sparsity": 0.5, "pattern": "unstructured"},
                        local_task_params(ckpt, text)), tmp_path / "r.json")
    finally:
        mp.undo()
    assert seen and set(seen) == {torch.bfloat16}
    assert r["placement"]["dtype"] == "bfloat16" and r["placement"]["device"] == "cpu"
    assert r["placement"]["offloaded"] is False
    assert abs(r["sparsity"]["measured"] - 0.5) < 1e-6


def test_an_activation_job_runs_in_the_profiles_dtype(local_lm, bf16_cpu, tmp_path):
    ckpt, text = local_lm
    r = run_job(job("lm-local", "teal", {"sparsity": 0.0, "pattern": "unstructured"},
                    local_task_params(ckpt, text)), tmp_path / "a.json")
    assert r["placement"]["dtype"] == "bfloat16"


def test_an_attention_job_runs_in_the_profiles_dtype(bf16_cpu, tmp_path):
    tp = {"seq_len": 96, "sequences": 1, "continuation": 16, "query_block": 16, "batch_size": 1,
          "prompt_cache": False}
    r = run_job(job("lm-smollm2-2k", "full-attention", {"sparsity": 0.0, "pattern": "unstructured"}, tp),
                tmp_path / "att.json")
    assert r["placement"]["dtype"] == "bfloat16" and r["placement"]["device"] == "cpu"


def test_sparse_training_autocasts_to_the_profiles_dtype(bf16_cpu, tmp_path, monkeypatch):
    seen = []
    real = torch.nn.Conv2d.forward

    def spy(self, x):
        out = real(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    tp = {"channels": [4, 4, 8, 8], "epochs": 1, "batch_size": 256}
    r = run_job(job("vision-digits", "static-random-erk", {"sparsity": 0.8, "pattern": "unstructured"}, tp),
                tmp_path / "t.json")
    convs = sum(1 for s in seen[:64] if s == torch.float32)  # the FLOP count's one float32 forward comes first
    assert seen[:convs] == [torch.float32] * convs and set(seen[convs:]) == {torch.bfloat16}
    assert r["placement"]["autocast"] == "bfloat16" and r["placement"]["dtype"] == "float32"


def test_a_job_on_a_profile_this_machine_lacks_is_refused_not_run_on_the_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    j = dataclasses.replace(job("vision-digits", "dense-train", {"sparsity": 0.0, "pattern": "unstructured"},
                                {"epochs": 1}), hardware="h200")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        run_job(j, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_a_family_that_never_places_its_model_cannot_record_a_gpu_profile(monkeypatch, tmp_path):
    gpu = dataclasses.replace(profile("cpu"), name="fake-gpu", device="cuda")
    monkeypatch.setattr("sparsebench.runner.profile", lambda name, where="": gpu)
    monkeypatch.setattr(type(gpu), "available", lambda self: (True, ""))
    monkeypatch.setattr("torch.cuda.reset_peak_memory_stats", lambda *a: None)
    fam = registry.families()["sparse_training"].module
    monkeypatch.setattr(fam, "run", lambda ctx: {"metrics": {}, "sparsity": {}})
    with pytest.raises(RuntimeError, match="never placed its model"):
        run_job(job("vision-digits", "dense-train", {"sparsity": 0.0, "pattern": "unstructured"}, {"epochs": 1}),
                tmp_path / "y.json")


# -- lm-local: bad input is refused when the config is read, naming the key and the path --------------------

def build_local(**params):
    return registry.task("lm-local").cls.build(params, "tasks.lm-local")


def test_lm_local_refuses_a_missing_checkpoint_directory(local_lm, tmp_path):
    _, text = local_lm
    with pytest.raises(ConfigError, match=r"tasks.lm-local: model='.*nope': no such directory"):
        build_local(model=str(tmp_path / "nope"), text=str(text))


def test_lm_local_refuses_a_directory_that_is_not_a_causal_lm(local_lm, tmp_path):
    _, text = local_lm
    (tmp_path / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(ConfigError, match=r"model=.*model_type 'vit'.*not a causal LM"):
        build_local(model=str(tmp_path), text=str(text))


def test_lm_local_refuses_a_text_path_without_text_files(local_lm, tmp_path):
    ckpt, _ = local_lm
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(ConfigError, match=r"text=.*no text files in it"):
        build_local(model=str(ckpt), text=str(tmp_path))


def test_lm_local_refuses_a_jsonl_field_its_records_lack(local_lm, tmp_path):
    from local_lm_fixture import write_jsonl

    ckpt, _ = local_lm
    f = write_jsonl(tmp_path / "c4.jsonl", [{"content": "a b c"}])
    with pytest.raises(ConfigError, match=r"text_field='text' is not a field of the records in .*c4.jsonl"):
        build_local(model=str(ckpt), text=str(f))


def test_lm_local_run_id_follows_the_content_of_checkpoint_and_text(local_lm, tmp_path):
    import shutil

    ckpt, text = local_lm
    copy_text = tmp_path / "text"
    shutil.copytree(text, copy_text)
    a = build_local(model=str(ckpt), text=str(copy_text)).params
    first = sorted(copy_text.iterdir())[0]
    first.write_text(first.read_text() + "\nchanged\n")
    b = build_local(model=str(ckpt), text=str(copy_text)).params
    assert a.model_sha256 == b.model_sha256 and a.text_sha256 != b.text_sha256
    with pytest.raises(ConfigError, match="changed after this job was planned"):
        build_local(**params_dict(a))  # a planned job whose text changed since is refused


def test_auto_hardware_plans_jobs_under_this_machines_profile():
    from sparsebench.hardware import detect
    from sparsebench.plan import runnable_profiles

    assert runnable_profiles(["auto"], log=None) == [detect().name]
    if not torch.cuda.is_available():
        assert detect().name == "cpu"


def test_the_sparsegpt_wanda_paper_preset_validates_and_plans_on_local_fixtures(local_lm, tmp_path):
    import yaml

    from sparsebench.config import validate_config
    from sparsebench.plan import plan_jobs

    ckpt, text = local_lm
    cfg = yaml.safe_load(open("config/paper/sparsegpt-wanda.yaml"))
    t = cfg["tasks"]["lm-local"]
    assert (t["window"], t["calibration_window"], t["calibration_windows"]) == (2048, 2048, 128)
    t.update(model=str(ckpt), text=str(text), calibration_text=str(text))
    jobs = plan_jobs(validate_config(cfg, "sparsegpt-wanda.yaml"), log=None)
    labels = sorted({(j.method, j.target.get("pattern"), j.target.get("sparsity")) for j in jobs})
    assert len(jobs) == 1 + 3 * 3  # dense once; magnitude, wanda, sparsegpt at 50 %, 2:4, 4:8
    assert {j.task_params["model_sha256"] for j in jobs} and all(j.task_params["text_sha256"] for j in jobs)
    assert labels


def test_the_rigl_cifar10_paper_preset_plans_five_seeds_of_the_papers_schedule():
    import yaml

    from sparsebench.config import validate_config
    from sparsebench.plan import plan_jobs

    cfg = yaml.safe_load(open("config/paper/rigl-cifar10.yaml"))
    jobs = plan_jobs(validate_config(cfg, "rigl-cifar10.yaml"), log=None)
    rigl = [j for j in jobs if j.method == "rigl"]
    assert sorted({j.seed for j in rigl}) == [0, 1, 2, 3, 4] and len(rigl) == 5 * 2
    assert rigl[0].method_params["delta_t"] == 100 and rigl[0].method_params["alpha"] == 0.3
    assert rigl[0].task_params["epochs"] == 250


def test_the_sparse_frontier_paper_preset_validates_and_plans_the_suite_at_16k_and_32k(local_lm):
    import yaml

    from sparsebench.attention.ruler import KINDS
    from sparsebench.config import validate_config
    from sparsebench.plan import plan_jobs

    ckpt, _ = local_lm
    cfg = yaml.safe_load(open("config/paper/sparse-frontier.yaml"))
    assert len(cfg["tasks"]) == 2 * len(KINDS)
    for name in cfg["tasks"]:
        cfg["tasks"][name] = {**cfg["tasks"][name], "model": str(ckpt)}
    jobs = plan_jobs(validate_config(cfg, "sparse-frontier.yaml"), log=None)
    assert {j.task for j in jobs} == set(cfg["tasks"])
    assert {j.task_params["seq_len"] for j in jobs} == {16384, 32768}
    assert all(j.task_params["sequences"] >= 100 for j in jobs)
    assert len({j.task_params["model_sha256"] for j in jobs}) == 1 and jobs[0].task_params["model_sha256"]
    assert {"quest", "vertical-slash", "full-attention"} <= {j.method for j in jobs}


def test_the_sparse_frontier_preset_names_the_checkpoint_key_when_its_directory_is_missing(tmp_path):
    import yaml

    from sparsebench.config import validate_config
    from sparsebench.errors import ConfigError

    cfg = yaml.safe_load(open("config/paper/sparse-frontier.yaml"))
    for name in cfg["tasks"]:
        cfg["tasks"][name] = {**cfg["tasks"][name], "model": str(tmp_path / "no-such-ckpt")}
    with pytest.raises((ConfigError, ValueError), match="model=.*no-such-ckpt.*no such directory"):
        validate_config(cfg, "sparse-frontier.yaml")


def test_a_device_visit_returns_unchanged_weights_by_reference_and_copies_changed_ones():
    from sparsebench.placement import visit_device

    lin = torch.nn.Linear(4, 3)
    weight, bias_before = lin.weight.data, lin.bias.data.clone()
    visit = visit_device(lin, torch.device("cpu"))
    lin.bias.data.add_(1.0)  # changed while visiting (as SparseGPT's update)
    lin.register_buffer("made_there", torch.ones(2))
    visit.back()
    assert lin.weight.data_ptr() == weight.data_ptr()  # unchanged: the host storage itself
    assert torch.equal(lin.bias.data, torch.ones(3) + bias_before)
    assert lin.made_there.device.type == "cpu"
