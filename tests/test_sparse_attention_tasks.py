"""Sparse-attention jobs on the real model (short sequences) and the generated passkey task."""

import pytest
import torch

from sparsebench import registry


def attention_job(method, sparsity, task="lm-smollm2-2k", **task_params):
    from sparsebench.params import params_dict
    from sparsebench.plan import Job

    tp = {"seq_len": 192, "sequences": 1, "continuation": 32, "query_block": 16, "batch_size": 1, **task_params}
    tparams = params_dict(registry.task(task).cls.build(tp, "t").params)
    mparams = params_dict(registry.method(method).cls.build({}, "m").params)
    return Job(task, method, "sparse_attention", {"sparsity": sparsity, "pattern": "unstructured"}, 0, "cpu",
               tparams, mparams)


@pytest.fixture(scope="module")
def quest_and_full(tmp_path_factory):
    from sparsebench.runner import run_job

    out = tmp_path_factory.mktemp("att")
    return (run_job(attention_job("quest-prefill", 0.75), out / "q.json"),
            run_job(attention_job("full-attention", 0.0), out / "f.json"))


def test_an_attention_job_measures_prefill_and_decode_apart_at_its_density(quest_and_full):
    quest, full = quest_and_full
    m = quest["metrics"]
    for phase in ("prefill", "decode"):
        assert m[f"density_{phase}"] == pytest.approx(0.25, abs=0.01)
        assert 0 < m[f"recall_{phase}"] < 1
        assert full["metrics"][f"density_{phase}"] == 1.0 and full["metrics"][f"recall_{phase}"] == pytest.approx(1.0)
        assert len(quest["sparsity"]["phases"][phase]["layers"]) == 30  # every decoder layer of SmolLM2
    # both phases score the same tokens, so full attention gives one perplexity for both
    assert full["metrics"]["perplexity_prefill"] == pytest.approx(full["metrics"]["perplexity_decode"], rel=1e-5)
    assert m["perplexity_decode"] != full["metrics"]["perplexity_decode"]


def test_a_quest_job_measures_only_decode_with_layers_0_and_1_dense(tmp_path):
    from sparsebench.runner import run_job

    quest = run_job(attention_job("quest", 0.75), tmp_path / "q.json")
    assert not any(k.endswith("_prefill") for k in quest["metrics"])  # Quest's prefill is dense: not measured
    decode = quest["sparsity"]["phases"]["decode"]
    assert set(quest["sparsity"]["phases"]) == {"decode"}
    assert decode["layers"]["0"].get("dense") and decode["layers"]["1"].get("dense")
    assert decode["sparse_layers_density"] == pytest.approx(0.25, abs=0.01)
    assert quest["metrics"]["density_decode"] == pytest.approx((2 + 28 * decode["sparse_layers_density"]) / 30)


def test_passkey_samples_hide_the_key_and_end_with_its_answer():
    task = registry.task("lm-smollm2-passkey").cls.build({"seq_len": 256, "sequences": 3}, "t")
    ids, prompt_len = task.cached_samples()
    again, _ = registry.task("lm-smollm2-passkey").cls.build({"seq_len": 256, "sequences": 3}, "t").cached_samples()
    assert torch.equal(ids, again) and ids.shape == (3, 256)
    tok = task.tokenizer
    for row in ids:
        text = tok.decode(row[: prompt_len + 1])
        answer = tok.decode(row[prompt_len + 1 :]).strip()
        assert len(answer) == 5 and answer.isdigit()
        assert f"The pass key is {answer}. Remember it." in text and text.endswith("The pass key is")
    assert task.targets().shape == (3, 6)  # " " and five digits
