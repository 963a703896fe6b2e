"""The benchmark harness's round-robin and paired ratios (pure logic, no timing asserted)."""

from __future__ import annotations

import pytest

from bench._harness import paired_ratio, rounds


def test_rounds_alternate_the_order_of_contenders():
    """Contenders run in turn, in reverse order every other round; warm-up rounds run first."""
    calls: list[str] = []
    runs = {name: (lambda name=name: calls.append(name) or 1) for name in "abc"}
    rates = rounds(runs, 3, warmup=1)
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")
    assert {name: len(values) for name, values in rates.items()} == {"a": 3, "b": 3, "c": 3}


def test_paired_ratio_is_the_median_of_same_round_ratios():
    """Each round's rate is divided by its own round's baseline, and the median is taken:
    one round where the baseline was lucky does not decide the ratio."""
    rates = {"mine": [100.0, 110.0, 90.0], "peer": [50.0, 100.0, 45.0]}
    assert paired_ratio(rates, "mine", ("peer",)) == pytest.approx(2.0)


def test_paired_ratio_compares_with_the_best_baseline_of_each_round():
    """With several baselines, each round's ratio is against the fastest of them in that round."""
    rates = {"mine": [120.0, 120.0, 120.0], "a": [100.0, 40.0, 60.0], "b": [50.0, 80.0, 100.0]}
    assert paired_ratio(rates, "mine", ("a", "b")) == pytest.approx(1.2)
