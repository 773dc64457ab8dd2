"""The local run: a whole federated job on one machine (``fedsilo run``)."""

from ._gate import AUDIT_LOG as AUDIT_LOG
from ._gate import build_gate as build_gate
from ._isolation import Isolation as Isolation
from ._isolation import detect_isolation as detect_isolation
from ._local import LocalRun as LocalRun
from ._local import RunOptions as RunOptions
from ._report import RoundRow as RoundRow
from ._report import RunReport as RunReport
from ._report import render_table as render_table
from ._report import write_plot as write_plot
from ._report import write_privacy_plot as write_privacy_plot

__all__ = [
    "AUDIT_LOG",
    "Isolation",
    "LocalRun",
    "RoundRow",
    "RunOptions",
    "RunReport",
    "build_gate",
    "detect_isolation",
    "render_table",
    "write_plot",
    "write_privacy_plot",
]
