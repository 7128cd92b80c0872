"""Your own structs: layouts from DWARF and C sources in both x86 ABIs, held
against independent oracles (offsetof/sizeof/_Alignof printed by the same
compiler in each ABI, the built-in Xen tables), the hazard arithmetic
against brute force, and the seed reproduced from the compiler's own types."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitlock_probe.model.hazard import split_placements
from splitlock_probe.model.layouts import LAYOUTS
from splitlock_probe.structs.csource import compile_structs
from splitlock_probe.structs.types import I386, X86_64
from tests.conftest import REPO, cli_json

HEADER = """
#include <stdint.h>
#include <stddef.h>
struct inner { uint16_t a; uint32_t b; };
struct demo {
    uint8_t flag;
    uint64_t big;
    struct inner in;
    uint32_t arr[3];
    unsigned bits : 3;
    union { uint32_t u32; uint64_t u64; } un;
    double d;
    void *p;
};
struct __attribute__((packed)) packed { uint8_t c; uint64_t v; uint32_t w; };
struct __attribute__((aligned(64))) cacheline { uint32_t x; uint64_t y; };
"""
FIELDS = {
    "demo": ["flag", "big", "in", "in.a", "in.b", "arr", "un", "un.u64", "d", "p"],
    "packed": ["c", "v", "w"],
    "cacheline": ["x", "y"],
}
ABI_FLAGS = {X86_64: ["-m64"], I386: ["-m32", "-ffreestanding"]}


@pytest.fixture(scope="module")
def header(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("structs") / "demo.h"
    path.write_text(HEADER)
    return path


def oracle(header: Path, abi: str) -> dict[str, dict[str, int]]:
    """offsetof, sizeof and _Alignof as the compiler computes them in `abi`."""
    lines = []
    for struct, fields in FIELDS.items():
        lines.append(f'printf("{struct} size %zu\\\\n", sizeof(struct {struct}));')
        lines.append(f'printf("{struct} align %zu\\\\n", _Alignof(struct {struct}));')
        for f in fields:
            lines.append(f'printf("{struct} {f} %zu\\\\n", offsetof(struct {struct}, {f}));')
    prog = header.with_name(f"oracle-{abi}.c")
    # No libc for i386 here: print through a tiny freestanding write(2) instead.
    prog.write_text(
        f'#include "{header}"\n'
        "static char out[8192]; static unsigned n;\n"
        "static void put(const char *s) { while (*s) out[n++] = *s++; }\n"
        "static void num(unsigned long v) { char b[24]; int i = 0;"
        " do b[i++] = '0' + v % 10; while (v /= 10); while (i) out[n++] = b[--i]; }\n"
        "#define printf(fmt, v) do { const char *f = fmt; while (*f != '%') out[n++] = *f++;"
        ' num(v); put("\\n"); } while (0)\n'
        # no 32-bit libc here: the i386 oracle makes raw system calls
        "#ifdef __i386__\n"
        "static long sys(long nr, long a, long b, long c) { long r; __asm__ volatile("
        '"int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");'
        " return r; }\n"
        "#define DONE() do { sys(4, 1, (long)out, n); sys(1, 0, 0, 0); } while (0)\n"
        "#else\n"
        "extern long write(int, const void *, unsigned long);\n"
        "#define DONE() write(1, out, n)\n"
        "#endif\n"
        "int main(void) {\n" + "\n".join(lines) + "\n DONE(); return 0; }\n"
    )
    exe = prog.with_suffix("")
    flags = ABI_FLAGS[abi] + (["-nostdlib", "-static", "-e", "main"] if abi == I386 else [])
    built = subprocess.run(
        ["cc", *flags, "-o", str(exe), str(prog)], capture_output=True, text=True
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build a {abi} program here: {built.stderr[-200:]}")
    out: dict[str, dict[str, int]] = {}
    for line in subprocess.run([str(exe)], capture_output=True, text=True).stdout.splitlines():
        struct, key, value = line.split()
        out.setdefault(struct, {})[key] = int(value)
    return out


@pytest.mark.parametrize("abi", [X86_64, I386])
def test_dwarf_layouts_match_the_compilers_own_numbers(header: Path, abi: str) -> None:
    want = oracle(header, abi)
    got = {s.name: s for s in compile_structs(header, [abi])}
    for struct, numbers in want.items():
        s = got[struct]
        assert (s.size, s.align) == (numbers["size"], numbers["align"]), (abi, struct)
        members = {m.name: m for m in s.members}
        for f in FIELDS[struct]:
            assert members[f].offset == numbers[f], (abi, struct, f)
    demo = got["demo"]
    assert next(m for m in demo.members if m.name == "bits").bitfield
    assert [m.name for m in demo.members if m.name.startswith("arr[")] == ["arr[0]", "arr[1]",
                                                                           "arr[2]"]  # fmt: skip
    assert got["packed"].align == 1 and "packed" in got["packed"].align_source
    assert "DW_AT_alignment 64" in got["cacheline"].align_source


def test_the_builtin_xen_tables_are_what_the_compiler_makes_of_xen_abi_h() -> None:
    header = REPO / "csrc" / "xen_abi.h"
    cases = ((X86_64, "vcpu_info", "slp_xen_vcpu_info"),
             (I386, "compat_vcpu_info", "slp_xen_compat_vcpu_info"))  # fmt: skip
    for abi, layout, struct in cases:
        s = next(x for x in compile_structs(header, [abi]) if x.name == struct)
        members = {m.name: m for m in s.members}
        assert s.size == LAYOUTS[layout].size
        for field in LAYOUTS[layout].fields:
            if field.name in members:
                m = members[field.name]
                assert (m.offset, m.size) == (field.offset, field.size), (layout, field.name)


@settings(max_examples=300, deadline=None)
@given(
    offset=st.integers(0, 200),
    width=st.sampled_from([2, 4, 8, 16]),
    align=st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 3, 12]),
)
def test_split_placements_against_brute_force(offset: int, width: int, align: int) -> None:
    brute = sorted(
        {(k * align) % 64 for k in range(64 * 64) if ((k * align) + offset) % 64 + width > 64}
    )
    assert split_placements(offset, width, align) == brute


def test_the_seed_from_the_compilers_own_types(run_cli) -> None:  # type: ignore[no-untyped-def]
    args = ["layout", "--from", str(REPO / "csrc" / "xen_abi.h"), "--struct",
            "slp_xen_compat_vcpu_info", "--abi", "i386", "--field", "evtchn_pending_sel",
            "--json"]  # fmt: skip
    btsq = cli_json(run_cli(*args, "--op", "btsq"))
    (s,) = btsq["structs"]
    assert (s["abi"], s["align"]) == ("i386", 4)
    (f,) = s["fields"]
    assert (f["offset"], f["size"], f["op_width"], f["split_placements"]) == (4, 4, 8, [56])
    btsl = cli_json(run_cli(*args, "--op", "btsl"))
    assert btsl["structs"][0]["fields"][0]["split_placements"] == []
    assert run_cli(*args[:-1], "--op", "btsq", "--fail-on", "hazard").exit_code == 1
    assert run_cli(*args[:-1], "--op", "btsl", "--fail-on", "hazard").exit_code == 0


def test_layout_of_an_elf_and_all_its_structs(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--all lists the structs with a hazard, and only their hazardous fields.
    (This once ran on a binary without -g: no structs at all, so it passed
    while proving nothing.)"""
    exe = tmp_path / "structs"
    source = tmp_path / "structs.c"
    source.write_text(
        "struct __attribute__((packed)) risky { char c; unsigned long flags; } r;\n"
        "struct safe { unsigned long a; unsigned int b; } s;\n"
        "int main(void) { return (int)(r.flags + s.a); }\n"
    )
    subprocess.run(["gcc", "-g", "-o", str(exe), str(source)], check=True)
    doc = cli_json(run_cli("layout", "--from", str(exe), "--all", "--json"))
    assert doc["schema"] == "splitlock-probe/layout/v1"
    assert [(s["name"], [f["name"] for f in s["fields"]]) for s in doc["structs"]] == [
        ("risky", ["flags"])
    ]
    assert all(f["hazard"] for s in doc["structs"] for f in s["fields"])


