"""fedsilo's test support: the Go-built tools and the real servers they run (kube-apiserver + etcd, OPA).

One importable package for everything that needs a real control plane or OPA in this
checkout: the tests (``tests/conftest.py`` registers :mod:`fedsilo_testing.fixtures` as a
pytest plugin) and the benchmarks import it by name, as they import ``fedsilo``. It lives
beside ``fedsilo`` in ``src/`` so the editable install puts it on the path, but it is not
part of the distribution: it builds its tools with this checkout's ``scripts/build-tools``.
"""

from fedsilo_testing._process import free_port as free_port
from fedsilo_testing.controlplane import ControlPlane as ControlPlane
from fedsilo_testing.controlplane import KubectlError as KubectlError
from fedsilo_testing.controlplane import install_crds as install_crds
from fedsilo_testing.opa_server import OpaServer as OpaServer
from fedsilo_testing.tools import ToolUnavailable as ToolUnavailable
from fedsilo_testing.tools import pinned_version as pinned_version
from fedsilo_testing.tools import tool_path as tool_path

__all__ = [
    "ControlPlane",
    "KubectlError",
    "OpaServer",
    "ToolUnavailable",
    "free_port",
    "install_crds",
    "pinned_version",
    "tool_path",
]
