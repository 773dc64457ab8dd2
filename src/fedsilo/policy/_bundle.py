"""The policy bundle: Rego modules and their data documents, as OPA loads them.

The canonical files live in the repository's ``policies/`` folder (each policy with its
``*_test.rego``). ``fedsilo/policy/bundle`` is a symbolic link to that folder, so an
editable install reads the same files, and a built wheel carries a copy of them (setuptools
follows the link); ``tests/policy/test_bundle.py`` checks both. The embedded engine, the
OPA server and ``opa test`` therefore all read one source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from fedsilo.identity import sha256_digest
from fedsilo.protocol import canonical_json


def default_bundle_path() -> Path:
    """Where the installed package keeps its bundle."""
    return Path(str(files("fedsilo.policy") / "bundle"))


@dataclass(frozen=True)
class PolicyBundle:
    """Policy modules (path to source, tests left out), data (merged by folder), and a content digest."""

    root: Path
    modules: dict[str, str]
    data: dict[str, Any]
    digest: str

    @property
    def revision(self) -> str:
        """The revision every decision reports (``data.fedsilo.params.revision``)."""
        return str(self.data["fedsilo"]["params"]["revision"])

    def with_params(self, overrides: dict[str, Any]) -> PolicyBundle:
        """This bundle with ``data.fedsilo.params`` fields replaced (an installation's own parameters)."""
        data = json.loads(json.dumps(self.data))
        data["fedsilo"]["params"].update(overrides)
        return PolicyBundle(self.root, self.modules, data, _digest(self.modules, data))

    @classmethod
    def load(cls, root: Path | None = None) -> PolicyBundle:
        """Read every ``*.rego`` except tests, and every ``data.json`` at the path its folder names."""
        base = root or default_bundle_path()
        modules = {
            p.relative_to(base).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(base.rglob("*.rego"))
            if not p.name.endswith("_test.rego")
        }
        if not modules:
            raise FileNotFoundError(f"no Rego policies under {base}")
        data: dict[str, Any] = {}
        for path in sorted(base.rglob("data.json")):
            node = data
            for part in path.parent.relative_to(base).parts:
                node = node.setdefault(part, {})
            node.update(json.loads(path.read_text(encoding="utf-8")))
        return cls(base, modules, data, _digest(modules, data))


def _digest(modules: dict[str, str], data: dict[str, Any]) -> str:
    return sha256_digest(canonical_json({"modules": modules, "data": data}))
