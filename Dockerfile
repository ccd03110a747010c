# syntax=docker/dockerfile:1
# One image for the Python services of the mesh (audit-service, user-service, their
# migrations): `python -m audit_svc`, `python -m user_svc`, `alembic upgrade head`.
# Built by compose.yml; checked here by hadolint and tests/deploy (no engine on CI).

# --- build: the virtualenv with the project and its pinned dependencies ---------
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gen/ gen/
COPY meshkit/ meshkit/
COPY devstack/ devstack/
COPY audit_svc/ audit_svc/
COPY audit_client/ audit_client/
COPY gateway/ gateway/
COPY user_svc/ user_svc/
RUN /opt/venv/bin/pip install -c constraints.txt .

# --- runtime: the virtualenv, the migrations' files, a non-root user ------------
FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 auditmesh \
 && useradd --system --uid 10001 --gid auditmesh --home-dir /app --shell /usr/sbin/nologin auditmesh \
 && mkdir -p /var/lib/auditmesh \
 && chown auditmesh:auditmesh /var/lib/auditmesh
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# alembic.ini names audit_svc/migrations beside it.
COPY alembic.ini ./
COPY audit_svc/migrations/ audit_svc/migrations/
COPY docker/ docker/
ENV PATH=/app/docker:/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 50051 50052 9461 9462
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "meshkit.healthcheck"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["python", "-m", "audit_svc"]
