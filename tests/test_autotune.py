"""The fast path's kernel autotuner: the verdict is measured once per CPU model + thread count + torch version,
cached in a small JSON file, reused, and a missing, corrupt or unwritable cache never stops a model from loading.
(That each formulation gives the reference's answer is tests/test_fast_path.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from humanparse.engine.m2fp import autotune
from humanparse.engine.m2fp.autotune import (
    CACHE_FILE,
    DEFAULTS,
    GROUPS,
    apply_kernels,
    choose_kernels,
    parse_forced,
    read_cache,
    write_cache,
)
from humanparse.engine.m2fp.modeling import OneDnnLinear


@pytest.fixture(scope="module")
def net(m2fp_dir: Path) -> Any:
    from humanparse.engine.m2fp.fast import make_fast
    from humanparse.engine.m2fp.predictor import build_m2fp_net

    return make_fast(build_m2fp_net(m2fp_dir)[0])


# every formulation differs from the defaults, so a test can tell a cached verdict from a fresh default
OTHER = {g: forms[1] for g, forms in GROUPS.items()}


@pytest.fixture()
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timings on a CPU shared with other work may vary more than the noise guard allows, which (rightly) keeps
    a verdict out of the cache; these tests are about the cache, so the guard is lifted."""
    monkeypatch.setattr(autotune, "NOISY_SPREAD", float("inf"))


@pytest.fixture()
def no_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The temp-dir fallback, redirected so tests never touch the machine's /tmp/humanparse."""
    fallback = tmp_path / "tmp-fallback"
    monkeypatch.setattr(autotune, "_tmp_dir", lambda: fallback)
    return fallback


def _count_measures(monkeypatch: pytest.MonkeyPatch, result: dict[str, str] | None = None) -> list[int]:
    """Replace the timing boundary with a fixed verdict (``result``) and count the calls."""
    calls: list[int] = []

    def fake(net: Any, groups: Any = None, budget_s: float = 0.0) -> tuple[dict[str, str], dict[str, Any], float]:
        calls.append(1)
        chosen = {g: c for g, c in (result or OTHER).items() if g not in (groups or {})}
        return chosen, {g: {c: 1.0} for g, c in chosen.items()}, 1.0

    monkeypatch.setattr(autotune, "measure", fake)
    return calls


