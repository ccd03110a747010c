"""`python -m audit_svc witness`: a small C2SP tlog-witness over HTTP, to run on a host
the audit-service's operator does not control (audit_svc.integrity.witness).

    POST /add-checkpoint     the tlog-witness call
    GET  /key                the witness's verifier key (name+id+key), for auditors

Settings (WITNESS_* variables): LISTEN host:port; NAME, the witness's key name;
KEY_FILE, its Ed25519 private key (PEM, made on first start, mode 0600); STATE_FILE,
the last cosigned tree per origin; LOG_KEYS, the verifier keys of the logs it
witnesses (comma-separated; the audit-service prints its own at start-up, and
`GetPublicKey` publishes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from audit_svc.integrity.signer import load_signer
from audit_svc.integrity.witness import Witness, WitnessState
from meshkit import SettingsError, log_problems, note, read_env

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    """The witness's knobs; variable = WITNESS_ + upper-case name."""

    listen: str = "127.0.0.1:8090"
    name: str = "witness.auditmesh.local"
    key_file: str = ".run/witness/witness-key.pem"
    state_file: str = ".run/witness/state.json"
    log_keys: str = ""
    log_level: str = "INFO"
    log_format: str = "json"

    @classmethod
    def from_env(cls, environ: Any = None, **overrides: Any) -> WitnessSettings:
        return read_env(cls, "WITNESS_", "witness", environ, overrides, cls._problems)

    def _problems(self) -> list[str]:
        out = log_problems("WITNESS_", self.log_level, self.log_format)
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit():
            out.append(f"WITNESS_LISTEN must be host:port, got {self.listen!r}")
        try:
            note.check_name(self.name)
            [note.NoteVerifier.parse(k) for k in self.log_keys.split(",") if k.strip()]
        except note.NoteError as exc:
            out.append(f"WITNESS_NAME or WITNESS_LOG_KEYS: {exc}")
        if not self.log_keys.strip():
            out.append("WITNESS_LOG_KEYS must name at least one log's verifier key")
        return out


def make_witness(s: WitnessSettings) -> Witness:
    """The witness of these settings: its key (made if missing) and its state."""
    key = load_signer("", s.key_file)
    signer = note.NoteSigner(s.name, key.private_key, note.ALG_COSIGNATURE_V1)
    logs = [note.NoteVerifier.parse(k) for k in s.log_keys.split(",") if k.strip()]
    return Witness(signer, logs, WitnessState(Path(s.state_file)))


def asgi_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("request too large\n", status_code=413)
        answer = await witness.add_checkpoint(body)
        if answer.status != 200:
            log.warning("add-checkpoint refused (%d): %s", answer.status, answer.body[:200])
        headers = {"content-type": answer.content_type}  # as is: no charset added
        return Response(answer.body, status_code=answer.status, headers=headers)

    async def key(_: Request) -> Response:
        return PlainTextResponse(witness.signer.verifier.vkey + "\n")

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/key", key, methods=["GET"]),
        ]
    )


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve` (and to tests)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class WitnessServer:
    """The witness on its port: `async with WitnessServer(settings) as w:` serves
    on `w.port` until the block ends."""

    def __init__(self, settings: WitnessSettings) -> None:
        self.settings = settings
        self.witness = make_witness(settings)
        host, _, port = settings.listen.rpartition(":")
        config = uvicorn.Config(
            asgi_app(self.witness), host=host, port=int(port), log_config=None, lifespan="off"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def __aenter__(self) -> WitnessServer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"witness cannot listen on {self.settings.listen}")
            await asyncio.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        log.info("witness %s serving on port %d", self.witness.signer.verifier.vkey, self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


async def serve(settings: WitnessSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with WitnessServer(settings):
        await stop.wait()


def run_witness(print_key: bool = False) -> int:
    """Entry point of `python -m audit_svc witness`."""
    from meshkit import configure_logging

    try:
        settings = WitnessSettings.from_env()
    except SettingsError as exc:
        print(exc)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if print_key:
        print(make_witness(settings).signer.verifier.vkey)
        return 0
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        log.error("witness cannot start: %s", exc)
        return 1
    return 0
