"""The RULER-style generated tasks: deterministic, answers in the prompt, scored on greedy generation."""

import pytest
import torch

from sparsebench import registry
from sparsebench.attention.ruler import KINDS, string_match_all


_TOKENIZER = []


def build(kind, **params):
    name = f"lm-smollm2-ruler-{kind.replace('_', '-')}-4k"
    task = registry.task(name).cls.build({"seq_len": 1024, "sequences": 3, **params}, "t")
    if not _TOKENIZER:
        _TOKENIZER.append(task.tokenizer)
    task._tokenizer = _TOKENIZER[0]  # one load of the model for the whole file
    return task


@pytest.mark.parametrize("kind", KINDS)
def test_ruler_samples_are_deterministic_and_hold_every_answer_in_their_prompt(kind):
    task = build(kind)
    samples = task.ruler_samples()
    again = build(kind).ruler_samples()
    assert [s.ids for s in samples] == [s.ids for s in again]
    assert [s.id for s in samples] == [f"{kind}-{1024 - task.max_new_tokens()}-{i}" for i in range(3)]
    assert len({tuple(s.ids) for s in samples}) == 3  # the samples differ
    other_seed = build(kind, seed=7).ruler_samples()
    assert [s.ids for s in other_seed] != [s.ids for s in samples]
    room = 1024 - task.max_new_tokens()
    for s in samples:
        text = task.tokenizer.decode(s.ids)
        assert s.answers and all(a in text for a in s.answers)
        assert len(s.ids) <= room
        if kind not in ("cwe", "fwe"):
            assert len(s.ids) == room  # needle prompts fill the length exactly
        else:
            assert len(s.ids) > room - 64  # lists fill it up to a last item
        assert 0 <= s.chance < 1


def test_multikey_needles_carry_distractor_keys_and_only_the_asked_value_is_the_answer():
    task = build("niah_multikey")
    for s in task.ruler_samples():
        text = task.tokenizer.decode(s.ids)
        assert text.count("One of the special magic numbers for") == 4 and len(s.answers) == 1
        assert s.chance == pytest.approx(0.25)


def test_common_words_appear_thirty_times_and_frequent_words_lead_the_counts():
    cwe = build("cwe", seq_len=4096, sequences=1)
    s = cwe.ruler_samples()[0]
    lines = cwe.tokenizer.decode(s.ids).split("\n")
    items = [line.split(". ", 1)[1] for line in lines if line[:1].isdigit() and ". " in line]
    assert all(items.count(w) == 30 for w in s.answers)
    assert max(items.count(w) for w in set(items) - set(s.answers)) == 3
    fwe = build("fwe")
    s = fwe.ruler_samples()[0]
    body = fwe.tokenizer.decode(s.ids).split("coded words.\n", 1)[1].split("\nQuestion:")[0]
    words = body.split(" .... ")
    counts = sorted((words.count(w) for w in set(words)), reverse=True)
    assert sorted((words.count(w) for w in s.answers), reverse=True) == counts[:3] and counts[2] > counts[3]


def test_string_match_all_scores_the_share_of_answers_found():
    assert string_match_all(" 123 and 456.", ["123", "456"]) == 1.0
    assert string_match_all("ABC", ["abc", "xyz"]) == 0.5


def test_bad_ruler_parameters_name_the_key():
    with pytest.raises(Exception, match="haystack"):
        build("vt", haystack="essays")
    with pytest.raises(Exception, match="batch_size"):
        build("vt", batch_size=2)


def test_a_ruler_job_scores_greedy_answers_per_phase_and_records_samples(tmp_path):
    from sparsebench.params import params_dict
    from sparsebench.plan import Job
    from sparsebench.runner import run_job

    task = "lm-smollm2-ruler-niah-single-4k"
    tp = params_dict(registry.task(task).cls.build({"seq_len": 512, "sequences": 2, "query_block": 16}, "t").params)
    mp = params_dict(registry.method("full-attention").cls.build({}, "m").params)
    result = run_job(Job(task, "full-attention", "sparse_attention", {"sparsity": 0.0, "pattern": "unstructured"},
                         0, "cpu", tp, mp), tmp_path / "r.json")
    m = result["metrics"]
    for phase in ("prefill", "decode"):
        rec = result["samples"][f"accuracy_{phase}"]
        assert rec["unit"] == "sample" and rec["statistic"] == "mean"
        assert rec["ids"] == ["niah_single-480-0", "niah_single-480-1"]  # 512 - 32 tokens of answer room
        assert m[f"accuracy_{phase}"] == pytest.approx(sum(rec["values"]) / 2)
        assert m[f"density_{phase}"] == 1.0 and m[f"chance_{phase}"] == 0.0
    # full attention: both phases answer the same prompts with the same dense attention
    assert m["accuracy_prefill"] == m["accuracy_decode"]
