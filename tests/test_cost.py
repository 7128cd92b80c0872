"""What a split lock costs and who charges: the classifier on recorded
distributions of every class, and the measurement for real on this host,
judged only against what the same run measured (no vendor, model or cost is
assumed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from splitlock_probe.host import cost
from tests.conftest import DATA, cli_json

RECORDED = sorted((DATA / "cost").glob("*.json"))


def _quantiles(d: dict[str, Any]) -> cost.Quantiles:
    return cost.Quantiles(**d)


def recorded(path: Path) -> tuple[cost.Cost, str]:
    d = json.loads(path.read_text())
    aligned = cost.Quantiles(52, 78, 78, 104, 104, 104, 10)
    c = cost.Cost(
        d["tsc_hz"], _quantiles(d["split_cycles"]), aligned, d["aligned_op_cycles"],
        {k: _quantiles(v) for k, v in d["spaced"].items()},
    )  # fmt: skip
    return c, d["class"]


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_each_recorded_host_gets_its_class(path: Path) -> None:
    c, expected = recorded(path)
    klass, reason = c.classification
    assert klass == expected, reason
    assert "each split lock here costs ~" in reason and "TSC cycles" in reason


def test_every_class_is_reached_by_the_recordings() -> None:
    assert {recorded(p)[1] for p in RECORDED} == set(cost.CLASSES)


def test_the_seed_vm_figures_read_as_a_person_reads_them() -> None:
    c, _ = recorded(DATA / "cost" / "intel-spr-vm.json")
    _, reason = c.classification
    assert "~55.0 µs (143,000 TSC cycles, 13,000x an aligned lock)" in reason
    assert "something below this system traps every split lock" in reason


def test_times_are_in_the_unit_a_person_reads() -> None:
    assert [cost.format_ns(v) for v in (950, 1_200, 55_100, 10_400_000, 1.1e9)] == [
        "950 ns", "1.2 µs", "55.1 µs", "10.4 ms", "1.10 s",
    ]  # fmt: skip


def test_quantiles_of_a_sample() -> None:
    q = cost.Quantiles.of(list(range(1, 101)))
    assert (q.min, q.p10, q.p50, q.p90, q.p99, q.max, q.count) == (1, 11, 51, 91, 100, 100, 100)


def test_the_quick_measurement_here_is_a_real_split_lock() -> None:
    c = cost.measure()
    klass, _ = c.classification
    assert klass in cost.CLASSES
    assert c.split.count > 100 and math.isfinite(c.split_ns_p50)
    # Relative to this run's own baseline: a split lock costs many aligned ones.
    assert c.split.p50 > 10 * c.aligned_op_cycles
    assert c.split.min <= c.split.p10 <= c.split.p50 <= c.split.p90 <= c.split.p99 <= c.split.max


def test_one_cpu_has_no_neighbour_to_disturb() -> None:
    c = cost.measure(full=True, cpus=[0])
    assert c.neighbours == () and c.neighbour_note == "one CPU only: no neighbour to disturb"
    assert set(c.spaced) == {"ticks", "seconds"}


def test_host_json_carries_the_cost(run_cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(run_cli("host", "--json"))
    c = doc["cost"]
    for key in ("split_cycles", "aligned_cycles"):
        assert set(c[key]) >= {"min", "p10", "p50", "p90", "p99"}
    assert c["class"] in cost.CLASSES and c["split_ns_p50"] > 0 and c["ratio"] > 1
    assert c["tsc_hz"] > 1e8 and c["reason"]


def test_cost_command_json_and_text(run_cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(run_cli("cost", "--json"))
    assert doc["schema"] == "splitlock-probe/cost/v1"
    assert sum(b["count"] for b in doc["histogram"]) == doc["split_cycles"]["count"]
    assert set(doc["spaced"]) == {"ticks", "seconds"}
    if doc["neighbours"]:
        stream = next(n for n in doc["neighbours"] if n["victim"] == "stream")
        assert 0 <= stream["loss"] <= 1 and stream["split_ops"] > 0
    text = run_cli("cost", "--quick").stdout
    assert "split lock cost:" in text and "per-lock cost" in text
