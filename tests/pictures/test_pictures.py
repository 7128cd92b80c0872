"""The pictures as pictures: scan, run --trace and host exported as SVG and
HTML, opened in headless chromium, screenshotted and looked at: not blank,
the colours of split, hazard and clean where the report has them, and the
key text in what the browser parsed (an XML error page would fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import DATA

CLI = [sys.executable, "-m", "splitlock_probe"]
HEADLESS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip
RED, GREEN, YELLOW = 1, 2, 3  # ANSI colour numbers: split, clean, hazard


def theme_colour(kind: str, ansi: int) -> tuple[int, int, int]:
    """The colour rich draws ANSI colour `ansi` with in an export: its SVG
    theme for SVG, its default terminal theme for HTML."""
    from rich.terminal_theme import DEFAULT_TERMINAL_THEME, SVG_EXPORT_THEME

    theme = SVG_EXPORT_THEME if kind == "svg" else DEFAULT_TERMINAL_THEME
    c = theme.ansi_colors[ansi]
    return (c.red, c.green, c.blue)


def export(tmp_path: Path, name: str, args: list[str], root: Path | None = None) -> Path:
    env = {**os.environ}
    env.pop(ROOT_ENV, None)
    if root is not None:
        env[ROOT_ENV] = str(root)
    svg, html = tmp_path / f"{name}.svg", tmp_path / f"{name}.html"
    cmd, rest = args[:1], args[1:]
    done = subprocess.run([*CLI, *cmd, "--export-svg", str(svg), "--export-html", str(html),
                           *rest], capture_output=True, text=True, cwd=tmp_path, env=env,
                          check=False, timeout=120)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return tmp_path


def shoot(browser: str, page: Path, out: Path, profile: Path) -> Image.Image:
    subprocess.run([browser, *HEADLESS, f"--user-data-dir={profile}", "--window-size=1300,1400",
                    f"--screenshot={out}", page.as_uri()], capture_output=True, check=True,
                   timeout=60)  # fmt: skip
    return Image.open(out).convert("RGB")


def dom(browser: str, page: Path, profile: Path) -> str:
    done = subprocess.run([browser, *HEADLESS, f"--user-data-dir={profile}", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, check=True,
                          timeout=60)  # fmt: skip
    return done.stdout


def near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 60) -> int:
    """Pixels within `tolerance` of `colour` (sum of channel distances)."""
    r0, g0, b0 = colour
    return sum(
        n
        for n, (r, g, b) in image.getcolors(maxcolors=1 << 20) or []
        if abs(r - r0) + abs(g - g0) + abs(b - b0) <= tolerance
    )


def colours_used(image: Image.Image) -> int:
    return len(image.getcolors(maxcolors=1 << 20) or [])


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, programs: Path) -> Path:
    out = tmp_path_factory.mktemp("pictures")
    export(out, "scan", ["scan"])
    export(out, "run", ["run", "--trace", "--", str(programs / "hazards"), "split", "3",
                        "hazard", "2"])  # fmt: skip
    export(out, "host", ["host"], root=DATA / "hosts" / "intel-adl-client-warn")
    return out


CASES = {
    # name: (text the page must hold, colours that must be seen)
    "scan": (["split-lock scan", "compat_vcpu_info", "cache-line map", "TSC cycles"], [RED, GREEN]),
    "run": (["site_split", "site_hazard", "lock bts qword ptr", "SPLIT LOCKS"], [RED, YELLOW]),
    "host": (["detectors", "split_lock_detect", "kmsg"], [GREEN]),
}


@pytest.mark.parametrize("kind", ["svg", "html"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_picture_shows_the_report(
    browser: str, pages: Path, tmp_path: Path, name: str, kind: str
) -> None:
    page = pages / f"{name}.{kind}"
    text, colours = CASES[name]
    image = shoot(browser, page, tmp_path / f"{name}-{kind}.png", tmp_path / "profile")
    assert colours_used(image) > 50, "blank, or nearly: the browser drew nothing"
    background = max(image.getcolors(maxcolors=1 << 20) or [(0, (0, 0, 0))])[0]
    assert background < 0.97 * image.width * image.height, "one colour fills the page"
    for ansi in colours:
        assert near(image, theme_colour(kind, ansi)) > 30, (name, kind, ansi)
    parsed = dom(browser, page, tmp_path / "profile")
    assert "error on line" not in parsed.lower()  # chromium's XML error page
    for words in text:
        # rich puts each run of text in its own element; non-breaking spaces in HTML
        assert words in parsed.replace("\u00a0", " ").replace("&nbsp;", " "), (name, kind, words)
