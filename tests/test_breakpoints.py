"""The agent's breakpoint mode for real: an int3 at each locked instruction of
each loaded image (csrc/agent/breakpoints.c), its sites from the tool's
socket (run/trace/siteserver.py). What glibc does with every signal blocked
must not kill the program; images loaded later are watched; what the
program does with SIGBUS and AC is its own; the wire layout is the
compiler's; the site cache is used and never trusted blindly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splitlock_probe.run.trace.sitewire import REPLY, SITE, pack, site_table
from tests.conftest import REPO, TRACERS, tracer_args, tracer_method
from tests.conftest import traced_run as traced


@pytest.fixture(scope="module")
def splitlib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lib") / "libsplitlib.so"
    source = REPO / "tests" / "progs" / "lib" / "splitlib.c"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(source)], check=True)
    return out


def test_the_wire_layout_is_the_compilers() -> None:
    from splitlock_probe.native.trace import sitewire_layout

    assert sitewire_layout() == (SITE.size, REPLY.size, 20)


def test_glibcs_blocked_windows_do_not_kill_and_library_sites_are_found(
    programs: Path, splitlib: Path
) -> None:
    """Threads made and ended, pthread_kill, raise, posix_spawn, fork, system():
    glibc blocks every signal in parts of them, where a breakpoint kills. A mutex
    placed to split is found at the C library's own lock op, naming our data; a
    library loaded by dlopen is watched from the loader's hook."""
    for _ in range(3):  # it died of SIGTRAP in 3 of 3 before the C library rules
        r, doc = traced("--trace=agent", "--", str(programs / "lifecycle"), str(splitlib))
        assert r.returncode == 0, (doc["exit"], doc["trace"]["notes"])
        sites = {s["symbol"].split("+")[0]: s for s in doc["trace"]["sites"]}
        assert set(sites) == {"pthread_mutex_lock", "split_in_library"}
        mutex = sites["pthread_mutex_lock"]
        assert mutex["location"].startswith("libc.so.6+") and mutex["kind"] == "split"
        assert (mutex["data"]["symbol"], mutex["data"]["offset"]) == ("lines", 62)
        assert sites["split_in_library"]["line_offsets"] == {"60": 1}
        points = doc["trace"]["breakpoints"]
        assert points["armed"] > 0 and points["unarmed"] == 0 and points["disarmed"] == 0
        assert points["not_armed"].get("internal", 0) > 0  # the C library's own code
        assert points["hits"] >= 64 * 100 * 2  # every worker's lock and unlock


def test_a_helper_thread_with_every_signal_blocked_takes_the_c_library_out(
    programs: Path, splitlib: Path
) -> None:
    """glibc's SIGEV_THREAD timer helper locks a mutex with every signal blocked:
    a breakpoint there killed the program (133). Now the C library's breakpoints
    are taken out first, and the report says what went unwatched."""
    r, doc = traced("--trace=agent", "--", str(programs / "lifecycle"), str(splitlib), "timer")
    assert r.returncode == 0, (doc["exit"], doc["trace"]["notes"])
    assert doc["trace"]["breakpoints"]["disarmed"] > 0
    assert any("taken out" in n and "every signal blocked" in n for n in doc["trace"]["notes"])
    # what came before is still found
    assert {s["symbol"].split("+")[0] for s in doc["trace"]["sites"]} == {
        "pthread_mutex_lock", "split_in_library"}  # fmt: skip


@pytest.mark.parametrize(
    ("program", "split"),
    [
        ("rawsig", 1),  # a SIGBUS handler installed by a raw rt_sigaction: spun for ever
        ("acself", 0),  # sets AC itself and expects its own BUS_ADRALN: never got it
    ],
)
def test_sigbus_and_ac_stay_the_programs_own(programs: Path, program: str, split: int) -> None:
    r, doc = traced("--trace=agent", "--", str(programs / program))
    assert r.returncode == 0, r.stderr[-400:]
    assert doc["trace"]["method"] == "breakpoint" and doc["trace"]["split"] == split


