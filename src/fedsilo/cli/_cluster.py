"""``fedsilo operator`` and ``fedsilo aggregator``: the two hub-side processes a cluster runs.

``fedsilo operator`` is the operator image's command (``operator/Dockerfile``); it hands
its flags to :func:`fedsilo.operator.run_operator`. ``fedsilo aggregator`` is what the
operator's aggregator Deployment runs: its flags are :class:`fedsilo.launch.AggregatorArgs`
(the operator writes them with the same class) and its life, from the mounted files to the
job's outcome, is :func:`fedsilo.runner.run_aggregator`; this module maps the outcome and
the typed errors to exit codes.

Kubernetes and kopf are imported inside the handlers, so ``fedsilo sidecar`` and ``fedsilo
trainer`` (same command line, same image) never load the operator's client libraries.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedsilo.launch import AggregatorArgs, OperatorRole, silo_ca_file
from fedsilo.runner import AggregatorConfigError, AggregatorEnvironmentError, run_aggregator

from ._exit import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ._manifests import manifest_or_report

# ----- fedsilo operator ----------------------------------------------------------------------


def _port_or_none(port: int) -> int | None:
    return port or None


def _operator(args: argparse.Namespace) -> int:
    from fedsilo.operator import OperatorConfig, operator_settings, run_operator

    defaults = OperatorConfig()
    try:
        config = OperatorConfig(
            image=args.image or defaults.image,
            trainer_image=args.trainer_image or defaults.trainer_image,
            opa_image=args.opa_image or defaults.opa_image,
            image_pull_policy=args.image_pull_policy or defaults.image_pull_policy,
            cluster_domain=args.cluster_domain or defaults.cluster_domain,
            remote_silo_cidrs=tuple(args.remote_silo_cidr),
        )
    except ValueError as error:
        print(f"error: --remote-silo-cidr: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.policy_params is not None:
        from fedsilo.operator import PolicyParameters
        from fedsilo.protocol import MessageError

        try:
            config = replace(config, policy_parameters=PolicyParameters.read(args.policy_params))
        except (OSError, MessageError) as error:
            print(f"error: --policy-params {args.policy_params}: {error}", file=sys.stderr)
            return EXIT_USAGE
    try:
        operator_settings(args.role, args.instance)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        print(f"error: --kubeconfig {args.kubeconfig} is not a file", file=sys.stderr)
        return EXIT_USAGE
    run_operator(
        args.role,
        args.namespace,
        kubeconfig=args.kubeconfig,
        config=config,
        metrics_port=_port_or_none(args.metrics_port),
        liveness_port=_port_or_none(args.liveness_port),
        peering=not args.no_peering,
        priority=args.priority,
        instance=args.instance,
    )
    return EXIT_OK


# ----- fedsilo aggregator --------------------------------------------------------------------


def _aggregator(parsed: argparse.Namespace) -> int:
    args = AggregatorArgs.from_namespace(parsed)
    manifest = manifest_or_report(args.job_config)
    if manifest is None:
        return EXIT_USAGE
    try:
        outcome = run_aggregator(args, manifest)
    except AggregatorConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except AggregatorEnvironmentError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    return EXIT_OK if outcome.succeeded else EXIT_FAILED


def register(commands: Any) -> None:
    """Add ``operator`` and ``aggregator``."""
    operator = commands.add_parser(
        "operator",
        help="run the Kubernetes operator (hub: aggregators; silo: identities and silo pods)",
        description="Run the fedsilo operator until SIGTERM. Ports set to 0 are not served.",
    )
    operator.add_argument(
        "--role", choices=[role.value for role in OperatorRole], required=True, help="which half to run"
    )
    operator.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch and create objects in NS (repeat for more); none means cluster-wide",
    )
    operator.add_argument("--kubeconfig", type=Path, help="credentials file (default: in-cluster, else $KUBECONFIG)")
    operator.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics port (default 8080)")
    operator.add_argument("--liveness-port", type=int, default=8081, help="/healthz port for probes (default 8081)")
    operator.add_argument("--no-peering", action="store_true", help="run standalone, without kopf peering")
    operator.add_argument("--priority", type=int, help="peering priority of this replica (default random)")
    operator.add_argument(
        "--instance",
        default="",
        help="this installation's name (a DNS name) when several operators of one role share a namespace, "
        "e.g. two partners' silo operators in one job namespace: kopf's state and peering become its own",
    )
    operator.add_argument("--image", help="image of the sidecar pods (no PyTorch)")
    operator.add_argument("--trainer-image", help="image of the trainer and aggregator pods (with PyTorch)")
    operator.add_argument("--opa-image", help="image of the OPA container beside each aggregator")
    operator.add_argument(
        "--policy-params",
        type=Path,
        help="JSON file of job-policy parameters for this installation (docs/policy-input.md)",
    )
    operator.add_argument(
        "--image-pull-policy", choices=("Always", "IfNotPresent", "Never"), help="of the pods' containers"
    )
    operator.add_argument("--cluster-domain", help="DNS suffix of Services (default cluster.local)")
    operator.add_argument(
        "--remote-silo-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="hub: a network of silos in other clusters that may reach the aggregators' gRPC port (repeat for "
        "more); this cluster's silos are admitted by their namespace's fedsilo.io/silo-namespace=true label",
    )
    operator.set_defaults(handler=_operator)

    AggregatorArgs.register(
        commands,
        description=(
            f"Serve one job's rounds over mutual TLS. Each silo's own CA is read from {silo_ca_file('SILO')} "
            "beside --job-config; a silo's certificate is accepted only from its own CA. Exits 0 when the job succeeded, 1 when it failed; in a cluster "
            "(FEDSILO_JOB_* set) it then waits to be stopped, so that it is not restarted into the same job."
        ),
    ).set_defaults(handler=_aggregator)
