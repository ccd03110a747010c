"""No secret ever reaches the audit trail or a log line: every flow that handles one
runs here, then every stored event and every captured log record is searched for each
secret the test used (passwords, access and refresh tokens, the reset token, the TOTP
secret and codes)."""

from __future__ import annotations

import logging
import re

import pytest
from google.protobuf import json_format

from tests.user_svc.conftest import StartUser
from tests.user_svc.support import PASSWORD, Account, Harness, fails, md, next_code
from user.v1 import user_service_pb2 as pb

NEW_PASSWORD = "second secret passphrase"
RESET_PASSWORD = "third secret passphrase!"
WRONG_PASSWORD = "wrong secret passphrase?"


async def test_no_secret_in_any_event_or_log_line(
    start_user: StartUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with start_user() as h:
        secrets, codes = await every_flow(h)
        events = await h.events()

    assert len(events) >= 20
    texts = []
    for event in events:
        doc = json_format.MessageToDict(event, preserving_proto_field_name=True)
        for generated in ("event_id", "event_time", "receive_time", "receipt"):
            doc.pop(generated, None)
        texts.append(str(doc))
    texts += [r.getMessage() for r in caplog.records]
    texts += [caplog.text]
    assert any("user-service stopped" in t for t in texts), "the app's logs were captured"
    assert any("alice" in t and "login_success" in t for t in texts), "the events were read"

    for secret in secrets:
        assert secret and not any(secret in text for text in texts), secret[:4]
        # Nor their random (JWT: signature) end, as a truncated copy would show it.
        assert not any(secret[-16:] in text for text in texts), secret[:4]
    for code in codes:
        pattern = re.compile(rf"(?<!\d){code}(?!\d)")
        assert not any(pattern.search(text) for text in texts), "a TOTP code was recorded"


async def every_flow(h: Harness) -> tuple[list[str], list[str]]:
    """Run each flow that handles a secret; return the secrets and TOTP codes used."""
    secrets: list[str] = [PASSWORD, NEW_PASSWORD, RESET_PASSWORD, WRONG_PASSWORD]
    codes: list[str] = []

    alice = await h.login(await h.register("alice"))
    await fails(h.login(Account(alice.user, WRONG_PASSWORD)))
    await fails(h.login(Account(pb.User(username="mallory"), WRONG_PASSWORD)))
    first_refresh = alice.refresh_token
    refreshed = await h.stub.RefreshToken(
        pb.RefreshTokenRequest(refresh_token=first_refresh), metadata=md()
    )
    await fails(
        h.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first_refresh), metadata=md())
    )
    secrets += [alice.access_token, first_refresh, refreshed.access_token, refreshed.refresh_token]

    alice = await h.login(alice)
    token = md(token=alice.access_token)
    enrolment = await h.stub.EnableMfa(pb.EnableMfaRequest(user_id=alice.user_id), metadata=token)
    secrets += [enrolment.secret, enrolment.provisioning_uri, alice.access_token]
    codes.append(next_code(enrolment.secret, alice))
    await h.stub.VerifyMfa(
        pb.VerifyMfaRequest(user_id=alice.user_id, totp_code=codes[-1]), metadata=token
    )
    codes.append(next_code(enrolment.secret, alice))
    alice = await h.login(alice, totp_code=codes[-1])
    await fails(h.login(alice, totp_code=codes[-1]))
    token = md(token=alice.access_token)
    codes.append(next_code(enrolment.secret, alice))
    await h.stub.DisableMfa(
        pb.DisableMfaRequest(user_id=alice.user_id, totp_code=codes[-1]), metadata=token
    )
    secrets += [alice.access_token, alice.refresh_token]

    await fails(
        h.stub.ChangePassword(
            pb.ChangePasswordRequest(current_password=WRONG_PASSWORD, new_password=NEW_PASSWORD),
            metadata=token,
        )
    )
    await h.stub.ChangePassword(
        pb.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=token,
    )
    await h.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email="alice@example.com"), metadata=md()
    )
    [message] = await h.reset_messages()
    secrets.append(message["reset_token"])
    await h.stub.ConfirmPasswordReset(
        pb.ConfirmPasswordResetRequest(
            reset_token=message["reset_token"], new_password=RESET_PASSWORD
        ),
        metadata=md(),
    )
    await fails(
        h.stub.ConfirmPasswordReset(
            pb.ConfirmPasswordResetRequest(
                reset_token=message["reset_token"], new_password=RESET_PASSWORD
            ),
            metadata=md(),
        )
    )
    alice = await h.login(Account(alice.user, RESET_PASSWORD))
    await h.stub.Logout(pb.LogoutRequest(refresh_token=alice.refresh_token), metadata=md())
    secrets += [alice.access_token, alice.refresh_token]

    return secrets, codes
