"""Struct layouts (Xen vcpu_info, compat_vcpu_info, shared_info) and placement policies.

The offsets are typed in here and checked by tests against the same structs
compiled by the C compiler (csrc/xen_abi.h), so a typo cannot hide.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from splitlock_probe.model.access import LINE, PAGE

X86_64, I386 = "x86-64", "i386"


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int

    @property
    def bits(self) -> range:
        """Every bit of the field: the natural range of a bit offset into it."""
        return range(8 * self.size)


@dataclass(frozen=True)
class Layout:
    name: str
    size: int
    fields: tuple[Field, ...]
    description: str
    page_aligned: bool = False  # placed only at the start of a page
    default_field: str = "evtchn_pending_sel"  # what the event-channel code locks here
    abi: str = X86_64
    align: int = 0  # its own placement policy when --align is not given (0: DEFAULT_ALIGN)
    default_fields: tuple[str, ...] = ()  # probed when --field is not given (else default_field)
    builtin: bool = True  # typed in here, not read from the user's --from

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def label(self) -> str:
        """How tables, JUnit and compare name it: a struct of yours by name and ABI."""
        return layout_label(self.name, None if self.builtin else self.abi)

    @property
    def defaults(self) -> tuple[str, ...]:
        if not self.builtin:
            return self.default_fields
        return self.default_fields or (self.default_field,)

    @property
    def placement_align(self) -> int:
        return self.align or DEFAULT_ALIGN

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def _time_fields(base: int) -> tuple[Field, ...]:
    # struct vcpu_time_info (pvclock), 32 bytes, the same in both ABIs.
    return (
        Field("time", base, 32),
        Field("time.version", base + 0, 4),
        Field("time.pad0", base + 4, 4),
        Field("time.tsc_timestamp", base + 8, 8),
        Field("time.system_time", base + 16, 8),
        Field("time.tsc_to_system_mul", base + 24, 4),
        Field("time.tsc_shift", base + 28, 1),
        Field("time.flags", base + 29, 1),
        Field("time.pad", base + 30, 2),
    )


VCPU_INFO = Layout(
    "vcpu_info",
    64,
    (
        Field("evtchn_upcall_pending", 0, 1),
        Field("evtchn_upcall_mask", 1, 1),
        Field("evtchn_pending_sel", 8, 8),
        Field("arch", 16, 16),
        Field("arch.cr2", 16, 8),
        Field("arch.pad", 24, 8),
        *_time_fields(32),
    ),
    "Xen vcpu_info of a 64-bit guest",
)

COMPAT_VCPU_INFO = Layout(
    "compat_vcpu_info",
    64,
    (
        Field("evtchn_upcall_pending", 0, 1),
        Field("evtchn_upcall_mask", 1, 1),
        Field("pad0", 2, 2),
        Field("evtchn_pending_sel", 4, 4),
        Field("arch", 8, 24),
        Field("arch.cr2", 8, 4),
        Field("arch.pad", 12, 20),
        *_time_fields(32),
    ),
    "Xen vcpu_info of a 32-bit (compat) guest",
    abi=I386,
)

SHARED_INFO = Layout(
    "shared_info",
    PAGE,
    (
        Field("vcpu_info", 0, 32 * 64),
        Field("evtchn_pending", 0x800, 64 * 8),
        Field("evtchn_mask", 0xA00, 64 * 8),
    ),
    "Xen shared_info of a 64-bit guest (page aligned)",
    page_aligned=True,
    default_field="evtchn_pending",
)

COMPAT_SHARED_INFO = Layout(
    "compat_shared_info",
    PAGE,
    (
        Field("vcpu_info", 0, 32 * 64),
        Field("evtchn_pending", 0x800, 32 * 4),
        Field("evtchn_mask", 0x880, 32 * 4),
    ),
    "Xen shared_info of a 32-bit (compat) guest (page aligned)",
    page_aligned=True,
    default_field="evtchn_pending",
    abi=I386,
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (VCPU_INFO, COMPAT_VCPU_INFO, SHARED_INFO, COMPAT_SHARED_INFO)
}

DEFAULT_LAYOUTS = ("vcpu_info", "compat_vcpu_info")
DEFAULT_FIELD = "evtchn_pending_sel"  # vcpu_info's; each layout names its own default_field

ALIGNS = (1, 2, 4, 8)  # the policies of the Xen layouts' story (old KVM, compat, 64-bit)
DEFAULT_ALIGN = 4  # what patched KVM and Xen compat guests guarantee
MAX_ALIGN = PAGE  # a struct aligned to a page or more sits at one place in a page


def layout_label(name: str, abi: str | None) -> str:
    """A built-in layout's name fixes its ABI; a struct read from --from may
    exist in both ABIs, so its label carries the ABI: `name@i386`."""
    return name if abi is None or name in LAYOUTS else f"{name}@{abi}"


def check_align(align: int) -> int:
    """A placement alignment: a power of two from 1 to a page; ValueError otherwise."""
    if not (1 <= align <= MAX_ALIGN) or align & (align - 1):
        raise ValueError(f"alignment must be a power of two from 1 to {MAX_ALIGN}, not {align}")
    return align


class Span(str, Enum):
    LINE = "line"  # every aligned placement across one cache line
    PAGE = "page"  # every aligned placement in a page where the struct fits


def placements(layout: Layout, align: int, span: Span) -> range:
    """Offsets of the struct from the start of its page that the policy allows."""
    check_align(align)
    if layout.page_aligned:
        return range(0, 1)
    if span is Span.LINE:
        return range(0, LINE, align)
    return range(0, PAGE - layout.size + 1, align)
