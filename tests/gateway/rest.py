"""Reading the JSON google.rpc.Status of a failed REST call, as a curl user would."""

from __future__ import annotations

from typing import Any

import httpx

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def error_of(response: httpx.Response) -> tuple[int, str, list[str]]:
    """The status code, the ErrorInfo reason and the BadRequest field names."""
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    reason, fields = "", []
    for detail in body.get("details", []):
        if detail["@type"] == ERROR_INFO:
            reason = detail["reason"]
        elif detail["@type"] == BAD_REQUEST:
            fields = [v["field"] for v in detail["field_violations"]]
    return body["code"], reason, fields
