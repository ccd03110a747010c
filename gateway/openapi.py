"""An OpenAPI 3.0 document for one listener, generated from its routes and descriptors.

Paths and operations come from the google.api.http rules, parameters from the path
variables and the fields left to the query string, schemas from the message types
(proto3 JSON: int64 as strings, enums by name, well-known types in JSON form), every
description from the proto comments, and the limits the services enforce (lengths,
patterns, ranges, item counts) from `meshkit.limits`, the table validation reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor

from gateway import fieldvalues
from gateway.config import Listener, Transcoding
from gateway.descriptors import Descriptors
from gateway.routes import Route
from gateway.template import MULTI, SINGLE, PathTemplate
from meshkit.limits import FIELDS

FD = descriptor.FieldDescriptor
STATUS = "google.rpc.Status"
_MAX_QUERY_DEPTH = 3
_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_INT64: {"type": "string", "format": "int64"},
    FD.TYPE_SINT64: {"type": "string", "format": "int64"},
    FD.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FD.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FD.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string", "example": "name,display_name"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
}
_WRAPPED = {
    "DoubleValue": FD.TYPE_DOUBLE,
    "FloatValue": FD.TYPE_FLOAT,
    "Int64Value": FD.TYPE_INT64,
    "UInt64Value": FD.TYPE_UINT64,
    "Int32Value": FD.TYPE_INT32,
    "UInt32Value": FD.TYPE_UINT32,
    "BoolValue": FD.TYPE_BOOL,
    "StringValue": FD.TYPE_STRING,
    "BytesValue": FD.TYPE_BYTES,
}


def document(
    listener: Listener, routes: Sequence[Route], descriptors: Descriptors, options: Transcoding
) -> dict[str, Any]:
    """The OpenAPI document of one listener, with deterministic ordering."""
    return _Builder(descriptors, options).build(listener, routes)


class _Builder:
    def __init__(self, descriptors: Descriptors, options: Transcoding) -> None:
        self.descriptors = descriptors
        self.options = options
        self.schemas: dict[str, dict[str, Any]] = {}
        self.pending: list[descriptor.Descriptor] = []

    def build(self, listener: Listener, routes: Sequence[Route]) -> dict[str, Any]:
        services = sorted({r.method.containing_service.full_name for r in routes})
        paths: dict[str, dict[str, Any]] = {}
        for route in routes:
            verb = "post" if route.http_method == "*" else route.http_method.lower()
            paths.setdefault(openapi_path(route.template), {})[verb] = self.operation(route)
        self.schemas[STATUS] = _status_schema()
        while self.pending:
            msg = self.pending.pop()
            if msg.full_name not in self.schemas:
                self.schemas[msg.full_name] = {}  # placeholder against recursion
                self.schemas[msg.full_name] = self.message_schema(msg)
        return {
            "openapi": "3.0.3",
            "info": {
                "title": f"{listener.display_name} REST API",
                "version": ", ".join(sorted({s.rsplit(".", 1)[0] for s in services})),
                "description": _info_text(listener, services, self.descriptors),
            },
            "tags": [{"name": s, "description": self.descriptors.comment(s)} for s in services],
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": dict(sorted(self.schemas.items()))},
        }

    def operation(self, route: Route) -> dict[str, Any]:
        method = route.method
        comment = self.descriptors.comment(method.full_name)
        op: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": comment.split("\n\n", 1)[0].replace("\n", " "),
            "description": comment,
            "tags": [method.containing_service.full_name],
            "parameters": list(self.path_parameters(route)) + list(self.query_parameters(route)),
            "responses": {
                "200": self.success(route),
                "default": {
                    "description": "An error: the google.rpc.Status with its details.",
                    "content": {"application/json": {"schema": _ref(STATUS)}},
                },
            },
        }
        if route.body:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": self.body_schema(route)}},
            }
        return op

    def success(self, route: Route) -> dict[str, Any]:
        item = self.ref_message(route.method.output_type)
        if route.streaming and route.method.output_type.full_name == "google.api.HttpBody":
            return {
                "description": (
                    "A streamed body: the bytes of the messages as they come, with the "
                    "content type of the first; gzip with `Accept-Encoding: gzip`."
                ),
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        if not route.streaming:
            return {"description": "OK", "content": {"application/json": {"schema": item}}}
        return {
            "description": (
                "A live stream: a JSON array written one message at a time; with "
                "`Accept: application/x-ndjson` one message per line, with "
                "`Accept: text/event-stream` one SSE event per message."
            ),
            "content": {
                "application/json": {"schema": {"type": "array", "items": item}},
                "application/x-ndjson": {"schema": item},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }

    def body_schema(self, route: Route) -> dict[str, Any]:
        request = route.method.input_type
        if route.body == "*":
            return self.ref_message(request)
        field: FD | None = None
        current: descriptor.Descriptor | None = request
        for name in route.body.split("."):
            assert current is not None
            field = current.fields_by_name[name]
            current = field.message_type
        assert field is not None
        return self.field_schema(field)

    def path_parameters(self, route: Route) -> Iterator[dict[str, Any]]:
        for var in route.template.variables:
            field = _leaf(route.method.input_type, var.field_path)
            text = self.descriptors.comment(field.full_name)
            pattern = route.template.variable_pattern(var)
            if pattern != SINGLE:
                text = f"{text}\n\nMatches `{pattern}`.".strip()
            yield {
                "name": var.name,
                "in": "path",
                "required": True,
                "description": text,
                "schema": self.value_schema(field),
            }

    def query_parameters(self, route: Route) -> Iterator[dict[str, Any]]:
        if route.body == "*":
            return
        taken = [var.field_path for var in route.template.variables]
        if route.body:
            taken.append(tuple(route.body.split(".")))
        yield from self._query_fields(route.method.input_type, (), taken, set())

    def _query_fields(
        self,
        msg: descriptor.Descriptor,
        prefix: tuple[str, ...],
        taken: list[tuple[str, ...]],
        seen: set[str],
    ) -> Iterator[dict[str, Any]]:
        for field in msg.fields:
            path = (*prefix, field.name)
            if any(path[: len(t)] == t for t in taken):
                continue
            if fieldvalues.settable_from_text(field):
                schema = self.value_schema(field)
                param: dict[str, Any] = {
                    "name": ".".join(path),
                    "in": "query",
                    "description": self.descriptors.comment(field.full_name),
                    "schema": _array(field, schema) if field.is_repeated else schema,
                }
                if field.is_repeated:
                    param["explode"] = True
                yield param
            elif (
                field.message_type is not None
                and not field.is_repeated
                and len(path) < _MAX_QUERY_DEPTH
                and field.message_type.full_name not in seen
                and field.message_type.full_name not in _WELL_KNOWN
            ):
                nested = seen | {msg.full_name}
                yield from self._query_fields(field.message_type, path, taken, nested)

    def message_schema(self, msg: descriptor.Descriptor) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in msg.fields:
            name = field.name if self.options.preserve_proto_field_names else field.json_name
            schema = self.field_schema(field)
            behaviors = set(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])
            if field_behavior_pb2.OUTPUT_ONLY in behaviors:
                schema = {**schema, "readOnly": True}
            if field_behavior_pb2.INPUT_ONLY in behaviors:
                schema = {**schema, "writeOnly": True}
            if field_behavior_pb2.REQUIRED in behaviors:
                required.append(name)
            properties[name] = schema
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if text := self.descriptors.comment(msg.full_name):
            out["description"] = text
        if required:
            out["required"] = required
        return out

    def field_schema(self, field: FD) -> dict[str, Any]:
        text = self.descriptors.comment(field.full_name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = self.value_schema(field.message_type.fields_by_name["value"])
            schema: dict[str, Any] = {"type": "object", "additionalProperties": value}
        elif field.is_repeated:
            schema = _array(field, self.value_schema(field))
        else:
            schema = self.value_schema(field)
        if not text:
            return schema
        if "$ref" in schema:
            return {"allOf": [schema], "description": text}
        return {**schema, "description": text}

    def value_schema(self, field: FD) -> dict[str, Any]:
        """The schema of one value of a field (an item, for repeated fields)."""
        if field.enum_type is not None:
            if self.options.always_print_enums_as_ints:
                return {"type": "integer", "format": "int32"}
            return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        if field.message_type is None:
            limit = FIELDS.get(field.full_name)
            return {**_SCALARS[field.type], **(limit.openapi() if limit else {})}
        return self.ref_message(field.message_type)

    def ref_message(self, msg: descriptor.Descriptor) -> dict[str, Any]:
        name = msg.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        wrapped = name.removeprefix("google.protobuf.")
        if name.startswith("google.protobuf.") and wrapped in _WRAPPED:
            return {**_SCALARS[_WRAPPED[wrapped]], "nullable": True}
        if name not in self.schemas:
            self.pending.append(msg)
        return _ref(name)


def openapi_path(template: PathTemplate) -> str:
    """`/v1/{name=projects/*}:archive` -> `/v1/{name}:archive`."""
    parts: list[str] = []
    i = 0
    variables = {v.start: v for v in template.variables}
    while i < len(template.segments):
        var = variables.get(i)
        if var is not None:
            parts.append("{" + var.name + "}")
            i = var.span(len(template.segments))[1]
        else:
            segment = template.segments[i]
            parts.append("{path}" if segment == MULTI else segment)
            i += 1
    path = "/" + "/".join(parts)
    return path + (":" + template.verb if template.verb else "")


def _leaf(msg: descriptor.Descriptor, path: tuple[str, ...]) -> FD:
    current: descriptor.Descriptor | None = msg
    field: FD | None = None
    for name in path:
        assert current is not None
        field = current.fields_by_name[name]
        current = field.message_type
    assert field is not None
    return field


def _array(field: FD, items: dict[str, Any]) -> dict[str, Any]:
    """The schema of a repeated field, with its item count limit."""
    out: dict[str, Any] = {"type": "array", "items": items}
    limit = FIELDS.get(field.full_name)
    if limit is not None and limit.max_items is not None:
        out["maxItems"] = limit.max_items
    return out


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "An error (google.rpc.Status). `details` holds typed objects such as "
            "google.rpc.ErrorInfo (`reason`, `domain`, `metadata`) and "
            "google.rpc.BadRequest (`field_violations`)."
        ),
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC status code."},
            "message": {"type": "string", "description": "What went wrong, for a developer."},
            "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]},
        },
    }


def _info_text(listener: Listener, services: Sequence[str], descriptors: Descriptors) -> str:
    lines = [
        f"REST/JSON transcoding of {', '.join(services)} (gRPC at the {listener.display_name}).",
        "Responses print proto field names; 64-bit integers are JSON strings.",
    ]
    return "\n\n".join([*lines, *(descriptors.comment(s) for s in services)])
