"""Reading a manifest for a command: on error, say every problem on stderr and start nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from fedsilo.api import Manifest, ManifestError, load_manifest


def manifest_or_report(path: str | Path, silo: str | None = None) -> Manifest | None:
    """The manifest at ``path`` (naming ``silo`` if given), or None after printing why not."""
    try:
        manifest = load_manifest(path)
    except ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    if silo is not None and silo not in manifest.job.spec.silos:
        print(
            f"error: --silo {silo} is not in the job's spec.silos ({', '.join(manifest.job.spec.silos)})",
            file=sys.stderr,
        )
        return None
    return manifest
