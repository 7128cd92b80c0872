"""`scan --from FILE --struct NAME`: your own structs placed and probed for
real, at the placements their own alignment allows, in each ABI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, cli_json

XEN_ABI = str(REPO / "csrc" / "xen_abi.h")
COMPAT = "slp_xen_compat_vcpu_info"

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


def splits(doc: dict[str, Any], prim: str, abi: str) -> set[int]:
    return {
        p["placement"]
        for p in doc["probes"]
        if p["primitive"] == prim and p["abi"] == abi and p["verdict"] == "split"
    }


@needs_cc
def test_the_seed_from_the_compilers_own_types(run_cli: Any) -> None:
    result = run_cli("scan", "--from", XEN_ABI, "--struct", COMPAT, "--abi", "i386",
                     "--field", "evtchn_pending_sel", "-p", "btsq,btsl", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = cli_json(result)
    assert doc["settings"]["layouts"] == [f"{COMPAT}@i386"]
    assert doc["settings"]["align"] == 4  # the struct's own under i386: 4-byte members
    assert {p["layout"] for p in doc["probes"]} == {COMPAT}
    assert {p["align"] for p in doc["probes"]} == {4}
    assert {p["placement"] for p in doc["probes"]} == set(range(0, 64, 4))
    assert splits(doc, "btsq", "i386") == {56}
    assert splits(doc, "btsl", "i386") == set()
    assert doc["summary"]["disagreements"] == 0


@needs_cc
def test_both_abis_are_probed_apart_and_align_overrides(run_cli: Any) -> None:
    result = run_cli("scan", "--from", XEN_ABI, "--struct", COMPAT, "--field",
                     "evtchn_pending_sel", "-p", "btsq", "--align", "8", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = cli_json(result)
    assert {p["abi"] for p in doc["probes"]} == {"x86-64", "i386"}
    assert {p["placement"] for p in doc["probes"]} == set(range(0, 64, 8))
    # The field sits at +4 in both ABIs (its members are 4 bytes wide): 56 splits.
    assert splits(doc, "btsq", "i386") == splits(doc, "btsq", "x86-64") == {56}


def test_the_builtin_layouts_name_their_abi(run_cli: Any) -> None:
    result = run_cli("scan", "--layout", "vcpu_info,compat_vcpu_info", "-p", "btsl",
                     "--bits", "0", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    abis = {(p["layout"], p["abi"]) for p in cli_json(result)["probes"]}
    assert abis == {("vcpu_info", "x86-64"), ("compat_vcpu_info", "i386")}


@needs_cc
def test_a_packed_struct_is_placed_at_every_byte(tmp_path: Path, run_cli: Any) -> None:
    header = tmp_path / "packed.h"
    header.write_text(
        "struct __attribute__((packed)) wire { char tag; unsigned int count; };\n"
        "struct nothing_to_lock { char a, b, c; };\n"
    )
    result = run_cli("scan", "--from", str(header), "--struct", "wire", "--abi", "x86-64",
                     "-p", "btsl", "--bits", "0", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = cli_json(result)
    assert doc["settings"]["fields"] == ["count"]  # the one member a locked op fits
    assert {p["placement"] for p in doc["probes"]} == set(range(64))
    # count at +1, 4 bytes: a placement p splits when (p + 1) % 64 > 60.
    assert splits(doc, "btsl", "x86-64") == {60, 61, 62}
    nothing = run_cli("scan", "--from", str(header), "--struct", "nothing_to_lock")
    assert nothing.exit_code == 2
    assert "no member a locked op fits" in nothing.output


@needs_cc
def test_unknown_names_list_the_closest_first(run_cli: Any) -> None:
    field = run_cli("scan", "--from", XEN_ABI, "--struct", COMPAT, "--field", "evtchn_pendin")
    assert field.exit_code == 2
    assert "no field 'evtchn_pendin'; its fields (closest first): evtchn_pending_sel" in (
        field.output
    )
    struct = run_cli("scan", "--from", XEN_ABI, "--struct", "compat_vcpu_info")
    assert struct.exit_code == 2
    assert f"closest: {COMPAT}" in struct.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", XEN_ABI], "--from FILE and --struct NAME go together"),
        (["--struct", COMPAT], "--from FILE and --struct NAME go together"),
        (["--abi", "i386"], "--abi is for the structs of --from"),
        (["--align", "3"], "power of two"),
        (["--align", "8192"], "8192"),
    ],
)
def test_bad_combinations_are_usage_errors(run_cli: Any, args: list[str], words: str) -> None:
    result = run_cli("scan", *args)
    assert result.exit_code == 2
    assert words in result.output


@needs_cc
def test_compare_keeps_the_two_abis_apart(run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    result = run_cli("scan", "--from", XEN_ABI, "--struct", COMPAT, "--field",
                     "evtchn_pending_sel", "-p", "btsq", "--bits", "0", "--json",
                     "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    # Make the i386 probes differ only: compare must see one regression, not a merge.
    for p in doc["probes"]:
        if p["abi"] == "i386" and p["placement"] == 0:
            p["verdict"] = "split"
    new = tmp_path / "new.json"
    new.write_text(json.dumps(doc))
    compared = run_cli("compare", str(out), str(new), "--json")
    assert compared.exit_code == 1, compared.output
    report = cli_json(compared)
    assert report["common"] == 8 + 16  # x86-64 aligned 8, i386 aligned 4: kept apart
    newly = [(c["layout"], c["placement"]) for c in report["newly_split"]]
    assert newly == [(f"{COMPAT}@i386", 0)]
