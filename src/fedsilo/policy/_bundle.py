"""The policy bundle: Rego modules and their data documents, as OPA loads them.

The canonical files live in the repository's ``policies/`` folder (with ``*_test.rego``
beside each policy); the package ships them as ``fedsilo/policy/bundle``, so the local
run's embedded engine, the OPA server and ``opa test`` all read the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from fedsilo.identity import sha256_digest


def default_bundle_path() -> Path:
    """Where the shipped bundle is."""
    return Path(str(files("fedsilo.policy") / "bundle"))


@dataclass(frozen=True)
class PolicyBundle:
    """Policy modules (name to source), data (merged by path), and a content digest."""

    root: Path
    modules: dict[str, str]
    data: dict[str, Any]
    digest: str

    @classmethod
    def load(cls, root: Path | None = None) -> PolicyBundle:
        """Read every ``*.rego`` (except tests) and every ``data.json`` under ``root``."""
        base = root or default_bundle_path()
        modules = {
            str(p.relative_to(base)): p.read_text(encoding="utf-8")
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
        material = json.dumps({"modules": modules, "data": data}, sort_keys=True).encode()
        return cls(base, modules, data, sha256_digest(material))
