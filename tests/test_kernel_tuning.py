"""The kernel tuner chooses by measurement: no favourite config, close calls decided by interleaved re-timing."""

import pytest

from sparsebench.kernels.tuning import pick_fastest, tune


def _final(times):
    seen = []

    def final(cfgs):
        seen.append(list(cfgs))
        return [times[c] for c in cfgs]
    return final, seen


def test_the_first_config_gets_no_margin_a_faster_later_one_wins():
    # one pass: "new" is 3 % faster (the old tuner's margin kept "old"); interleaved it stays faster
    final, seen = _final({"old": 10.0, "new": 9.7})
    assert pick_fastest(["old", "new"], {"old": 10.0, "new": 9.7}.get, final) == "new"
    assert seen == [["new", "old"]]


def test_the_interleaved_rounds_decide_between_close_screened_configs():
    screen = {"a": 9.0, "b": 9.5, "c": 9.9}.get
    final, seen = _final({"a": 10.2, "b": 9.6, "c": 9.8})
    assert pick_fastest(["a", "b", "c"], screen, final) == "b"


def test_only_configs_near_the_fastest_are_re_timed():
    final, seen = _final({"a": 5.0, "b": 5.5})
    assert pick_fastest(["a", "b", "far"], {"a": 5.0, "b": 5.5, "far": 9.0}.get, final) == "a"
    assert seen == [["a", "b"]]


def test_a_lone_fastest_config_needs_no_second_round():
    final, seen = _final({})
    assert pick_fastest(["a", "b"], {"a": 1.0, "b": 2.0}.get, final) == "a" and seen == []


def test_a_config_that_fails_is_not_a_candidate():
    def screen(cfg):
        if cfg == "bad":
            raise RuntimeError("out of shared memory")
        return {"ok": 3.0}[cfg]

    assert pick_fastest(["bad", "ok"], screen, _final({})[0]) == "ok"
    with pytest.raises(RuntimeError, match="no candidate"):
        pick_fastest(["bad"], screen, _final({})[0])


def test_on_the_cpu_the_first_config_is_used_without_timing():
    assert tune(lambda cfg, i: 1 / 0, ["first", "second"], "cpu", 2) == "first"



def test_a_config_whose_result_differs_from_the_first_is_dropped_however_fast():
    import torch

    from sparsebench.kernels.tuning import checked

    outs = {"ok": torch.ones(4), "close": torch.ones(4) * 1.001, "fast_wrong": torch.zeros(4)}
    screen = checked(lambda cfg, i: outs[cfg], {"ok": 2.0, "close": 1.5, "fast_wrong": 1.0}.get)
    assert pick_fastest(["ok", "fast_wrong", "close"], screen, _final({"ok": 2.0, "close": 1.5})[0]) == "close"