def test_measured_verdict_is_cached_and_reused(net: Any, tmp_path: Path, quiet: None, no_tmp: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    first = choose_kernels(net, "auto", tmp_path)  # a real measurement on this CPU
    assert first.source.startswith("measured at load")
    assert set(first.kernels) == set(GROUPS) and all(first.kernels[g] in GROUPS[g] for g in GROUPS)
    assert set(first.timings_ms) == set(GROUPS)  # every formulation of every group was timed
    doc = json.loads((tmp_path / CACHE_FILE).read_text())
    (entry,) = doc["entries"].values()
    assert entry["kernels"] == first.kernels
    calls = _count_measures(monkeypatch)  # from here on, measuring again would show as a call
    second = choose_kernels(net, "auto", tmp_path)
    assert calls == [] and second.kernels == first.kernels and second.source.startswith("cached verdict")
    assert not no_tmp.exists()


def test_verdict_is_applied_to_the_network(net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           no_tmp: Path) -> None:
    _count_measures(monkeypatch, OTHER)
    choice = choose_kernels(net, "auto", tmp_path)
    layer = net.sem_seg_head.pixel_decoder.transformer.encoder.layers[0]
    assert choice.kernels == OTHER
    assert not isinstance(layer.linear1, OneDnnLinear) and layer.self_attn.sampling == OTHER["deform_sampling"]
    assert net.sem_seg_head.predictor.transformer_self_attention_layers[0].need_weights is True  # "plain"
    assert net.backbone.res4[0].conv1.fuse is False  # "plain": no oneDNN post-ops
    apply_kernels(net, DEFAULTS)
    assert isinstance(layer.linear1, OneDnnLinear) and layer.self_attn.sampling == "bag"
    assert net.backbone.res4[0].conv1.fuse is True


def test_corrupt_cache_is_ignored_and_replaced(net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               no_tmp: Path) -> None:
    for junk in ("{not json", json.dumps({"version": 1, "entries": {autotune.cache_key(net): {"kernels": {
            "deform_sampling": "fastest"}}}}), json.dumps([1, 2]), json.dumps({"version": 99, "entries": {}}),
                 "[" * 100_000):  # nested past json's recursion limit
        (tmp_path / CACHE_FILE).write_text(junk)
        calls = _count_measures(monkeypatch, OTHER)
        choice = choose_kernels(net, "auto", tmp_path)
        assert calls == [1] and choice.kernels == OTHER
        assert read_cache(tmp_path / CACHE_FILE, autotune.cache_key(net)) == OTHER  # rewritten, readable


def test_other_cpu_or_threads_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE
    assert write_cache(path, "CPU A|2 threads|torch x|shape", OTHER, {})
    assert write_cache(path, "CPU A|6 threads|torch x|shape", DEFAULTS, {})  # a second key keeps the first
    assert read_cache(path, "CPU A|2 threads|torch x|shape") == OTHER
    assert read_cache(path, "CPU A|6 threads|torch x|shape") == DEFAULTS
    assert read_cache(path, "CPU B|2 threads|torch x|shape") is None


def test_unwritable_cache_dir_falls_back_then_stays_in_memory(net: Any, tmp_path: Path, no_tmp: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    calls = _count_measures(monkeypatch, OTHER)
    choice = choose_kernels(net, "auto", blocked / "cache")  # cannot be created: a file is in the way
    assert choice.kernels == OTHER and (no_tmp / CACHE_FILE).is_file()  # the temp-dir fallback took it
    assert choose_kernels(net, "auto", blocked / "cache").source.startswith("cached verdict")
    assert calls == [1]
    monkeypatch.setattr(autotune, "_tmp_dir", lambda: blocked / "tmp")  # neither place writable
    choice = choose_kernels(net, "auto", blocked / "cache")
    assert choice.kernels == OTHER and calls == [1, 1]  # measured, used, nothing raised


def test_forced_choices(net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_tmp: Path) -> None:
    calls = _count_measures(monkeypatch, DEFAULTS)
    every = ",".join(f"{g}={c}" for g, c in OTHER.items())
    full = choose_kernels(net, every, tmp_path)
    assert full.kernels == OTHER and full.source == "forced by configuration" and calls == []
    part = choose_kernels(net, "deform_sampling=grid", tmp_path)
    assert part.kernels == {**DEFAULTS, "deform_sampling": "grid"} and calls == [1]
    assert not (tmp_path / CACHE_FILE).exists()  # a partly forced verdict is not the CPU's verdict
    assert choose_kernels(net, "default", tmp_path).kernels == DEFAULTS


@pytest.mark.parametrize("bad", ["deform_sampling", "nope=bag", "deform_sampling=fastest"])
def test_bad_forced_choice_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="kernels"):
        parse_forced(bad)


def test_noisy_measurement_is_used_but_not_cached(net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  no_tmp: Path) -> None:
    monkeypatch.setattr(autotune, "measure", lambda *a, **k: (dict(OTHER), {}, 3.0))
    choice = choose_kernels(net, "auto", tmp_path)
    assert choice.kernels == OTHER and "not cached" in choice.source
    assert not (tmp_path / CACHE_FILE).exists()


def test_a_challenger_must_win_every_paired_round() -> None:
    from humanparse.engine.m2fp.autotune import _pick

    assert _pick("bag", {"bag": [10.0, 10.0], "grid": [5.0, 12.0]}) == "bag"  # won once: a burst of load
    assert _pick("bag", {"bag": [10.0, 11.0], "grid": [5.0, 6.0]}) == "grid"
    assert _pick("bag", {"bag": [10.0, 10.0], "csr": [9.8, 9.9]}) == "bag"  # within the noise margin
    assert _pick("bag", {"bag": [10.0, 10.0], "grid": [40.0]}) == "bag"  # dropped at the warm-up


def test_race_always_times_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A default that was slow in the warm-up (say, the CPU was busy) is still timed, so it can win."""
    from humanparse.engine.m2fp.autotune import _race

    costs = {"bag": iter([100.0, 1.0, 1.0, 1.0, 1.0]), "grid": iter([2.0, 5.0, 5.0, 5.0, 5.0])}
    now = [0.0]

    def fake_perf_counter() -> float:
        return now[0]

    def run(name: str) -> None:
        now[0] += next(costs[name]) / 1e3

    monkeypatch.setattr(autotune.time, "perf_counter", fake_perf_counter)
    timed, spread = _race({"bag": lambda: run("bag"), "grid": lambda: run("grid")}, "bag", deadline=float("inf"))
    assert timed["bag"][0] == pytest.approx(1.0) and min(timed["grid"]) == pytest.approx(5.0)
    assert autotune._pick("bag", timed) == "bag" and spread == pytest.approx(1.0)
