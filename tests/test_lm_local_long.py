"""lm-local-long: the long-context perplexity task on a local checkpoint and local text, offline."""

import pytest

from local_lm_fixture import write_checkpoint, write_text
from sparsebench import registry
from sparsebench.params import params_dict
from sparsebench.plan import Job


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    d = tmp_path_factory.mktemp("local_long")
    text = write_text(d / "text", n_files=6)
    return write_checkpoint(d / "ckpt", text), text


def job(ckpt, text, method="quest-prefill", sparsity=0.75, **over):
    tp = {"model": str(ckpt), "text": str(text), "seq_len": 160, "sequences": 1, "continuation": 32,
          "query_block": 16, "batch_size": 1, **over}
    tparams = params_dict(registry.task("lm-local-long").cls.build(tp, "t").params)
    mparams = params_dict(registry.method(method).cls.build({}, "m").params)
    return Job("lm-local-long", method, "sparse_attention", {"sparsity": sparsity, "pattern": "unstructured"}, 0,
               "cpu", tparams, mparams)


def test_a_sparse_attention_job_runs_on_a_local_checkpoint_and_text(local, tmp_path):
    from sparsebench.runner import run_job

    ckpt, text = local
    r = run_job(job(ckpt, text), tmp_path / "r.json")
    for phase in ("prefill", "decode"):
        assert r["metrics"][f"density_{phase}"] == pytest.approx(0.25, abs=0.01)
        assert 0 < r["metrics"][f"recall_{phase}"] <= 1
        assert r["sparsity"]["phases"][phase]["recall_rows_total"] > 0
    assert r["data"]["seq_len"] == 160 and r["data"]["text"]["source"] == "local"
    assert set(r["extra"]["load_parts_s"]) == {"import_transformers", "prepare_source", "from_pretrained", "place"}
    parts = r["extra"]["job_parts_s"]  # where the time outside the family's timers goes
    assert set(parts) == {"registry", "hardware_check", "task_build", "method_and_family", "cuda_context",
                          "family_run"}
    assert sum(parts.values()) <= r["timings"]["total_s"] and parts["family_run"] >= r["timings"]["load_s"]


def test_the_checkpoint_and_the_text_are_in_the_run_id(local, tmp_path):
    ckpt, text = local
    a = job(ckpt, text)
    assert a.task_params["model_sha256"] and a.task_params["text_sha256"]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text((text / sorted(p.name for p in text.iterdir())[0]).read_text() + "\n#")
    assert job(ckpt, tmp_path / "t").run_id != a.run_id


def test_bad_paths_name_the_key(tmp_path, local):
    ckpt, text = local
    with pytest.raises(Exception, match="model"):
        registry.task("lm-local-long").cls.build({"model": str(tmp_path / "none"), "text": str(text)}, "t")
    with pytest.raises(Exception, match="text"):
        registry.task("lm-local-long").cls.build({"model": str(ckpt), "text": str(tmp_path / "none")}, "t")


def test_too_short_a_text_says_how_many_files_were_long_enough(local, tmp_path):
    from sparsebench.runner import run_job

    ckpt, text = local
    with pytest.raises(ValueError, match="files of >= 100000 tokens"):
        run_job(job(ckpt, text, seq_len=100000, continuation=32), tmp_path / "r.json")
