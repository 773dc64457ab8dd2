"""What one sidecar is told at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fedsilo.api import FederatedJob
from fedsilo.identity import VerifyKey


@dataclass(frozen=True)
class SidecarConfig:
    """Everything one sidecar needs to know."""

    job: FederatedJob
    silo: str
    aggregator: str
    peer_keys: Mapping[str, VerifyKey]
    # How long to keep trying to reach the aggregator before giving up.
    connect_timeout: float = 60.0
