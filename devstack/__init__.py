"""Real servers for development and tests, as supervised child processes on loopback.

PostgreSQL 15, Redis 7, VictoriaMetrics (InfluxDB v2 write API), SeaweedFS (S3) and
RabbitMQ start on fixed or free ports, are checked with a real client request before
use, and stop cleanly with no orphan processes. `python -m devstack up|down|status` runs them
detached for `make up`; tests use the `start_*` functions through fixtures.
"""

from devstack.components import INFRA, infra_components
from devstack.errors import (
    DevstackError,
    MissingBinaryError,
    PortInUseError,
    ServiceStartError,
    SettingsError,
    StackStartError,
)
from devstack.ports import ensure_port_free, free_port, free_ports, is_port_free
from devstack.postgres import PostgresInfo, create_database, postgres_plan, start_postgres
from devstack.process import ManagedProcess, ProcessSpec, family, start_time
from devstack.rabbitmq import RabbitInfo, rabbitmq_plan, start_rabbitmq
from devstack.redis_server import RedisInfo, redis_plan, start_redis
from devstack.seaweed import S3Info, s3_plan, start_s3
from devstack.service import RunningService, ServiceInfo, ServicePlan, start_service
from devstack.settings import Settings
from devstack.stack import Component, ComponentContext, Stack
from devstack.victoria import (
    InfluxInfo,
    Series,
    export_series,
    force_flush,
    influx_plan,
    start_influx,
    wait_for_series,
)

__all__ = [
    "INFRA",
    "Component",
    "ComponentContext",
    "DevstackError",
    "InfluxInfo",
    "ManagedProcess",
    "MissingBinaryError",
    "PortInUseError",
    "PostgresInfo",
    "RabbitInfo",
    "ProcessSpec",
    "RedisInfo",
    "RunningService",
    "S3Info",
    "Series",
    "ServiceInfo",
    "ServicePlan",
    "ServiceStartError",
    "Settings",
    "SettingsError",
    "Stack",
    "StackStartError",
    "create_database",
    "ensure_port_free",
    "export_series",
    "family",
    "force_flush",
    "free_port",
    "free_ports",
    "infra_components",
    "influx_plan",
    "is_port_free",
    "postgres_plan",
    "rabbitmq_plan",
    "redis_plan",
    "s3_plan",
    "start_influx",
    "start_postgres",
    "start_rabbitmq",
    "start_redis",
    "start_s3",
    "start_service",
    "start_time",
    "wait_for_series",
]
