"""Which counter counts split locks or bus locks on which CPU (docs/reference.md
§5; Intel perfmon `*_core.json` and Linux tools/perf/pmu-events).

Raw x86 encoding: config = (umask << 8) | event, plus the edge bit (18)
where the event counts edges. On hybrid parts each row names the core type
whose PMU (`cpu_core`, `cpu_atom`) has the event.
"""

from __future__ import annotations

from dataclasses import dataclass

SPLIT_LOCK, BUS_LOCK, OTHER = "split_lock", "bus_lock", "other"
EDGE = 1 << 18

PERF_TYPE_SOFTWARE = 1
PERF_TYPE_RAW = 4


@dataclass(frozen=True)
class EventDef:
    name: str  # as perf lists it, lower case
    kind: str  # SPLIT_LOCK | BUS_LOCK | OTHER
    event: int
    umask: int
    edge: bool = False
    core_type: str | None = None  # None: the core PMU; "core" / "atom": that hybrid PMU

    @property
    def config(self) -> int:
        return (self.umask << 8) | self.event | (EDGE if self.edge else 0)


SQ_MISC_SPLIT_LOCK = EventDef("sq_misc.split_lock", SPLIT_LOCK, 0xF4, 0x10)
SQ_MISC_BUS_LOCK_ICL = EventDef("sq_misc.bus_lock", BUS_LOCK, 0xF4, 0x10)
SQ_MISC_BUS_LOCK = EventDef("sq_misc.bus_lock", BUS_LOCK, 0x2C, 0x10)
SQ_MISC_BUS_LOCK_P = EventDef("sq_misc.bus_lock", BUS_LOCK, 0x2C, 0x10, core_type="core")
SELF_LOCKS = EventDef("bus_lock.self_locks", BUS_LOCK, 0x63, 0x00, edge=True)
SPLIT_LOCKS_E = EventDef("bus_lock.split_locks", BUS_LOCK, 0x63, 0x08, core_type="atom")
LS_LOCKS_BUS_LOCK = EventDef("ls_locks.bus_lock", BUS_LOCK, 0x25, 0x01)

# Intel family 6 models.
_NEHALEM_TO_COMET_LAKE = {
    0x1A, 0x1E, 0x1F, 0x2E, 0x25, 0x2C, 0x2F,  # Nehalem, Westmere
    0x2A, 0x2D, 0x3A, 0x3E,  # Sandy Bridge, Ivy Bridge
    0x3C, 0x3F, 0x45, 0x46, 0x3D, 0x47, 0x4F, 0x56,  # Haswell, Broadwell
    0x4E, 0x5E, 0x55, 0x8E, 0x9E, 0xA5, 0xA6,  # Skylake (client, server), Kaby..Comet Lake
}  # fmt: skip
_ICE_LAKE_TO_ROCKET_LAKE = {0x7D, 0x7E, 0x6A, 0x6C, 0x8C, 0x8D, 0xA7}
_SERVERS_SINCE_SAPPHIRE_RAPIDS = {0x8F, 0xCF, 0xAD, 0xAE}  # Sapphire, Emerald, Granite Rapids
_HYBRID_GOLDEN_COVE_ERA = {0x97, 0x9A, 0xB7, 0xBA, 0xBF, 0xAA, 0xAC}  # Alder, Raptor, Meteor Lake
_HYBRID_SKYMONT_E_CORES = {0xC5, 0xC6, 0xB5, 0xBD}  # Arrow Lake, Lunar Lake
_TREMONT = {0x86, 0x96, 0x9C}
_AMD_ZEN_FAMILIES = {0x17, 0x19, 0x1A}

SOFTWARE = {  # perf's software events: counted anywhere, VMs included
    "cpu-clock": 0,
    "task-clock": 1,
    "page-faults": 2,
    "context-switches": 3,
    "cs": 3,
    "cpu-migrations": 4,
}


def table_for(vendor: str | None, family: int | None, model: int | None) -> list[EventDef]:
    """The split-lock and bus-lock events this CPU has, as far as we know."""
    if vendor == "GenuineIntel" and family == 6 and model is not None:
        if model in _NEHALEM_TO_COMET_LAKE:
            return [SQ_MISC_SPLIT_LOCK]
        if model in _ICE_LAKE_TO_ROCKET_LAKE:
            return [SQ_MISC_BUS_LOCK_ICL]
        if model in _SERVERS_SINCE_SAPPHIRE_RAPIDS:
            return [SQ_MISC_BUS_LOCK]
        if model in _HYBRID_GOLDEN_COVE_ERA:
            return [SQ_MISC_BUS_LOCK_P]  # E-cores (Gracemont, Crestmont): not in our sources
        if model in _HYBRID_SKYMONT_E_CORES:
            return [SQ_MISC_BUS_LOCK_P, SPLIT_LOCKS_E]
        if model in _TREMONT:
            return [SELF_LOCKS]
    if vendor == "AuthenticAMD" and family in _AMD_ZEN_FAMILIES:
        return [LS_LOCKS_BUS_LOCK]
    return []


def known_names() -> dict[str, list[EventDef]]:
    """Every event name we know, with its encodings (one name can differ by generation)."""
    out: dict[str, list[EventDef]] = {}
    for d in (
        SQ_MISC_SPLIT_LOCK,
        SQ_MISC_BUS_LOCK_ICL,
        SQ_MISC_BUS_LOCK,
        SELF_LOCKS,
        SPLIT_LOCKS_E,
        LS_LOCKS_BUS_LOCK,
    ):
        out.setdefault(d.name, []).append(d)
    return out