def test_unknown_structs_and_broken_sources_are_usage_errors(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("layout", "--from", str(REPO / "csrc" / "xen_abi.h"), "--struct", "vcpu_inf")
    assert out.exit_code == 2 and "closest: slp_xen_vcpu_info" in out.stderr
    broken = tmp_path / "broken.h"
    broken.write_text("struct { int x; \n")
    out = run_cli("layout", "--from", str(broken), "--struct", "x")
    assert out.exit_code == 2 and "does not compile" in out.stderr
    assert run_cli("layout", "--from", str(tmp_path / "none.h"), "--struct", "x").exit_code == 2


def test_binary_and_hostile_sources_are_usage_errors_shown_escaped(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Random bytes made the compiler's error text undecodable (exit 3, an
    internal error); a header with escape codes sent them to the terminal in
    the compiler's quote of the line; /dev/zero was "no such file"."""
    binary = tmp_path / "random.dat"
    binary.write_bytes(bytes(range(256)) * 8)
    out = run_cli("layout", "--from", str(binary), "--struct", "x")
    assert out.exit_code == 2 and "binary data" in out.stderr, out.stderr
    hostile = tmp_path / "hostile.h"
    hostile.write_bytes(b"struct a { int x; };\n\x1b[2J \xff\xfe\n")
    out = run_cli("scan", "--from", str(hostile), "--struct", "a")
    assert out.exit_code == 2 and "does not compile" in out.stderr, out.stderr
    assert "\x1b" not in out.stderr and "\ufffd" not in out.stderr
    out = run_cli("layout", "--from", "/dev/zero", "--struct", "x")
    assert out.exit_code == 2 and "not a regular file" in out.stderr
    # A header that includes /dev/zero: cc1 grew by ~1.2 GB a second until the
    # OOM killer came (its 120 s limit was no bound on memory).
    endless = tmp_path / "endless.h"
    endless.write_text('#include "/dev/zero"\nstruct a { int x; };\n')
    out = run_cli("layout", "--from", str(endless), "--struct", "a", "--abi", "x86-64")
    assert out.exit_code == 2 and "does not compile" in out.stderr, out.stderr
    assert "memory" in out.stderr  # its own limit said so, not the OOM killer's SIGKILL


def test_a_gate_over_sources_without_structs_does_not_pass(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`layout --all --fail-on hazard` over a stripped ELF (pyelftools counts
    its .eh_frame as DWARF) or a header with no struct said "no field can
    split" and exited 0: a gate that saw nothing."""
    source = tmp_path / "placed.c"
    source.write_text("struct s { char c; int x; } g;\n")
    obj, stripped = tmp_path / "placed.o", tmp_path / "stripped.o"
    subprocess.run(["gcc", "-g", "-c", "-o", str(obj), str(source)], check=True)
    subprocess.run(["strip", "-o", str(stripped), str(obj)], check=True)
    out = run_cli("layout", "--from", str(stripped), "--all", "--fail-on", "hazard")
    assert out.exit_code == 2 and "no DWARF" in out.stderr, out.stderr
    empty = tmp_path / "none.h"
    empty.write_text("int x;\n")
    out = run_cli("layout", "--from", str(empty), "--all", "--fail-on", "hazard")
    assert out.exit_code == 2 and "no struct or union" in out.stderr, out.stderr
    assert run_cli("layout", "--from", str(obj), "--all", "--fail-on", "hazard").exit_code == 0


# --- against pahole (Debian's dwarves; .ci/run installs it where it can) ---------------------

PAHOLE_MEMBER = re.compile(
    r"^\t(?!/\*)(?P<decl>[^\t].*?)\s+\**(?P<name>[A-Za-z_]\w*)(?:\[\d*\])*;\s+/\*\s+"
    r"(?P<off>\d+)\s+(?P<size>\d+)\s+\*/"
)
KERNEL_SAMPLE = ("list_head", "hlist_node", "rb_node", "callback_head", "kref", "seqcount",
                 "task_struct", "sk_buff", "page", "inode", "file", "mm_struct")  # fmt: skip
needs_pahole = pytest.mark.skipif(shutil.which("pahole") is None, reason="no pahole (dwarves)")


def pahole(struct: str, source: Path) -> tuple[int, dict[str, tuple[int, int]]] | None:
    done = subprocess.run(["pahole", "-C", struct, str(source)], capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        return None
    members = {}
    for line in done.stdout.splitlines():
        if m := PAHOLE_MEMBER.match(line):
            members[m["name"]] = (int(m["off"]), int(m["size"]))
    size = re.search(r"/\* size: (\d+)", done.stdout)
    return (int(size.group(1)) if size else -1), members


@needs_pahole
@pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(), reason="no kernel BTF")
def test_kernel_structs_from_btf_agree_with_pahole() -> None:
    from splitlock_probe.structs import btf

    vmlinux = Path("/sys/kernel/btf/vmlinux")
    ours = {s.name: s for s in btf.load(vmlinux).structs(set(KERNEL_SAMPLE))}
    compared = 0
    for name in KERNEL_SAMPLE:
        theirs = pahole(name, vmlinux)
        if theirs is None or name not in ours:
            continue
        size, members = theirs
        s = ours[name]
        assert s.size == size, name
        mine = {m.name: (m.offset, m.size) for m in s.members if not m.bitfield}
        for member, at in members.items():
            if member in mine:
                assert mine[member] == at, (name, member)
                compared += 1
    assert compared > 50  # a real sample, not a vacuous pass


@needs_pahole
@pytest.mark.parametrize("abi", [X86_64, I386])
def test_dwarf_of_a_header_agrees_with_pahole(header: Path, abi: str, tmp_path: Path) -> None:
    obj = tmp_path / f"demo-{abi}.o"
    subprocess.run(["cc", *ABI_FLAGS[abi], "-g", "-c", "-x", "c",
                    "-fno-eliminate-unused-debug-types", "-o", str(obj), str(header)],
                   check=True)  # fmt: skip
    ours = {s.name: s for s in compile_structs(header, [abi])}
    for name in FIELDS:
        theirs = pahole(name, obj)
        assert theirs is not None, name
        size, members = theirs
        assert ours[name].size == size
        mine = {m.name: (m.offset, m.size) for m in ours[name].members}
        for member, at in members.items():
            assert mine[member] == at, (abi, name, member)


def test_the_running_kernels_btf_through_layout(run_cli) -> None:  # type: ignore[no-untyped-def]
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("no kernel BTF here")
    doc = cli_json(run_cli("layout", "--from", str(vmlinux), "--struct", "list_head", "--json"))
    (s,) = doc["structs"]
    assert (s["size"], s["align"], [f["name"] for f in s["fields"]]) == (16, 8, ["next", "prev"])
