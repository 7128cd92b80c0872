"""`audit`: every locked instruction of an ELF, judged statically, checked
against the compiler's own placement of tests/audit/placed.c (nm), its line
table (readelf) and objdump's disassembly."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.conftest import TRACERS, cli_json, tracer_args

PLACED = Path(__file__).resolve().parent / "audit" / "placed.c"
LIBC = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")

# function -> (verdict, member, op width, member size) in the x86-64 builds
X86_64 = {
    "seed_split": ("split", "g_seed.flags", 8, 4),
    "straddle": ("split", "g_seed.flags", 4, 4),
    "ctl_misaligned": ("hazard", "g_ctl[3].flags", 8, 4),
    "wire_misaligned": ("hazard", "g_wire.count", 4, 4),
    "counter_clean": ("clean", "g_counter", 8, 8),
    "static_clean": ("clean", "s_ctl.head", 4, 4),
    "through_pointer": ("unresolved", None, 4, None),
}
# i386 has no 8-byte bts: the 4-byte one on the same fields is clean there.
I386 = {**X86_64, "seed_split": ("clean", "g_seed.flags", 4, 4),
        "ctl_misaligned": ("clean", "g_ctl[3].flags", 4, 4),
        "counter_clean": ("clean", "g_counter", 4, 8)}  # fmt: skip

BUILDS = {
    "pie": (["-O1"], "placed", X86_64),
    "nopie": (["-O1", "-no-pie"], "placed-nopie", X86_64),
    "object": (["-O1", "-c"], "placed.o", X86_64),
    "i386-object": (["-O1", "-c", "-m32", "-ffreestanding", "-DPLACED_NO_MAIN"],
                    "placed32.o", I386),
    "kernel-object": (["-O1", "-c", "-mcmodel=kernel", "-fno-pic", "-fno-pie", "-ffreestanding",
                       "-mno-red-zone", "-DPLACED_NO_MAIN", "-DPLACED_ABSOLUTE"], "kplaced.o",
                      {**X86_64, "absolute_misaligned": ("hazard", "g_wire.count", 4, 4)}),
    "i386-nopic": (["-O1", "-c", "-m32", "-ffreestanding", "-fno-pic", "-DPLACED_NO_MAIN"],
                   "placed32np.o", I386),
}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("audit")
    paths = {}
    for name, (flags, target, _) in BUILDS.items():
        path = out / target
        subprocess.run(["gcc", "-g", "-Wall", "-Wextra", "-Werror", *flags, "-o", str(path),
                        str(PLACED)], check=True)  # fmt: skip
        paths[name] = path
    return paths


def by_function(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (f,) = doc["files"]
    return {s["symbol"].split("+")[0]: s for s in f["sites"]}


@pytest.mark.parametrize("build", list(BUILDS))
def test_exact_sites_members_and_verdicts(build: str, built: dict[str, Path], run_cli: Any) -> None:
    result = run_cli("audit", str(built[build]), "--json")
    assert result.exit_code == 0, result.output
    doc = cli_json(result)
    assert doc["schema"] == "splitlock-probe/audit/v1"
    sites = by_function(doc)
    expected = BUILDS[build][2]
    assert set(sites) == set(expected)
    for function, (kind, member, width, size) in expected.items():
        s = sites[function]
        assert (s["kind"], s["width"]) == (kind, width), (function, s)
        data = s["data"]
        if member is None:
            assert data is None
            # [rdi + 4] in through_pointer(struct ctl *p): DWARF says p->flags
            hint = s["hint"]
            if "i386" in build:
                assert hint is None  # arguments are on the stack there
            else:
                assert (hint["parameter"], hint["type"], hint["member"]) == ("p", "struct ctl *",
                                                                             "flags")  # fmt: skip
            continue
        assert (data["member"], data["member_size"]) == (member, size), (function, data)
        assert data["wider_than_member"] == (width > size)
        assert data["region"] == "image"
        assert data["section"] == ".bss"
    assert doc["summary"]["split"] == sum(1 for k, *_ in expected.values() if k == "split")


def test_addresses_agree_with_nm_and_lines_with_readelf(
    built: dict[str, Path], run_cli: Any
) -> None:
    exe = built["nopie"]  # fixed addresses: the operand's is the symbol's plus the offset
    sites = by_function(cli_json(run_cli("audit", str(exe), "--json")))
    nm = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    symbols = {line.split()[2]: int(line.split()[0], 16) for line in nm.splitlines()
               if len(line.split()) == 3}  # fmt: skip
    seed = sites["seed_split"]
    assert seed["data"]["symbol"] == "g_seed" and seed["data"]["offset"] == 60
    assert (symbols["g_seed"] + 60) % 64 == seed["line_offset"] == 60
    lines = subprocess.run(["readelf", "--debug-dump=decodedline", str(exe)], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    table = {int(m.group(2), 16): int(m.group(1))
             for m in re.finditer(r"^placed\.c\s+(\d+)\s+(0x[0-9a-f]+)", lines, re.M)}  # fmt: skip
    for s in sites.values():
        address = int(s["address"], 16)
        line = max((a for a in table if a <= address), default=None)
        assert line is not None and s["source"] == f"placed.c:{table[line]}", s


@pytest.mark.skipif(not os.path.exists(LIBC), reason="no x86-64 glibc here")
def test_every_locked_instruction_objdump_sees(run_cli: Any) -> None:
    doc = cli_json(run_cli("audit", LIBC, "--json"))
    ours = {int(s["address"], 16) for s in doc["files"][0]["sites"]}
    dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", LIBC], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    locked = re.compile(r"^\s*([0-9a-f]+):\s+(lock\b|xchg\s+\S*(\(|%[fg]s:))", re.M)
    theirs = {int(m.group(1), 16) for m in locked.finditer(dump)}
    assert theirs and ours == theirs


def test_fail_on_gates_and_junit(built: dict[str, Path], run_cli: Any, tmp_path: Path) -> None:
    obj = str(built["object"])
    assert run_cli("audit", obj).exit_code == 0
    assert run_cli("audit", obj, "--fail-on", "split").exit_code == 1
    assert run_cli("audit", str(built["i386-object"]), "--fail-on", "hazard").exit_code == 1
    junit = tmp_path / "audit.xml"
    assert run_cli("audit", obj, "--fail-on", "hazard", "--junit", str(junit)).exit_code == 1
    suite = etree.parse(str(junit)).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("7", "4", "1")


def test_the_text_names_the_member_and_the_bug_class(built: dict[str, Path], run_cli: Any) -> None:
    result = run_cli("audit", str(built["pie"]))
    assert result.exit_code == 0
    words = " ".join(result.output.split())  # as wrapped in the table's cells
    assert "(x86-64, ET_DYN)" in words
    assert "g_seed+60 = g_seed.flags (uint32_t, 4 bytes) an 8-byte op on a 4-byte member" in words
    assert "placed.c:32" in words


def test_what_is_not_an_elf_is_that_files_error(
    tmp_path: Path, run_cli: Any, built: dict[str, Path]
) -> None:
    cut = tmp_path / "cut"
    for size in (64, 3000, built["pie"].stat().st_size // 2):  # truncated at odd places
        cut.write_bytes(built["pie"].read_bytes()[:size])
        result = run_cli("audit", str(cut), "--json")
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output
    junk = tmp_path / "junk\x1b[2J.bin"
    junk.write_bytes(os.urandom(4096))
    fake = tmp_path / "fake"
    fake.write_bytes(b"\x7fELF" + os.urandom(60))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run_cli("audit", str(junk), str(fake), str(fifo), "/dev/zero", str(tmp_path), "--json")
    assert result.exit_code == 2  # nothing could be audited
    errors = [f["error"] for f in cli_json(result)["files"]]
    assert all(errors) and len(errors) == 5
    assert "\x1b" not in result.stderr and "\\x1b" in result.stderr
    # One unreadable file among good ones: the rest is reported, but a gate
    # that saw only part of what it was given does not pass (it was exit 0).
    result = run_cli("audit", str(built["pie"]), str(junk), "--json")
    assert result.exit_code == 2, result.stderr
    assert [bool(f["error"]) for f in cli_json(result)["files"]] == [False, True]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_a_file_without_debug_information_still_gets_sites(
    built: dict[str, Path], tmp_path: Path, run_cli: Any
) -> None:
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-o", str(stripped), str(built["pie"])], check=True)
    doc = cli_json(run_cli("audit", str(stripped), "--json"))
    (f,) = doc["files"]
    assert f["debug"] is None and len(f["sites"]) == 7
    assert {s["kind"] for s in f["sites"]} == {"split", "hazard", "clean", "unresolved"}
    assert all(s["source"] is None for s in f["sites"])


@pytest.mark.parametrize("mechanism", TRACERS)
def test_run_trace_names_the_source_and_the_data_it_hit(
    built: dict[str, Path], mechanism: str
) -> None:
    """The same program run, traced: each misaligned site with its source line
    and its member, as the audit found them statically."""
    from tests.test_trace import traced

    result, doc = traced(*tracer_args(mechanism), "--", str(built["pie"]))
    assert result.returncode == 0, result.stderr[-2000:]
    sites = {s["symbol"]: s for s in doc["trace"]["sites"]}
    static = by_function(cli_json_of(built["pie"]))
    for function, (kind, member, width, size) in X86_64.items():
        if kind in ("clean", "unresolved"):
            assert function not in sites or function == "through_pointer"
            continue
        s = sites[function]
        assert (s["kind"], s["width"]) == (kind, width)
        assert s["source"] == static[function]["source"]
        assert s["data"]["member"] == member and s["data"]["member_size"] == size
        assert s["data"]["wider_than_member"] == (width > size)
        assert s["data"]["region"] == "image" and s["data"]["section"] == ".bss"
    # The heap op, through a pointer: misaligned at run time, in no image.
    heap = sites["through_pointer"]
    assert heap["kind"] == "hazard" and heap["data"]["symbol"] is None
    assert heap["data"]["region"] in ("heap", "unknown")


def cli_json_of(path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "splitlock_probe", "audit", str(path), "--json"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_a_separate_debug_file_is_found_by_build_id(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's -dbgsym layout: /usr/lib/debug/.build-id/NN/REST.debug."""
    from splitlock_probe.audit.files import audit_file
    from splitlock_probe.binary import image

    exe, debug = tmp_path / "placed", tmp_path / "placed.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(built["pie"]), str(debug)], check=True)
    subprocess.run(["strip", "-o", str(exe), str(built["pie"])], check=True)
    build_id = image.ElfImage(str(exe)).build_id
    assert build_id
    folder = tmp_path / "debug" / ".build-id" / build_id[:2]
    folder.mkdir(parents=True)
    debug.rename(folder / f"{build_id[2:]}.debug")
    monkeypatch.setattr(image, "DEBUG_ROOT", tmp_path / "debug")
    audited = audit_file(str(exe))
    assert audited.debug == str(folder / f"{build_id[2:]}.debug")
    seed = next(s for s in audited.sites if s.source == "placed.c:32")
    assert seed.data is not None and seed.data.member == "g_seed.flags"


