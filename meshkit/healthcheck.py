"""`python -m meshkit.healthcheck [host:port [CA CERT KEY]]`: exit 0 when the gRPC
server there answers grpc.health.v1 SERVING, 1 otherwise. The Dockerfile's
HEALTHCHECK; with the three PEM files it dials with mutual TLS (the services require
it), else plaintext. The target defaults to the audit-service's port."""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshkit.tls import TlsFiles, channel_credentials

DEFAULT_TARGET = "127.0.0.1:50052"
TIMEOUT_SECONDS = 3.0


def check(target: str, files: TlsFiles | None = None) -> bool:
    """True when `target` says SERVING for the whole server."""
    channel = (
        grpc.secure_channel(target, channel_credentials(files))
        if files is not None
        else grpc.insecure_channel(target)
    )
    try:
        with channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS
            )
    except grpc.RpcError as exc:
        print(f"{target}: {exc.code().name}", file=sys.stderr)
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (0, 1, 4):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    files = TlsFiles(args[1], args[2], args[3]) if len(args) == 4 else None
    return 0 if check(args[0] if args else DEFAULT_TARGET, files) else 1


if __name__ == "__main__":
    sys.exit(main())
