"""The user-service's documented limits (its OpenAPI document, from meshkit.limits)
are the enforced ones: at each documented bound a registration is accepted, one past
it is 400 naming the field, through a real gateway in front of the real service."""

from __future__ import annotations

from typing import Any

import httpx

from audit_svc.app import AuditApp
from tests.gateway.harness import client, running_gateway
from tests.gateway.rest import error_of
from tests.user_svc.conftest import StartUser


async def registered(http: httpx.AsyncClient, n: int, **fields: str) -> tuple[int, list[str]]:
    body = {
        "username": f"user{n:04d}",
        "email": f"user{n}@example.com",
        "password": "correct horse battery staple",
        **fields,
    }
    response = await http.post("/api/v1/users", json=body)
    return response.status_code, [] if response.status_code == 200 else error_of(response)[2]


async def test_one_past_each_documented_limit_is_400(
    start_user: StartUser, audit_app: AuditApp
) -> None:
    async with start_user() as h:
        upstreams = f"audit=127.0.0.1:{audit_app.port},user=127.0.0.1:{h.app.port}"
        async with running_gateway(upstreams=upstreams) as gateway:
            async with client(gateway.ports["user"]) as http:
                spec = (await http.get("/openapi.json")).json()
                create: dict[str, Any] = spec["components"]["schemas"]["user.v1.CreateUserRequest"]
                limits = create["properties"]
                n = iter(range(100))

                async def at(field: str, value: str) -> tuple[int, list[str]]:
                    return await registered(http, next(n), **{field: value})

                longest = limits["username"]["maxLength"]
                assert await at("username", "u" * longest) == (200, [])
                assert await at("username", "v" * (longest + 1)) == (400, ["username"])
                assert await at("username", "w" * (limits["username"]["minLength"] - 1)) == (
                    400,
                    ["username"],
                )
                longest = limits["display_name"]["maxLength"]
                assert await at("display_name", "d" * longest) == (200, [])
                assert await at("display_name", "d" * (longest + 1)) == (400, ["display_name"])
                longest = limits["email"]["maxLength"]
                local = "e" * (longest - len("@example.com"))
                assert await at("email", local + "@example.com") == (200, [])
                assert await at("email", "e" + local + "@example.com") == (400, ["email"])
                password = limits["password"]
                assert await at("password", "p" * password["maxLength"]) == (200, [])
                assert await at("password", "p" * (password["maxLength"] + 1)) == (
                    400,
                    ["password"],
                )
                assert await at("password", "p" * (password["minLength"] - 1)) == (
                    400,
                    ["password"],
                )
