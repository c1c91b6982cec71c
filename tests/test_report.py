"""`vigil report` on a replay-seeded store: one self-contained HTML file, loaded in headless
Chromium (Debian's `chromium`) with no console messages, every chart drawn (its series'
colours are on the screenshot, which the test saves)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dashboards.svg import _PALETTE
from tests.fixtures.png import png_colours
from tests.fixtures.seeded import Seeded, run_vigil


@pytest.fixture(scope="module")
def report(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    done = run_vigil(seeded.config, "report", "--out", str(out))
    return out, done.stdout


def test_the_report_is_one_self_contained_file(report: tuple[Path, str]) -> None:
    path, printed = report
    page = path.read_text()
    assert re.search(r"wrote .*report\.html: \d+ sections, 7 of 7 charts with data", printed)
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    for section in ("judge_scores", "incidents", "shifted_topics", "alerts", "top_failures",
                    "evalset_versions"):  # fmt: skip
        assert f'id="{section}"' in page
    assert page.count('<svg class="chart"') == 7
    # The drift section names clusters with example prompts; the eval set is listed.
    assert 'class="cluster"' in page and "<li>" in page
    assert "seeded" in page


def test_chromium_loads_it_without_errors_and_draws_every_chart(
    report: tuple[Path, str], tmp_path: Path
) -> None:
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium package is needed (scripts/bootstrap.sh installs it)"
    path, _ = report
    shot = tmp_path / "report.png"
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            profile, "--enable-logging=stderr", "--v=0"]  # fmt: skip
    done = subprocess.run(
        [*base, "--window-size=1000,4600", "--force-device-scale-factor=0.5",
         f"--screenshot={shot}", path.as_uri()],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CONSOLE" not in done.stderr, done.stderr[-2000:]
    dom = subprocess.run(
        [*base, "--dump-dom", path.as_uri()], capture_output=True, text=True, check=False
    )
    assert dom.stdout.count('<svg class="chart"') == 7
    assert dom.stdout.count('class="series"') >= 7
    colours = png_colours(shot)
    first_series = tuple(int(_PALETTE[0][i : i + 2], 16) for i in (1, 3, 5))
    assert first_series in colours  # a line was painted, not just the page
    saved = Path("/tmp/vigil-report-screenshot.png")
    shutil.copy(shot, saved)
