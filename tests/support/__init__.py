"""Test support: the Go-built tools and the real servers they run (kube-apiserver + etcd, OPA).

The session fixtures that start these once per run are in ``tests.support.fixtures``,
registered from ``tests/conftest.py``.
"""

from tests.support.controlplane import ControlPlane as ControlPlane
from tests.support.controlplane import KubectlError as KubectlError
from tests.support.opa_server import OpaServer as OpaServer
from tests.support.tools import ToolUnavailable as ToolUnavailable
from tests.support.tools import pinned_version as pinned_version
from tests.support.tools import tool_path as tool_path

__all__ = ["ControlPlane", "KubectlError", "OpaServer", "ToolUnavailable", "pinned_version", "tool_path"]