def test_ehframe_finds_the_functions_with_landing_pads(tmp_path: Path) -> None:
    """binary/ehframe.py against pyelftools' own CFI decoder, on a C++ object
    with a landing pad (a destructor to run) and a plain function."""
    from elftools.elf.elffile import ELFFile

    from splitlock_probe.binary.ehframe import unwind_of

    source = tmp_path / "pads.cc"
    source.write_text(
        "struct G { ~G(); };\nvoid may_throw();\n"
        "void with_pad() { G g; may_throw(); }\nint plain(int x) { return x + 1; }\n"
    )
    obj = tmp_path / "pads.so"
    done = subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-o", str(obj), str(source)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"no C++ compiler: {done.stderr[-200:]}")
    with obj.open("rb") as f:
        elf = ELFFile(f)
        mine = unwind_of(str(obj)).landing()
        theirs = []
        for entry in elf.get_dwarf_info(follow_links=False).EH_CFI_entries():
            cie = getattr(entry, "cie", None)
            if cie is not None and b"L" in cie["augmentation"]:
                theirs.append((entry["initial_location"],
                               entry["initial_location"] + entry["address_range"]))  # fmt: skip
        symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
    assert mine and set(mine) <= set(theirs)
    starts = {lo for lo, _ in mine}
    assert symbols["_Z8with_padv"] in starts and symbols["_Z5plaini"] not in starts