def test_the_site_cache_is_used_and_a_broken_entry_is_rebuilt(
    programs: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache" / "sites"  # not there yet: a CI job's first run makes it
    args = ("--trace=agent", "--site-cache", str(cache), "--", str(programs / "hazards"),
            "split", "1")  # fmt: skip
    r, first = traced(*args)
    assert r.returncode == 0
    assert oct(cache.stat().st_mode & 0o777) == oct(0o700)
    entries = sorted(cache.iterdir())
    assert len(entries) >= 2 and all(e.name.endswith(".sites") for e in entries)  # libc, prog
    for entry in entries:
        entry.write_bytes(b"{not json\n" + os.urandom(100))
    r, second = traced(*args)
    assert r.returncode == 0
    assert second["trace"]["split"] == first["trace"]["split"] == 1
    assert second["trace"]["breakpoints"]["armed"] == first["trace"]["breakpoints"]["armed"]
    assert all(e.read_bytes().startswith(b'{"watched"') for e in entries)  # rewritten whole
    (tmp_path / "file").write_text("")
    r = subprocess.run([sys.executable, "-m", "splitlock_probe", "run", "--trace",
                        "--site-cache", str(tmp_path / "file" / "sites"), "--", "true"],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 2 and "--site-cache" in r.stderr  # a usage error, not a traceback


def test_a_site_cache_others_can_write_is_never_trusted(programs: Path, tmp_path: Path) -> None:
    """What a cached table says decides where the agent writes jumps into the
    program's code: a directory others can write, or an entry that is not
    ours alone, would let them choose. The first is refused (exit 2), the
    second ignored and rebuilt; our own entries are 0600 whatever the umask."""
    cache = tmp_path / "sites"
    args = ("--trace=agent", "--site-cache", str(cache), "--", str(programs / "hazards"),
            "split", "1")  # fmt: skip
    r, first = traced(*args)
    assert r.returncode == 0
    entries = sorted(cache.iterdir())
    assert entries and all(e.stat().st_mode & 0o777 == 0o600 for e in entries)
    # A planted table: well formed, and watching nothing at all.
    for entry in entries:
        entry.write_bytes(b'{"watched": 0, "found": 0, "left": {}, "c_library": false}\n')
        entry.chmod(0o666)
    r, second = traced(*args)
    assert r.returncode == 0 and second["trace"]["split"] == 1  # rebuilt, not believed
    assert second["trace"]["breakpoints"]["armed"] == first["trace"]["breakpoints"]["armed"]
    cache.chmod(0o777)
    r = subprocess.run([sys.executable, "-m", "splitlock_probe", "run", *args], capture_output=True,
                       text=True, cwd=REPO, check=False)  # fmt: skip
    assert r.returncode == 2 and "writable by you alone" in r.stderr, r.stderr


def test_a_site_the_operand_of_which_cannot_misalign_is_not_armed(tmp_path: Path) -> None:
    """RIP-relative and aligned: its address keeps its alignment wherever the image
    loads, so it needs no breakpoint; misaligned or through a register, it does."""
    source = tmp_path / "fixed.c"
    source.write_text(
        "#include <stdint.h>\n"
        "static _Alignas(64) uint64_t words[16];\n"  # static: RIP-relative, not via the GOT
        "void fixed(void) { __atomic_fetch_or(&words[1], 1, __ATOMIC_SEQ_CST); }\n"
        "void moved(uint64_t *p) { __atomic_fetch_or(p, 1, __ATOMIC_SEQ_CST); }\n"
        "void odd(void) { __atomic_fetch_or((uint32_t *)((char *)words + 62), 1, 5); }\n"
    )
    lib = tmp_path / "libfixed.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    table = site_table(str(lib))
    assert (table.found, table.watched) == (3, 2)
    vaddrs = {SITE.unpack_from(table.packed, i * SITE.size)[0] for i in range(table.watched)}
    nm = subprocess.run(["nm", "-S", str(lib)], capture_output=True, text=True, check=True).stdout
    where = {f[3]: (int(f[0], 16), int(f[0], 16) + int(f[1], 16))
             for f in (line.split() for line in nm.splitlines()) if len(f) == 4}  # fmt: skip
    inside = {name for v in vaddrs for name, (lo, hi) in where.items() if lo <= v < hi}
    assert inside == {"moved", "odd"}


def test_pack_describes_the_operand_as_the_agent_computes_it() -> None:
    from splitlock_probe.binary.locked import LockedInsn

    class _Section:
        index = 1

    code = bytes.fromhex("f0834c881001")  # lock or dword ptr [rax + rcx*4 + 0x10], 1
    insn = LockedInsn(0x1000, _Section(), "lock or", "or", 4, None, "dword ptr [...]", None,  # type: ignore[arg-type]
                      0x10, code)  # fmt: skip
    packed = pack(insn)
    assert packed is not None
    vaddr, disp, length, width, base, index, scale, flags, disp_at, _, code, hop, _ = SITE.unpack(
        packed
    )
    fields = (vaddr, disp, length, width, base, index, scale, flags, disp_at, hop)
    assert fields == (0x1000, 0x10, 6, 4, 0, 1, 4, 0, 0, 0)  # rax + rcx * 4 + 0x10
    assert code.rstrip(b"\0") == insn.code


def test_the_run_options_before_the_command_keep_their_values(
    programs: Path, tmp_path: Path
) -> None:
    """`run --json -o FILE --trace=agent -- PROG`: FILE is -o's, not the command."""
    out = tmp_path / "run.json"
    r = subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", "--json", "-o", str(out),
         "--trace=agent", "--", str(programs / "hazards"), "split", "1"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["command"][0] == str(programs / "hazards") and doc["trace"]["split"] == 1


@pytest.mark.parametrize("tracer", TRACERS)
def test_a_jump_keeps_every_register_the_flags_and_the_count(programs: Path, tracer: str) -> None:
    """Misaligned locked ops of 5 bytes or more, based on rbx, on rsp and
    RIP-relative, and a 4-byte one that hops through alignment filler, run
    through breakpoint mode's jump and its stub: every
    register, the arithmetic flags and memory are what the op alone leaves
    (jumpregs checks them itself), each op is found once; and 2 threads
    adding to one split counter through the same jump lose no add."""
    r, doc = traced(*tracer_args(tracer), "--", str(programs / "jumpregs"))
    assert r.returncode == 0, (doc["exit"], r.stderr[-400:])
    ops = sorted((s["instruction"].split("[")[1].split("]")[0], s["count"])
                 for s in doc["trace"]["sites"])  # fmt: skip
    assert [(base.split(" ")[0], count) for base, count in ops] == [
        ("rbx", 1), ("rbx", 1), ("rbx", 1), ("rip", 1), ("rsp", 1)]  # fmt: skip
    if tracer_method(tracer) == "breakpoint":
        points = doc["trace"]["breakpoints"]
        assert points["jumps"] >= 5 and points["hops"] >= 1
    r, doc = traced(*tracer_args(tracer), "--", str(programs / "jumpregs"), "threads")
    assert r.returncode == 0, (doc["exit"], r.stderr[-400:])  # 30, 31: an add was lost
    assert [s["count"] for s in doc["trace"]["sites"]] == [20000, 20000]
    if tracer_method(tracer) == "breakpoint":  # only the misaligned runs raised a signal
        assert doc["trace"]["breakpoints"]["trapped"] == 40000


@pytest.mark.parametrize("tracer", TRACERS)
def test_a_short_cas_loop_moves_its_jne_into_the_stub(programs: Path, tracer: str) -> None:
    """`lock cmpxchg %edx,(%rdi)` is 4 bytes: too short for a jump, so its
    `jne` moves into the stub with it and is re-aimed there. Two threads add
    through it, one aligned, one split: both totals exact (casloop checks),
    every split add found, and under breakpoints only the misaligned ones
    raise a signal."""
    r, doc = traced(*tracer_args(tracer), "--", str(programs / "casloop"))
    assert r.returncode == 0, (doc["exit"], r.stderr[-400:])  # 1, 2: an add was lost
    sites = doc["trace"]["sites"]
    assert [(s["count"], s["line_offsets"]) for s in sites] == [(20000, {"62": 20000})]
    if tracer_method(tracer) == "breakpoint":
        points = doc["trace"]["breakpoints"]
        assert points["hits"] >= 40000 and points["trapped"] == 20000


def test_what_may_move_with_a_short_site(programs: Path) -> None:
    """moved.py's rules on hand-laid functions (tests/progs/movecases.c): a
    plain instruction after a short locked op moves; nothing moves when it is
    a branch target, when the function jumps through a register, or when a
    call follows; a conditional jump moves last."""
    from splitlock_probe.binary.image import ElfImage
    from splitlock_probe.binary.locked import locked_instructions
    from splitlock_probe.run.trace.moved import Mover

    image = ElfImage(str(programs / "movecases"))
    targets: set[int] = set()
    sites = list(locked_instructions(image, targets))
    mover = Mover(image, targets)
    found = {}
    for insn in sites:
        name = (image.function_at(insn.vaddr) or "?").split("+")[0]
        found[name] = mover.moved(insn.vaddr, len(insn.code), insn.section)
    assert found["mv_free"] == (bytes.fromhex("89f0"), False)  # mov %esi,%eax: 4 + 2 bytes
    assert found["mv_target"] is None
    assert found["mv_table"] is None
    assert found["mv_call"] is None
    moved, jcc = found["mv_jcc"] or (b"", False)
    assert jcc and moved[0] & 0xF0 == 0x70  # jne rel8


@pytest.mark.parametrize(
    ("entry", "hops"),
    [
        (".Lg:", True),  # a plain local label: nothing can enter the filler
        (".globl g\n.type g,@function\ng:", False),  # a function starts in it
        (".Lg:\n.cfi_startproc", False),  # an unwind entry starts in it, no symbol
        (".Lg:\n.set TAKEN, 1", False),  # code takes its address: lea .Lg(%rip)
    ],
)
def test_a_short_site_hops_only_through_filler_nothing_can_enter(
    tmp_path: Path, entry: str, hops: bool
) -> None:
    """`lock incl (%rdi); ret` (nothing may move with it) and 12 nops up to the
    next 16 bytes: the site may hop through them, unless a function starts
    there or code takes an address in them (an entry reached through a
    pointer may begin with nops)."""
    source = tmp_path / "f.S"
    end = ".cfi_endproc\n" if "cfi" in entry else ""
    taken = "lea .Lg(%rip), %rax\n" if "TAKEN" in entry else ""
    source.write_text(
        ".text\n.p2align 4\n.globl f\n.type f,@function\nf:\nlock incl (%rdi)\nret\n"
        f"nop\nnop\n{entry}\n" + "nop\n" * 10 + f"call f\n{taken}call f\n{end}"
    )
    lib = tmp_path / "libf.so"
    subprocess.run(["gcc", "-shared", "-nostdlib", "-o", str(lib), str(source)], check=True)
    table = site_table(str(lib))
    assert table.watched == 1
    hop = SITE.unpack_from(table.packed, 0)[11]
    assert (hop != 0) == hops, hop
    if hops:
        assert hop == 4  # the first filler byte after the ret, within a rel8's reach
