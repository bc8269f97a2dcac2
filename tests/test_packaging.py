"""The package's metadata and the image's build stage agree (the Docker engine is not run here).

``pip install .`` in the Dockerfile's build stage reads ``pyproject.toml`` and every file it
names (the readme, the licence files): a file the stage does not copy fails the image build,
which nothing else in the suite would notice.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _build_stage_copies() -> set[str]:
    """What the Dockerfile's first stage copies from the build context before installing."""
    copied: set[str] = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM") and copied:
            break  # the runtime stage
        if line.startswith("RUN") and "pip install ." in line:
            break
        match = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line)
        if match:
            copied.update(match.group(1).split())
    return copied


def test_the_project_declares_an_spdx_licence_with_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # PEP 639: an SPDX expression (the table form is deprecated by setuptools).
    assert project["license"] == "Apache-2.0"
    for name in project["license-files"]:
        text = (ROOT / name).read_text()
        assert "Apache License" in text
        assert "Version 2.0, January 2004" in text


def test_the_image_build_stage_copies_every_file_the_metadata_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = {project["readme"], *project["license-files"], "pyproject.toml"}
    copied = _build_stage_copies()
    assert named <= copied, f"not copied before pip install: {sorted(named - copied)}"
