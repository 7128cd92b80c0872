"""`make test-pictures`: the SVG and HTML outputs rendered by a real browser.

These need Debian's chromium (the Makefile target and .ci/run install it) and
run only when SPLITLOCK_PROBE_PICTURES=1 (`make test-pictures` sets it), so
`make test` stays fast. Asked for and without a browser they fail: a picture
test that cannot look is not a pass."""

from __future__ import annotations

import os
import shutil

import pytest

ENABLE = "SPLITLOCK_PROBE_PICTURES"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(ENABLE) == "1":
        return
    skip = pytest.mark.skip(reason=f"pictures: `make test-pictures` runs these ({ENABLE}=1)")
    for item in items:
        if "pictures" in item.nodeid.split("/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        why = "no chromium: `make test-pictures` installs Debian's (apt-get install chromium)"
        pytest.fail(why, pytrace=False)
    return found
