"""The infrastructure components of the mesh: PostgreSQL, Redis, InfluxDB (write
API by VictoriaMetrics), S3 (SeaweedFS) and RabbitMQ, as Stack components."""

from __future__ import annotations

from typing import Any

from devstack import postgres, rabbitmq, redis_server, seaweed, victoria
from devstack.secrets import dev_password
from devstack.service import ServicePlan
from devstack.settings import (
    DEFAULT_PG_BINDIR,
    DEFAULT_S3_ACCESS_KEY,
    DEFAULT_S3_SECRET_KEY,
    PORT_VARIABLES,
    Settings,
)
from devstack.stack import Component, ComponentContext, restore_as

INFRA = ("postgres", "redis", "influx", "s3", "rabbitmq")


def infra_components(settings: Settings | None = None, *, fsync: bool = True) -> list[Component]:
    """The five servers; on the fixed ports of `settings`, or on free ports if None.

    `fsync=False` makes PostgreSQL faster and unsafe on power loss, and runs Redis
    without its append-only file: tests only.
    """
    pg_bindir = settings.pg_bindir if settings else DEFAULT_PG_BINDIR
    access_key = settings.s3_access_key if settings else DEFAULT_S3_ACCESS_KEY
    secret_key = settings.s3_secret_key if settings else DEFAULT_S3_SECRET_KEY

    def plan_postgres(ctx: ComponentContext) -> ServicePlan[Any]:
        return postgres.postgres_plan(ctx.data_dir, ctx.port, fsync=fsync, bindir=pg_bindir)

    def plan_redis(ctx: ComponentContext) -> ServicePlan[Any]:
        appendfsync = "everysec" if fsync else None
        return redis_server.redis_plan(ctx.data_dir, ctx.port, appendfsync=appendfsync)

    def plan_influx(ctx: ComponentContext) -> ServicePlan[Any]:
        return victoria.influx_plan(ctx.data_dir, ctx.port)

    def plan_s3(ctx: ComponentContext) -> ServicePlan[Any]:
        secret = secret_key
        if settings is not None and secret == DEFAULT_S3_SECRET_KEY:
            # `make up` without MESH_S3_SECRET_KEY: a random dev key kept under .run/.
            secret = dev_password(ctx.data_dir.resolve() / "s3-secret-key")
        return seaweed.s3_plan(ctx.data_dir, ctx.port, access_key=access_key, secret_key=secret)

    def plan_rabbitmq(ctx: ComponentContext) -> ServicePlan[Any]:
        return rabbitmq.rabbitmq_plan(ctx.data_dir, ctx.port)

    def port(name: str) -> int | None:
        return settings.port_of(name) if settings else None

    return [
        Component(
            name="postgres",
            label="PostgreSQL",
            plan=plan_postgres,
            probe=postgres.probe,
            restore=restore_as(postgres.PostgresInfo),
            port=port("postgres"),
            port_env=PORT_VARIABLES["postgres"][0],
        ),
        Component(
            name="redis",
            label="Redis",
            plan=plan_redis,
            probe=redis_server.probe,
            restore=restore_as(redis_server.RedisInfo),
            port=port("redis"),
            port_env=PORT_VARIABLES["redis"][0],
        ),
        Component(
            name="influx",
            label="InfluxDB (VictoriaMetrics)",
            plan=plan_influx,
            probe=victoria.probe,
            restore=restore_as(victoria.InfluxInfo),
            port=port("influx"),
            port_env=PORT_VARIABLES["influx"][0],
        ),
        Component(
            name="s3",
            label="S3 (SeaweedFS)",
            plan=plan_s3,
            probe=seaweed.probe,
            restore=restore_as(seaweed.S3Info),
            port=port("s3"),
            port_env=PORT_VARIABLES["s3"][0],
        ),
        Component(
            name="rabbitmq",
            label="RabbitMQ",
            plan=plan_rabbitmq,
            probe=rabbitmq.probe,
            restore=restore_as(rabbitmq.RabbitInfo),
            port=port("rabbitmq"),
            port_env=PORT_VARIABLES["rabbitmq"][0],
        ),
    ]
