"""Every shell example in the README and docs/ runs as written against a running demo.

A fenced block whose language is ``sh`` (or bash, shell) is an example. The blocks of one
file run in one bash session, top to bottom, as a reader would paste them, against a real
``gateway demo`` (its base URL in ``GW``, its demo.json in ``DEMO``, its data directory in
``DATA``, the project's ``gateway`` first on ``PATH``). Each block must exit 0 with
``set -eo pipefail``; ``curl`` fails on any HTTP error status there (``--fail-with-body``)
unless the block is marked ``<!-- expect-error -->``. HTML comments just above a block add
checks: ``<!-- expect: TEXT -->`` (TEXT must appear in the block's output). A block that
cannot run here (production set-up, an hour-long benchmark) says why:
``<!-- not run: REASON -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.settings import REPO_ROOT
from tests.demo_process import Demo, free_ports, running_demo

pytestmark = pytest.mark.slow

SHELL_LANGUAGES = {"sh", "bash", "shell"}
# In the order a reader meets them: the agency's API first, then the regulator's, then the
# administrator's (which changes the policy in force).
RUN_ORDER = ["docs/exchange.md", "docs/regulators.md", "docs/operations.md"]
MARKDOWN = sorted(
    [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")],
    key=lambda p: (RUN_ORDER.index(_rel) if (_rel := p.relative_to(REPO_ROOT).as_posix()) in
                   RUN_ORDER else len(RUN_ORDER), p.name),
)  # fmt: skip
_FENCE = re.compile(r"^```([\w+-]*)[^\n]*$")
_COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass
class Block:
    path: Path
    line: int
    code: str
    expects: list[str] = field(default_factory=list)
    expect_error: bool = False
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def shell_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    comments: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        comment = _COMMENT.match(line.strip())
        fence = _FENCE.match(line)
        if comment:
            comments.append(comment.group(1))
        elif fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence.group(1) in SHELL_LANGUAGES:
                block = Block(path, i + 1, "\n".join(lines[i + 1 : end]))
                for text in comments:
                    if text.startswith("expect:"):
                        block.expects.append(text.removeprefix("expect:").strip())
                    elif text == "expect-error":
                        block.expect_error = True
                    elif text.startswith("not run:"):
                        block.not_run = text.removeprefix("not run:").strip()
                blocks.append(block)
            comments = []
            i = end
        elif line.strip():
            comments = []
        i += 1
    return blocks


def _script(blocks: list[Block]) -> str:
    parts = [
        "set -eo pipefail",
        "exec 2>&1",  # one stream: each block's messages sit with its output
        # Examples that expect success fail on an HTTP error status, with the problem shown.
        'curl() { if [ -n "$DOC_EXPECT_ERROR" ]; then command curl "$@"; '
        'else command curl --fail-with-body "$@"; fi; }',
    ]
    for n, block in enumerate(blocks):
        parts.append(f"printf '\\n@@block {n}@@\\n'")
        parts.append(f"DOC_EXPECT_ERROR={'1' if block.expect_error else ''}")
        parts.append(block.code)
    parts.append("printf '\\n@@block end@@\\n'")
    return "\n".join(parts) + "\n"


def test_every_shell_example_runs_or_says_why() -> None:
    found = {path: shell_blocks(path) for path in MARKDOWN}
    assert sum(len(b) for b in found.values()) >= 20
    for blocks in found.values():
        for block in blocks:
            if block.not_run is not None:
                assert len(block.not_run) > 10, f"{block.where}: say why it is not run"
                assert not block.expects, f"{block.where}: expectations on a block not run"
    for name in ("exchange.md", "regulators.md", "operations.md"):
        runnable = [b for b in found[REPO_ROOT / "docs" / name] if b.not_run is None]
        assert len(runnable) >= 4, name


def test_the_block_reader_sees_marks_and_languages(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text(
        "text\n<!-- expect: hello -->\n<!-- expect-error -->\n```sh\necho hello\n```\n\n"
        "<!-- not run: needs a production database -->\n```bash\ngateway serve\n```\n"
        "```json\n{}\n```\n<!-- expect: stale -->\n\nparagraph\n```sh\necho x\n```\n",
        encoding="utf-8",
    )
    first, second, third = shell_blocks(sample)
    assert (first.code, first.expects, first.expect_error) == ("echo hello", ["hello"], True)
    assert second.not_run == "needs a production database"
    assert (third.expects, third.not_run) == ([], None)  # a paragraph in between: not its mark


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    first = free_ports(6)
    data_dir = tmp_path_factory.mktemp("docs-demo") / "demo"
    with running_demo(data_dir, first, first + 1) as running:
        running.wait_ready()
        yield running


@pytest.mark.parametrize(
    "path",
    [p for p in MARKDOWN if any(b.not_run is None for b in shell_blocks(p))],
    ids=lambda p: p.relative_to(REPO_ROOT).as_posix(),
)
def test_doc_examples_run_against_the_demo(demo: Demo, path: Path, tmp_path: Path) -> None:
    blocks = [b for b in shell_blocks(path) if b.not_run is None]
    env = {
        **os.environ,
        "GW": demo.base_url,
        "DEMO": str(demo.data_dir / "demo.json"),
        "DATA": str(demo.data_dir),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("MAKELEVEL", None)
    result = subprocess.run(
        ["/bin/bash", "-c", _script(blocks)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout
    outputs = re.split(r"^@@block (?:\d+|end)@@$", output, flags=re.MULTILINE)[1:]
    if result.returncode != 0:
        ran = len(outputs)
        block = blocks[ran - 1] if ran else blocks[0]
        pytest.fail(
            f"{block.where}: exit {result.returncode}\n--- block ---\n{block.code}\n"
            f"--- output ---\n{output[-4000:]}"
        )
    assert len(outputs) == len(blocks) + 1, output[-2000:]
    for block, out in zip(blocks, outputs, strict=False):
        for expected in block.expects:
            assert expected in out, f"{block.where}: {expected!r} not in the output:\n{out[-3000:]}"
