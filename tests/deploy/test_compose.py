"""compose.yml and the Dockerfile, checked without a Docker engine (there is none here):
the file as a real compose implementation (Debian's docker-compose, whose `config`
needs no engine) resolves it, against what README.md, gateway/listeners.toml and
devstack say. The containers themselves are not run here (README.md says so)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grpc_health.v1 import health, health_pb2

from devstack import PostgresInfo
from devstack.certs import ensure_certs, files_of
from devstack.cli import components_of
from devstack.mesh import audit_plan, user_plan
from devstack.settings import Settings
from devstack.stack import ComponentContext
from meshkit.healthcheck import main
from meshkit.server import new_server
from meshkit.tls import server_credentials

ROOT = Path(__file__).resolve().parents[2]
# devstack component -> the compose service that plays its part.
SERVICE_OF = {
    "postgres": "postgres",
    "redis": "redis",
    "influx": "influxdb",
    "s3": "minio",
    "rabbitmq": "rabbitmq",
    "audit": "audit-service",
    "user": "user-service",
    "gateway": "envoy",
    "prometheus": "prometheus",
}
PINNED = re.compile(r"^[\w./-]+(:[\w.-]*\d[\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def _config(*files: str) -> dict[str, Any]:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose missing: scripts/setup.sh installs Debian's docker-compose"
    args = [arg for f in files for arg in ("-f", f)]
    run = subprocess.run(
        [compose, *args, "config"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    parsed: dict[str, Any] = yaml.safe_load(run.stdout)
    return parsed


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    """compose.yml with compose.override.yml, as `docker compose up -d` reads them."""
    return _config()


@pytest.fixture(scope="module")
def prod() -> dict[str, Any]:
    """compose.yml alone, as production runs it."""
    return _config("compose.yml")


def _published(service: dict[str, Any]) -> set[int]:
    return {int(p["published"]) for p in service.get("ports", [])}


def _readme_ports() -> set[int]:
    text = (ROOT / "README.md").read_text()
    return {int(port) for port in re.findall(r"^\|[^|]+\| (\d{4,5}) \|", text, re.M)}


def test_every_image_is_pinned_and_the_built_one_is_the_project_version(
    prod: dict[str, Any],
) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in prod["services"].items():
        image = service["image"]
        assert PINNED.match(image) and ":" in image and not image.endswith(":latest"), name
        if "build" in service:
            assert image == f"auditmesh:{version}", name


def test_restart_healthchecks_and_start_order(prod: dict[str, Any]) -> None:
    services = prod["services"]
    for name, service in services.items():
        if name == "migrate":  # one-shot
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, condition in service.get("depends_on", {}).items():
            want = (
                "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            )
            assert condition["condition"] == want, (name, dependency)
    assert services["audit-service"]["depends_on"]["migrate"]
    assert services["user-service"]["depends_on"]["migrate"]


def test_every_component_of_make_up_has_its_compose_service(prod: dict[str, Any]) -> None:
    names = [c.name for c in components_of(Settings())]
    assert sorted(names) == sorted(SERVICE_OF)
    assert {SERVICE_OF[n] for n in names} <= set(prod["services"])
    assert set(prod["services"]) - set(SERVICE_OF.values()) == {"migrate", "grafana"}


def _plans(folder: Path) -> Iterator[tuple[str, tuple[str, ...], dict[str, str]]]:
    pg = PostgresInfo("127.0.0.1", 5434, "audit", str(folder))
    infos = {"postgres": pg, "redis": pg, "audit": pg}
    ctx = ComponentContext(folder / "component", 1, infos, certs_dir=folder / "certs")
    for name, plan in (("audit-service", audit_plan(ctx, 2)), ("user-service", user_plan(ctx, 3))):
        yield name, plan.spec.argv, dict(plan.spec.env)


def test_containers_run_the_commands_and_settings_make_up_runs(
    prod: dict[str, Any], tmp_path: Path
) -> None:
    services = prod["services"]
    for name, argv, env in _plans(tmp_path):
        assert argv[0] == sys.executable
        assert services[name]["command"] == ["python", *argv[1:]], name
        given = {key.removesuffix("__FILE") for key in services[name]["environment"]}
        missing = {k for k in env if k not in given and k != "AUDIT_SIGNING_KEY_FILE"}
        assert not missing, (name, missing)
    # make up migrates with `python -m audit_svc migrate` and `python -m user_svc migrate`.
    script = services["migrate"]["command"][-1]
    assert "python -m audit_svc migrate" in script and "python -m user_svc migrate" in script


def test_ports_match_readme_and_listeners(prod: dict[str, Any]) -> None:
    services = prod["services"]
    readme = _readme_ports() | {3000, 9001}  # Grafana and the MinIO console: compose only
    published = set().union(*(_published(s) for s in services.values()))
    assert published <= readme, published - readme
    assert {5434, 6379, 8086, 9000, 9090, 50051, 50052, 9461, 9462} <= published
    listeners = tomllib.loads((ROOT / "gateway" / "listeners.toml").read_text())["listeners"]
    assert _published(services["envoy"]) == {x["port"] for x in listeners}
    for listener in listeners:
        host, port = listener["envoy_upstream"].rsplit(":", 1)
        assert int(port) in {int(p["target"]) for p in services[host]["ports"]}, listener
    readme_text = (ROOT / "README.md").read_text()
    for port in (3000, 9001):
        assert f"| {port} |" in readme_text


def test_volumes_exist_and_are_documented(prod: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    for name in prod["volumes"]:
        assert f"`{name}`" in readme, name
    for service in prod["services"].values():
        for volume in service.get("volumes", []):
            source = str(volume.split(":")[0] if isinstance(volume, str) else volume["source"])
            if source.startswith("/"):
                assert Path(source).exists(), source


def test_secrets_are_files_outside_compose_yml_and_dev_values_only_in_the_override(
    prod: dict[str, Any], dev: dict[str, Any]
) -> None:
    for name, secret in prod["secrets"].items():
        assert Path(secret["file"]).parent == ROOT / "secrets", name
        assert not Path(secret["file"]).exists(), name
    for name, secret in dev["secrets"].items():
        where = Path(secret["file"]).parent
        if where == ROOT / ".run" / "certs":  # made by `make up` or `devstack certs`
            continue
        assert where == ROOT / "compose" / "dev-secrets", name
        assert Path(secret["file"]).read_text(), name
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN")
    for name, service in prod["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret_like.search(key) and not key.endswith("_FILE"):
                pytest.fail(f"{name}: {key}={value!r} is a secret in compose.yml")


def test_the_dockerfile_passes_hadolint_and_is_multi_stage_pinned_and_non_root() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    run = subprocess.run([str(hadolint), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(bases) == 2 and all(re.match(r"python:\d+\.\d+\.\d+-slim-\w+$", b) for b in bases)
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert user.split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in text and '"meshkit.healthcheck"' in text


def test_the_entrypoint_turns_secret_files_into_variables(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://u:p@db/audit")
    run = subprocess.run(
        [str(ROOT / "docker" / "entrypoint.sh"), "env"],
        env={"PATH": os.environ["PATH"], "AUDIT_DATABASE_URL__FILE": str(secret)},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = run.stdout.splitlines()
    assert "AUDIT_DATABASE_URL=postgresql://u:p@db/audit" in lines
    assert not any(line.startswith("AUDIT_DATABASE_URL__FILE=") for line in lines)
    missing = subprocess.run(
        [str(ROOT / "docker" / "entrypoint.sh"), "true"],
        env={"PATH": os.environ["PATH"], "X__FILE": str(tmp_path / "absent")},
        capture_output=True,
    )
    assert missing.returncode == 1


async def test_the_image_healthcheck_answers_by_grpc_health_over_mutual_tls(
    tmp_path: Path,
) -> None:
    ensure_certs(tmp_path)
    servicer = health.aio.HealthServicer()
    server, port = new_server(
        [], (), servicer, "127.0.0.1:0", "TEST_LISTEN",
        server_credentials(files_of(tmp_path, "audit-service")),
    )  # fmt: skip
    await server.start()
    try:
        target, files = f"127.0.0.1:{port}", files_of(tmp_path, "audit-service")
        args = [target, files.ca_file, files.cert_file, files.key_file]
        await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await asyncio.to_thread(main, args) == 1
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert await asyncio.to_thread(main, args) == 0
        assert await asyncio.to_thread(main, [target]) == 1  # plaintext is refused
    finally:
        await server.stop(0)
