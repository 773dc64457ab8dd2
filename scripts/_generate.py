"""What ``scripts/generate`` runs: every generated file of the repository, rendered in one place.

Each generator returns the files it owns as ``{path relative to the repository: text}``;
``main`` writes them, or with ``--check`` compares them with what is there and names the
stale ones. Generating and checking share the rendering, so the check cannot drift from
the generator (cert-manager's ``make verify`` pattern: generate, then diff).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = "fedsilo/protocol/fedsilo.proto"
STUBS = ("fedsilo_pb2.py", "fedsilo_pb2.pyi", "fedsilo_pb2_grpc.py")
#: The alert rules (hand-written, tested by promtool) and the generated dashboard.
MONITORING = "deploy/monitoring"


def protobuf_stubs() -> dict[str, str]:
    """The gRPC stubs, made by the pinned grpcio-tools from the one ``.proto``."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                "-I",
                str(ROOT / "src"),
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                f"--pyi_out={out}",
                PROTO,
            ],
            check=True,
            cwd=ROOT,
        )
        folder = Path(out) / Path(PROTO).parent
        return {f"src/{Path(PROTO).parent}/{name}": (folder / name).read_text() for name in STUBS}


def crds() -> dict[str, str]:
    """The FederatedJob and Silo CRDs, from the API models."""
    from fedsilo.api._crd import render_crds

    return {f"crds/{name}": text for name, text in render_crds().items()}


def policy_schemas() -> dict[str, str]:
    """The JSON Schemas of the policy input documents, from the policy input models."""
    from fedsilo.policy import input_json_schemas

    return {
        f"src/fedsilo/policy/schema/{name}": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in input_json_schemas().items()
    }


def telemetry() -> dict[str, str]:
    """The metrics reference and the Grafana dashboard, from the one catalog of metrics."""
    from _dashboard import dashboard_json

    from fedsilo.telemetry import metrics_table

    dashboard = dashboard_json()
    rules = (ROOT / MONITORING / "fedsilo-rules.yaml").read_text(encoding="utf-8")
    return {
        "docs/metrics.md": metrics_table(),
        f"{MONITORING}/fedsilo-dashboard.json": dashboard,
        # Helm reads only files inside a chart: the hub chart carries copies.
        "charts/fedsilo/files/fedsilo-dashboard.json": dashboard,
        "charts/fedsilo/files/fedsilo-rules.yaml": rules,
    }


GENERATORS: tuple[Callable[[], dict[str, str]], ...] = (protobuf_stubs, crds, policy_schemas, telemetry)


def main(argv: list[str] | None = None) -> int:
    """Write every generated file, or (``--check``) exit 1 naming those a regeneration would change."""
    parser = argparse.ArgumentParser(prog="scripts/generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree to compare or write (default: this one)")
    args = parser.parse_args(argv)
    stale = []
    for generator in GENERATORS:
        for relative, text in generator().items():
            path: Path = args.root / relative
            if path.is_file() and path.read_text(encoding="utf-8") == text:
                continue
            stale.append(relative)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    # The charts' copies of the CRDs and RBAC rules come last: they are made from the CRDs just written.
    from _chart_files import main as chart_files_main

    charts = chart_files_main([*(["--check"] if args.check else []), "--root", str(args.root)])
    if args.check and stale:
        print(f"stale generated files (run scripts/generate): {', '.join(stale)}", file=sys.stderr)
        return 1
    for relative in stale:
        print(f"regenerated {relative}")
    return charts


if __name__ == "__main__":
    sys.exit(main())
