"""The command lines of the processes a job runs, as typed values that write and read their argv.

``fedsilo aggregator``, ``fedsilo sidecar`` and ``fedsilo trainer`` are started by a local
run (``fedsilo.runner``) and by the operator's pods (``fedsilo.operator``), and parsed by
the command line (``fedsilo.cli``). Each is one frozen dataclass here: its fields are the
flags (name, type, help), :meth:`LaunchArgs.argv` produces the arguments a starter passes,
and :meth:`LaunchArgs.register` / :meth:`LaunchArgs.from_namespace` give the parser that
reads them back. A flag added to a class reaches every starter and the parser at once.

``fedsilo operator --role`` takes an :class:`OperatorRole`; it is defined here, below the
operator, so the command line can offer its choices without importing kopf.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Self


class OperatorRole(StrEnum):
    """Which half of the system an operator process runs."""

    HUB = "hub"
    SILO = "silo"
    BOTH = "both"

    @property
    def runs_hub(self) -> bool:
        """Whether this process creates aggregators."""
        return self in (OperatorRole.HUB, OperatorRole.BOTH)

    @property
    def runs_silo(self) -> bool:
        """Whether this process creates silo workloads and identities."""
        return self in (OperatorRole.SILO, OperatorRole.BOTH)


def _help(text: str) -> dict[str, str]:
    """A field's metadata: its flag's help text."""
    return {"help": text}


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value_type(annotation: str) -> type:
    """The argparse type of a field from its (string) annotation: Path, int or str."""
    base = annotation.replace(" | None", "")
    return {"Path": Path, "int": int, "str": str}[base]


class _RaisingParser(argparse.ArgumentParser):
    """A parser that raises instead of printing usage and exiting: :meth:`LaunchArgs.parse` is a library call."""

    def error(self, message: str) -> NoReturn:
        """Raise the problem as a ValueError naming the command."""
        raise ValueError(f"{self.prog}: {message}")


@dataclass(frozen=True)
class LaunchArgs:
    """Base of the typed command lines; subclasses set ``COMMAND`` and ``HELP`` and declare flags."""

    COMMAND: ClassVar[str]
    HELP: ClassVar[str]

    def argv(self) -> list[str]:
        """``[COMMAND, --flag, value, ...]``: optional flags left at None or at their default are left out."""
        out = [self.COMMAND]
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is None or (spec.default is not dataclasses.MISSING and value == spec.default):
                continue
            out += [_flag_name(spec.name), str(value)]
        return out

    @classmethod
    def register(cls, commands: Any, **parser_options: Any) -> argparse.ArgumentParser:
        """Add the sub-command with one option per field; ``parser_options`` go to ``add_parser``."""
        parser: argparse.ArgumentParser = commands.add_parser(cls.COMMAND, help=cls.HELP, **parser_options)
        for spec in dataclasses.fields(cls):
            required = spec.default is dataclasses.MISSING
            options: dict[str, Any] = {"type": _value_type(str(spec.type)), "help": spec.metadata["help"]}
            if required:
                options["required"] = True
            else:
                options["default"] = spec.default
            parser.add_argument(_flag_name(spec.name), dest=spec.name, **options)
        return parser

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> Self:
        """The typed value of parsed arguments (the fields' names are the parser's destinations)."""
        return cls(**{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(cls)})

    @classmethod
    def parse(cls, argv: list[str]) -> Self:
        """Read back what :meth:`argv` wrote (``argv[0]`` is the command).

        Raises:
            ValueError: ``argv`` is another command's, or a flag is unknown, missing or malformed.
        """
        if not argv or argv[0] != cls.COMMAND:
            raise ValueError(f"expected the arguments of 'fedsilo {cls.COMMAND}', got {argv[:1]}")
        parser = _RaisingParser(prog="fedsilo", add_help=False)
        commands = parser.add_subparsers(dest="command", required=True, parser_class=_RaisingParser)
        cls.register(commands, add_help=False)
        return cls.from_namespace(parser.parse_args(argv))


@dataclass(frozen=True)
class _JobArgs(LaunchArgs):
    """What every process of a job reads first: the job manifest (``fedsilo.launch.render_job_manifest``)."""

    job_config: Path = field(metadata=_help("manifest with the job and its silos"))


@dataclass(frozen=True)
class _SiloArgs(_JobArgs):
    """A process that acts for one silo of the job."""

    silo: str = field(metadata=_help("this silo's name"))


@dataclass(frozen=True)
class AggregatorArgs(_JobArgs):
    """``fedsilo aggregator``: one job's hub, as the operator's Deployment runs it."""

    COMMAND: ClassVar[str] = "aggregator"
    HELP: ClassVar[str] = "run a job's aggregator (the hub's gRPC server), as the operator's Deployment does"

    listen: str = field(metadata=_help("HOST:PORT of the mTLS gRPC server"))
    tls_dir: Path = field(metadata=_help("the serving certificate Secret: tls.crt and tls.key"))
    state_dir: Path = field(metadata=_help("audit log, its signing key, model registry, ledger, outcome"))
    policy_url: str = field(metadata=_help("the OPA server, e.g. http://127.0.0.1:8181"))
    metrics_port: int = field(default=0, metadata=_help("Prometheus /metrics port (0: none)"))


@dataclass(frozen=True)
class SidecarArgs(_SiloArgs):
    """``fedsilo sidecar``: a silo's only network path, holder of its identity."""

    COMMAND: ClassVar[str] = "sidecar"
    HELP: ClassVar[str] = "run a silo's sidecar (its only network path)"

    aggregator: str = field(metadata=_help("HOST:PORT of the aggregator (mTLS)"))
    identity_dir: Path = field(metadata=_help("signing key and TLS files"))
    trainer_listen: str = field(metadata=_help("unix:PATH, or HOST:PORT (TLS) in a cluster"))
    aggregator_ca: Path | None = field(
        default=None, metadata=_help("CA of the aggregator's serving certificate (default: the identity's CA)")
    )
    aggregator_key: Path | None = field(
        default=None,
        metadata=_help(
            "the job's aggregator public key (base64 Ed25519, its aggregator-key.pub): every global "
            "model must carry its signature (default: models are not verified)"
        ),
    )
    ledger: Path | None = field(
        default=None, metadata=_help("the silo's privacy ledger (SQLite); required for DP jobs")
    )
    run_id: str = field(default="", metadata=_help("names this run of the job in the ledger (e.g. its UID)"))
    trainer_image_digest: str = field(
        default="",
        metadata=_help("sha256:... digest of the trainer's image, when its pod pins one: signed in every update"),
    )


@dataclass(frozen=True)
class TrainerArgs(_SiloArgs):
    """``fedsilo trainer``: a silo's training process, which talks only to its sidecar."""

    COMMAND: ClassVar[str] = "trainer"
    HELP: ClassVar[str] = "run a silo's trainer (talks only to its sidecar)"

    sidecar: str = field(metadata=_help("unix:PATH or HOST:PORT of the sidecar's trainer link"))
    sidecar_ca: Path | None = field(default=None, metadata=_help("CA certificate to verify a TCP sidecar"))
    data_path: str | None = field(default=None, metadata=_help("csv or npz file with this silo's records"))
    preprocessing: Path | None = field(
        default=None, metadata=_help("the fitted preprocessing (JSON) of a job with spec.data.preprocessing")
    )
