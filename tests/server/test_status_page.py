"""The status page at ``/``, rendered by headless Chromium on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import openai
import pytest

from tests.server.harness import ThreadGateway

pytestmark = pytest.mark.timeout(120)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: CI installs chromium (scripts/test.sh), so there a missing browser fails the test.
SKIP_WITHOUT_CHROMIUM = CHROMIUM is None and not os.environ.get("CI")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None, "chromium is not on PATH (scripts/test.sh installs it)"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )


@pytest.mark.skipif(SKIP_WITHOUT_CHROMIUM, reason="Debian's chromium package is not installed")
def test_status_page_renders_models_and_decisions(gateway: ThreadGateway, tmp_path: Path) -> None:
    c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    for _ in range(3):
        c.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hello"}])
    dom = _chromium(tmp_path, "--dump-dom", f"{gateway.url}/").stdout.decode()
    assert 'data-loaded="yes"' in dom
    assert "<td>mini</td>" in dom and "<td>cheap</td>" in dom
    assert "strategy ucb: chose mini" in dom  # the first decision's explanation
    assert "66.7%" in dom  # cache hit rate: two of three
    shot = tmp_path / "status.png"
    _chromium(tmp_path, f"--screenshot={shot}", f"{gateway.url}/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
