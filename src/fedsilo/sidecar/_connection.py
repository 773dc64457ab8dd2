"""The sidecar's channel to the hub, dialled again with renewed mTLS files, without a restart.

A silo's client certificate may be short-lived (renewed at two thirds of its life by the
silo side that holds its CA: the silo operator in a cluster, which updates the mounted
key Secret). TLS presents a certificate only when a connection is made, and the hub
refuses a certificate past its ``notAfter`` on every call, so the sidecar must make new
connections with the renewed files before the old certificate expires. ``Connection.renew``
is called between calls (before each wait for a round, and before each round): when the
identity folder's ``tls.crt``/``tls.key`` changed and hold a matching pair, it opens a new
channel, re-binds the one stub every step holds to it, and closes the old channel (no call
is in flight between rounds). ``Sidecar`` holds one ``Connection``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc

from fedsilo.identity import SiloIdentity, TlsCredentials, certificate_expiry, check_key_pair, read_tls
from fedsilo.protocol import rpc

log = logging.getLogger("fedsilo.sidecar")

# The hub's rate limits (spec.rateLimits) refuse a call with RESOURCE_EXHAUSTED before it touches
# any round state: an honest sidecar that was too quick waits and calls again, with gRPC's own
# backoff, instead of failing its round. A streamed upload is retried only while gRPC still
# buffers it; past that the round's own deadline handles it.
_RETRY_WHEN_LIMITED = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "fedsilo.v1.Aggregator"}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "3s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["RESOURCE_EXHAUSTED"],
                },
            }
        ]
    }
)


def _channel(target: str, tls: TlsCredentials, aggregator_ca_pem: bytes | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=aggregator_ca_pem or tls.ca_certificate_pem,
        private_key=tls.private_key_pem,
        certificate_chain=tls.certificate_pem,
    )
    return grpc.secure_channel(
        target,
        credentials,
        options=[
            ("grpc.max_receive_message_length", 4 << 20),
            ("grpc.max_send_message_length", 4 << 20),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _RETRY_WHEN_LIMITED),
        ],
    )


def silo_channel(target: str, identity: SiloIdentity, aggregator_ca_pem: bytes | None) -> grpc.Channel:
    """The silo's mTLS channel to the aggregator with the identity it holds now (the statistics phase)."""
    return _channel(target, identity.tls, aggregator_ca_pem)


class Connection:
    """One channel to the hub at a time and the stub bound to it; ``renew`` swaps in renewed credentials."""

    def __init__(
        self, target: str, tls: TlsCredentials, aggregator_ca_pem: bytes | None, tls_dir: Path | None = None
    ) -> None:
        self._target = target
        self._tls = tls
        self._ca = aggregator_ca_pem
        # The identity folder to read renewed files from; None: the credentials never change.
        self._tls_dir = tls_dir
        self._channel = _channel(target, tls, aggregator_ca_pem)
        self.stub = rpc.AggregatorStub(self._channel)
        self.renewals = 0

    def renew(self) -> bool:
        """Dial with the identity folder's certificate if it was renewed; whether it was."""
        if self._tls_dir is None:
            return False
        try:
            tls = read_tls(self._tls_dir)
        except OSError as error:
            log.warning("mTLS files in %s unreadable (%s); the connection stays as it is", self._tls_dir, error)
            return False
        if tls.certificate_pem == self._tls.certificate_pem and tls.private_key_pem == self._tls.private_key_pem:
            return False
        try:
            check_key_pair(tls.private_key_pem, tls.certificate_pem)
        except ValueError as error:  # caught between the key's and the certificate's replacement
            log.info("mTLS files in %s not a pair yet (%s); read again later", self._tls_dir, error)
            return False
        old = self._channel
        self._channel = _channel(self._target, tls, self._ca)
        # The generated stub binds its methods to a channel when it is built: building it again in
        # place re-binds every holder of this one stub (the update's steps) to the new channel.
        rpc.AggregatorStub.__init__(self.stub, self._channel)
        old.close()
        self._tls = tls
        self.renewals += 1
        log.info(
            "dialling the hub with the renewed client certificate (valid until %s)",
            certificate_expiry(tls.certificate_pem).isoformat(),
        )
        return True

    def close(self) -> None:
        """Close the current channel."""
        self._channel.close()
