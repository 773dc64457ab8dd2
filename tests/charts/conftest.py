"""Fixtures and helpers of the chart tests: the real helm (``fedsilo_testing``), rendering a chart
into objects, and the scenario value files each chart keeps in its ``ci/`` folder.

Rendering and linting need only helm; installing needs the session's kube-apiserver too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
HUB_CHART = ROOT / "charts" / "fedsilo"
SILO_CHART = ROOT / "charts" / "fedsilo-silo"
CHARTS = (HUB_CHART, SILO_CHART)
#: Each chart's scenario value files, as chart-testing keeps them.
CI = {chart: chart / "ci" for chart in CHARTS}
#: Kinds whose objects run containers, and where their pod spec is.
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("fedsilo_testing.fixtures")


def scenario_files(chart: Path) -> list[Path]:
    """The scenario value files of ``chart`` (its ``ci/*-values.yaml``, as chart-testing reads them)."""
    return sorted((chart / "ci").glob("*-values.yaml"))


def scenario_id(path: Path) -> str:
    return f"{path.parent.parent.name}:{path.name.removesuffix('-values.yaml')}"


SCENARIOS = [pytest.param(path, id=scenario_id(path)) for chart in CHARTS for path in scenario_files(chart)]


@dataclass(frozen=True)
class Helm:
    """The real helm binary, run with an empty home so that no user configuration leaks in."""

    binary: Path
    home: Path

    def run(self, *args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run helm; on ``check`` a non-zero exit fails the test with helm's stderr."""
        env = {
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "PATH": "/usr/bin:/bin",
        }
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        completed = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=300, check=False
        )
        if check and completed.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} exited with {completed.returncode}:\n{completed.stderr}")
        return completed

    def template(
        self,
        chart: Path,
        *values: Path,
        namespace: str = "fedsilo-system",
        sets: Iterable[str] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``helm template`` of ``chart`` with value files and ``--set`` pairs, as a release named "t"."""
        args = ["template", "t", str(chart), "--namespace", namespace]
        for path in values:
            args += ["--values", str(path)]
        for pair in sets:
            args += ["--set", pair]
        return self.run(*args, check=check)

    def render(
        self, chart: Path, *values: Path, namespace: str = "fedsilo-system", sets: Iterable[str] = ()
    ) -> Objects:
        """The objects ``helm template`` renders (templates only: Helm's crds/ folder is not rendered)."""
        output = self.template(chart, *values, namespace=namespace, sets=sets).stdout
        return Objects([document for document in yaml.safe_load_all(output) if document])


class Objects(list[dict[str, Any]]):
    """Rendered objects, with look-ups by kind."""

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind``."""
        return [item for item in self if item["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        """The only object of ``kind``; fails if there are none or several."""
        found = self.of(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(object name, pod spec) of every object that runs pods."""
        for item in self:
            if item["kind"] in POD_TEMPLATE_KINDS:
                yield item["metadata"]["name"], item["spec"]["template"]["spec"]
            elif item["kind"] == "Pod":
                yield item["metadata"]["name"], item["spec"]


def container_args(objects: Objects) -> list[str]:
    """The arguments of the operator container of the chart's only Deployment."""
    args: list[str] = objects.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


@pytest.fixture(scope="session")
def helm(helm_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The pinned helm with a home of its own."""
    return Helm(helm_binary, tmp_path_factory.mktemp("helm-home"))
