"""Peel the wrappers off a kernel-log line (docs/reference.md §4).

One line of text may come as a raw /dev/kmsg record, from dmesg (absolute,
`-H` relative, `-T` wall-clock, `-x` decoded, `-r` raw), from syslog or an
ISO-8601 journal, or nested (syslog around dmesg). unwrap() strips wrappers
from the front until none matches and keeps what they said: the first
timestamp, the kmsg sequence number, and whether the line came from the
kernel at all (facility 0, or the syslog tag `kernel`): a line that user
space wrote into the log must never pass for the kernel's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# <prio>,<seq>,<usec>,<flags>[,more];text
# (bounded: a 64-bit sequence or time has at most 20 digits; no int() of more)
_KMSG = re.compile(r"(?P<prio>\d{1,4}),(?P<seq>\d{1,20}),(?P<usec>\d{1,20}),[^;]{0,256};")
# dmesg -r: <prio>[ time] text
_RAW_PRIO = re.compile(r"<(?P<prio>\d{1,4})>")
# dmesg -x: "kern  :warn  : "
_DECODED = re.compile(
    r"(?P<facility>kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp"
    r"|local[0-7])\s*:(?:emerg|alert|crit|err|warn|notice|info|debug)\s*:\s?"
)
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
# Only time-shaped brackets: kernel messages themselves may start with "[Firmware Bug]".
_BRACKET = re.compile(
    r"\[\s*(?P<time>\+?\d{1,20}[.,]\d{1,20}"  # [ 5656.175277]  [  +0,000010]  [+19,619040]
    rf"|{_DAY} {_MONTH} [ \d]\d \d\d:\d\d:\d\d \d{{4}}"  # -T
    rf"|{_MONTH}\d{{1,2}} \d\d:\d\d)\]\s?"  # -H, the first line of a minute
)
_SYSLOG_TAG = r"(?:(?P<host>\S+) (?P<tag>[^\s:\[]+)(?:\[\d+\])?: )?"
_SYSLOG = re.compile(rf"(?P<time>{_MONTH} [ \d]\d \d\d:\d\d:\d\d) {_SYSLOG_TAG}")
_ISO = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)\s+" + _SYSLOG_TAG
)
_METADATA = re.compile(r" [A-Z_]+=")  # a /dev/kmsg continuation line
_MAX_WRAPPERS = 8


@dataclass(frozen=True)
class LogLine:
    text: str  # the message as the kernel printed it
    time: str | None = None  # the outermost timestamp, as written
    seq: int | None = None  # /dev/kmsg sequence number
    kernel: bool = True  # False: user space wrote it (facility != 0, tag != kernel)
    wrapped: bool = False  # some kernel-log wrapper was found around it


def unwrap(raw: str) -> LogLine | None:
    """The message inside `raw`; None for a /dev/kmsg metadata line."""
    line = raw.rstrip("\r\n")
    if _METADATA.match(line):
        return None
    time: str | None = None
    seq: int | None = None
    kernel = True
    wrapped = False
    for _ in range(_MAX_WRAPPERS):
        if m := _KMSG.match(line):
            kernel &= int(m["prio"]) >> 3 == 0
            seq = int(m["seq"])
            usec = int(m["usec"])
            time = time or f"{usec // 1_000_000}.{usec % 1_000_000:06d}"
        elif m := _RAW_PRIO.match(line):
            kernel &= int(m["prio"]) >> 3 == 0
        elif m := _DECODED.match(line):
            kernel &= m["facility"] == "kern"
        elif (m := _BRACKET.match(line)) or (m := _SYSLOG.match(line)) or (m := _ISO.match(line)):
            time = time or m["time"]
            if m.re is not _BRACKET and m["tag"] is not None:
                kernel &= m["tag"] == "kernel"
        else:
            break
        wrapped = True
        line = line[m.end() :]
    return LogLine(line, time, seq, kernel, wrapped)
