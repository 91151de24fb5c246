"""The documentation site builds without a warning, documents every public
name, shows the examples as tested, and its runnable code runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import tokenpair
import tokenpair.endpoints
import tokenpair.testing

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNNABLE = "<!-- runnable -->"
FENCE = re.compile(
    r"^(?P<marker><!-- runnable -->\n)?```(?P<lang>\w+)(?P<attrs>[^\n]*)\n"
    r"(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    code: str
    runnable: bool


def blocks_of(page: Path) -> list[Block]:
    found = []
    for match in FENCE.finditer(page.read_text(encoding="utf-8")):
        title = re.search(r'title="([^"]+)"', match["attrs"])
        found.append(
            Block(
                lang=match["lang"],
                title=title.group(1) if title else None,
                code=match["code"],
                runnable=match["marker"] is not None,
            )
        )
    return found


def clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPAIR_")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``mkdocs build --strict`` makes it."""
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site_dir],
        cwd=ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    return site_dir


def test_the_site_builds_strictly_with_every_page(site: Path) -> None:
    pages = sorted(
        path.relative_to(DOCS).with_suffix("").as_posix() for path in DOCS.rglob("*.md")
    )

    for page in pages:
        built = site / ("" if page == "index" else page) / "index.html"
        assert built.is_file(), page


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    html = (site / "api" / "index.html").read_text(encoding="utf-8")

    for module in (tokenpair, tokenpair.endpoints, tokenpair.testing):
        for name in module.__all__:
            assert f'id="{module.__name__}.{name}"' in html, name


def test_every_example_is_shown_as_it_is_tested(site: Path) -> None:
    page = (DOCS / "examples.md").read_text(encoding="utf-8")
    html = (site / "examples" / "index.html").read_text(encoding="utf-8")
    examples = sorted((DOCS / "examples").glob("*_app.py"))

    assert len(examples) == 5
    assert "8&lt;--" not in html
    for example in examples:
        assert f"--8<--\n    docs/examples/{example.name}\n    --8<--" in page
        # A line of the file, as highlighted text, proves the inclusion.
        docstring = example.read_text(encoding="utf-8").splitlines()[0]
        assert docstring.strip('"') in html, example.name


def run_console(code: str, cwd: Path) -> None:
    for line in code.splitlines():
        if not line.startswith("$ "):
            continue
        argv = shlex.split(line[2:])
        if argv[0] == "python":
            argv[0] = sys.executable
        elif argv[0] == "pytest":
            argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv[1:]]
        else:
            pytest.fail(f"no way to run {line!r}")
        result = subprocess.run(
            argv,
            cwd=cwd,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("page", ["getting-started.md"])
def test_runnable_code_runs(page: str, tmp_path: Path) -> None:
    """Every block marked runnable is run in a fresh folder, in page order,
    after every block with a file name has been written there."""
    blocks = blocks_of(DOCS / page)
    runnable = [block for block in blocks if block.runnable]
    assert {block.lang for block in runnable} >= {"python", "console"}

    for block in blocks:
        if block.title is not None:
            (tmp_path / block.title).write_text(block.code, encoding="utf-8")
    for block in runnable:
        if block.lang == "console":
            run_console(block.code, tmp_path)
        else:
            assert block.title is not None, block.code[:80]
            run_console(f"$ python {block.title}", tmp_path)
