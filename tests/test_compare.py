"""`compare` on real scans with different settings, and on documents that are
not scans: every input is either compared or refused with exit 2, never a
traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from splitlock_probe.cli import cli
from tests.conftest import cli_json


def _scan(path: Path, *args: str) -> Path:
    result = CliRunner().invoke(
        cli, ["scan", "--layout", "compat_vcpu_info", *args, "--json", "-o", str(path)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("compare")
    return {
        "legacy": _scan(d / "legacy.json", "-p", "legacy"),
        "patched": _scan(d / "patched.json", "-p", "patched"),
        "align8": _scan(d / "align8.json", "-p", "legacy", "--align", "8"),
        "align1": _scan(d / "align1.json", "-p", "legacy", "--align", "1"),
    }


def test_scans_of_different_ops_share_no_case(run_cli, docs) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("compare", str(docs["legacy"]), str(docs["patched"]))
    assert out.exit_code == 2 and "nothing to compare" in out.stderr
    assert "--by placement" in out.stderr


def test_by_placement_holds_the_legacy_op_against_the_patched_one(run_cli, docs) -> None:  # type: ignore[no-untyped-def]
    fix = cli_json(run_cli("compare", "--by", "placement", str(docs["legacy"]),
                           str(docs["patched"]), "--json"))  # fmt: skip
    assert fix["schema"] == "splitlock-probe/compare/v2" and fix["exit_status"] == 0
    assert [(c["layout"], c["placement"]) for c in fix["fixed"]] == [("compat_vcpu_info", 56)]
    # The other way round, the patch's revert is a regression.
    out = run_cli("compare", "--by", "placement", str(docs["patched"]), str(docs["legacy"]))
    assert out.exit_code == 1 and "regression: 1 case newly split" in " ".join(out.stdout.split())


def test_a_split_only_in_the_new_scan_is_a_regression(run_cli, docs) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("compare", str(docs["align8"]), str(docs["align1"]), "--json")
    assert out.exit_code == 1
    doc = cli_json(out)
    assert doc["newly_split"] == []  # the common placements (multiples of 8) agree
    new_only = sorted(c["placement"] for c in doc["split_only_new"])
    # btsq on the field at +4 splits at placements 53..59; 56 is common to both scans
    assert new_only == [53, 54, 55, 57, 58, 59]
    assert doc["settings_differ"]["align"] == {"old": 8, "new": 1}
    said = " ".join(run_cli("compare", str(docs["align8"]), str(docs["align1"])).stdout.split())
    assert "asked different things" in said and "align: old 8, new 1" in said
    # Unless only the common cases count.
    out = run_cli("compare", "--only-common", str(docs["align8"]), str(docs["align1"]))
    assert out.exit_code == 0


def _break(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Malformed variants of a real scan document: what a broken or hostile
    producer could hand to compare."""
    out: list[tuple[str, Any]] = []

    def variant(name: str, change: Any) -> None:
        d = copy.deepcopy(doc)
        change(d)
        out.append((name, d))

    p0 = lambda d: d["probes"][0]  # noqa: E731
    variant("no probes", lambda d: d.pop("probes"))
    variant("probes not a list", lambda d: d.update(probes={"a": 1}))
    variant("probe not an object", lambda d: d["probes"].__setitem__(0, 7))
    for key in ("layout", "field", "primitive", "placement", "verdict", "bits", "measurement",
                "evidence"):  # fmt: skip
        variant(f"probe without {key}", lambda d, k=key: p0(d).pop(k))
    variant("placement a string", lambda d: p0(d).update(placement="56"))
    variant("placement a bool", lambda d: p0(d).update(placement=True))
    variant("placement a float", lambda d: p0(d).update(placement=5.5))
    variant("unknown verdict", lambda d: p0(d).update(verdict="maybe"))
    variant("bits a number", lambda d: p0(d).update(bits=3, verdict="split"))
    variant("endless bits", lambda d: p0(d).update(bits="0-1000000000", verdict="split"))
    variant("measurement id a string", lambda d: p0(d)["measurement"].update(id="x"))
    variant("evidence not a list", lambda d: p0(d).update(evidence="x"))
    variant("evidence item a string", lambda d: p0(d).update(evidence=["x"]))
    variant("detector a number", lambda d: p0(d)["evidence"][0].update(detector=1))
    variant("cycles a string", lambda d: p0(d)["evidence"][0].update(min_cycles="fast"))
    variant("baselines a list", lambda d: d.update(baselines=[1]))
    variant("baseline evidence a dict", lambda d: d["baselines"].update(btsq={"a": 1}))
    variant("settings a list", lambda d: d.update(settings=[]))
    variant("detectors a string", lambda d: d["settings"].update(detectors="timing"))
    variant("host a string", lambda d: d.update(host="x"))
    return out


def test_every_malformed_document_is_a_usage_error(run_cli, docs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = json.loads(docs["legacy"].read_text())
    broken = _break(good)
    texts = [(name, json.dumps(d)) for name, d in broken]
    head = '{"schema": "splitlock-probe/scan/v2", "probes": '
    nan = docs["legacy"].read_text().replace('"min_cycles": ', '"min_cycles": NaN, "x": ', 1)
    texts += [
        ("NaN cycles", nan),
        ("a 5,000-digit number", head + "[" + "9" * 5000 + "]}"),
        ("deep nesting", head + "[" * 100_000 + "]" * 100_000 + "}"),
        ("not UTF-8", b"\xff\xfe{}".decode("latin-1")),
        ("an array", "[]"),
    ]
    for name, text in texts:
        bad = tmp_path / "bad.json"
        bad.write_bytes(text.encode("latin-1") if name == "not UTF-8" else text.encode())
        for args in (["compare", str(bad), str(docs["legacy"])],
                     ["compare", str(docs["legacy"]), str(bad)]):  # fmt: skip
            out = run_cli(*args)  # catch_exceptions=False: a traceback fails the test
            assert out.exit_code == 2, (name, out.stdout, out.stderr)
            assert out.stderr.startswith("splitlock-probe: ") and out.stderr.count("\n") == 1, name


def test_a_binary_file_is_refused(run_cli, docs) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("compare", "/usr/bin/ls", str(docs["legacy"]))
    assert out.exit_code == 2 and "not UTF-8" in out.stderr


def test_a_new_scan_cut_short_never_passes_unless_only_common(
    run_cli, docs: dict[str, Path], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A new scan stopped by --budget or Ctrl-C leaves cases unmeasured, which
    may have regressed: compare said "no regression" and exited 0."""
    cut = json.loads(docs["align1"].read_text())
    cut["summary"]["complete"] = False
    cut["summary"]["stopped"] = "budget"
    cut["probes"] = [p for p in cut["probes"] if p["placement"] % 8 == 0]  # what it reached
    short = tmp_path / "short.json"
    short.write_text(json.dumps(cut))
    out = run_cli("compare", str(docs["align1"]), str(short), "--json")
    doc = cli_json(out)
    assert out.exit_code == 4 and doc["exit_status"] == 4 and doc["new_complete"] is False
    assert doc["regressions"] == 0 and doc["only_old"] > 0
    text = " ".join(run_cli("compare", str(docs["align1"]), str(short)).stdout.split())
    assert "cut short" in text and "not a pass (exit 4)" in text
    assert run_cli("compare", "--only-common", str(docs["align1"]), str(short)).exit_code == 0
    # and a regression in what it did measure is still a finding
    assert run_cli("compare", str(docs["patched"]), str(short), "--by", "placement").exit_code == 1
