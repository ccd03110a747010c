"""SeaweedFS `weed mini` as the S3 (MinIO) endpoint: master, volume, filer, S3 and
admin in one process, every port on 127.0.0.1 and chosen by us.

Each SeaweedFS service also has a gRPC port; we set them all explicitly except the
admin one, because the built-in worker always dials admin port + 10000. Object
lock and versioning work. The access key pair comes from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY; without them the server is anonymous and lists no buckets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from minio import Minio

from devstack import binaries
from devstack.ports import LOOPBACK, free_port, free_port_with_partner, free_ports
from devstack.process import ProcessSpec
from devstack.service import RunningService, ServicePlan, start_service
from devstack.settings import DEFAULT_S3_ACCESS_KEY, DEFAULT_S3_SECRET_KEY

logger = logging.getLogger(__name__)

GRPC_OFFSET = 10000
_SOCKET_PATH_MAX = 100


@dataclass(frozen=True)
class S3Info:
    """How an S3 client (minio, boto3) reaches the server."""

    host: str
    port: int
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    @property
    def endpoint(self) -> str:
        """host:port, as the minio client takes it (with secure=False)."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """e.g. http://127.0.0.1:9000"""
        return f"http://{self.endpoint}"

    def describe(self) -> str:
        """One line for humans."""
        return f"{self.url} (S3; access key {self.access_key})"

    def client(self, http_client: urllib3.PoolManager | None = None) -> Minio:
        """A minio client for this endpoint; close `http_client` when done."""
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
            http_client=http_client,
        )


def probe(info: S3Info) -> None:
    """Return once an authenticated ListBuckets call succeeds; raise otherwise."""
    pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)
    try:
        info.client(pool).list_buckets()
    finally:
        pool.clear()


@dataclass(frozen=True)
class _Ports:
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    admin: int

    def unix_sockets(self) -> tuple[Path, ...]:
        """Sockets weed puts in /tmp whatever we ask; removed after stop."""
        named = {
            "s3": self.s3,
            "s3-grpc": self.s3_grpc,
            "master-grpc": self.master_grpc,
            "volume-grpc": self.volume_grpc,
            "filer": self.filer,
            "filer-grpc": self.filer_grpc,
            "admin-grpc": self.admin + GRPC_OFFSET,
        }
        return tuple(Path(f"/tmp/seaweedfs-{kind}-{port}.sock") for kind, port in named.items())


def _choose_ports(s3_port: int) -> _Ports:
    s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = free_ports(7)
    taken = {s3_port, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc}
    admin = free_port_with_partner(GRPC_OFFSET, exclude=taken)
    return _Ports(
        s3_port, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, admin
    )


def s3_plan(
    data_dir: Path,
    port: int,
    *,
    access_key: str = DEFAULT_S3_ACCESS_KEY,
    secret_key: str = DEFAULT_S3_SECRET_KEY,
) -> ServicePlan[S3Info]:
    """Plan `weed mini` with its S3 API on 127.0.0.1:`port`, internal ports free ones."""
    data_dir = data_dir.resolve()
    info = S3Info(LOOPBACK, port, access_key, secret_key)
    ports = _choose_ports(port)
    argv = [
        str(binaries.weed()),
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3_grpc}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master_grpc}",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume_grpc}",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer_grpc}",
        f"-admin.port={ports.admin}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
    ]
    # Unix sockets default to /tmp/seaweedfs-<kind>-<port>.sock; those that can
    # move go to the data folder, the others are removed after stop.
    if len(str(data_dir)) + len("/filer.sock") <= _SOCKET_PATH_MAX:
        argv += [f"-s3.localSocket={data_dir / 's3.sock'}",
                 f"-filer.localSocket={data_dir / 'filer.sock'}"]  # fmt: skip

    def prepare() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        # weed mini saves its flags here and reloads them; stale ports would win.
        (data_dir / "mini.options").unlink(missing_ok=True)

    spec = ProcessSpec(
        name="s3",
        argv=tuple(argv),
        log_path=data_dir / "seaweedfs.log",
        ready=lambda: probe(info),
        cwd=data_dir,
        env={"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key},
        stop_timeout=20.0,
        cleanup_paths=ports.unix_sockets(),
    )
    return ServicePlan(spec=spec, info=info, prepare=prepare)


def start_s3(
    data_dir: Path,
    port: int | None = None,
    *,
    access_key: str = DEFAULT_S3_ACCESS_KEY,
    secret_key: str = DEFAULT_S3_SECRET_KEY,
) -> RunningService[S3Info]:
    """Start SeaweedFS S3 on `port` (a free one if None)."""
    chosen = free_port() if port is None else port
    return start_service(s3_plan(data_dir, chosen, access_key=access_key, secret_key=secret_key))
