"""REST routes read from the google.api.http rules of the configured services.

Every rule and each of its `additional_bindings` becomes one route: HTTP method,
path template, body field and the gRPC method it calls. Methods without a rule
are not exposed (Envoy's default, `auto_mapping` off).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, message

from gateway import fieldvalues, template
from gateway.descriptors import DescriptorError, Descriptors
from gateway.matcher import ANY_METHOD, PathMatcher

_KINDS = ("get", "put", "post", "delete", "patch")


class RouteError(ValueError):
    """A rule the gateway cannot serve; names the method and the reason."""


@dataclass(frozen=True, slots=True)
class Route:
    """One REST binding of one gRPC method."""

    method: descriptor.MethodDescriptor
    http_method: str
    template: template.PathTemplate
    body: str
    binding: int
    request_class: type[message.Message]
    response_class: type[message.Message]

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def operation_id(self) -> str:
        base = f"{self.method.containing_service.name}_{self.method.name}"
        return base if self.binding == 0 else f"{base}{self.binding + 1}"


def build_routes(descriptors: Descriptors, services: Sequence[str]) -> list[Route]:
    """Every route of the named services; `RouteError` or `DescriptorError` when a
    service is missing or a rule is invalid."""
    routes: list[Route] = []
    for name in services:
        service = descriptors.service(name)
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            for index, binding in enumerate(_bindings(rule)):
                routes.append(_route(descriptors, method, binding, index))
    return routes


def build_matcher(routes: Sequence[Route]) -> PathMatcher[Route]:
    matcher: PathMatcher[Route] = PathMatcher()
    for route in routes:
        matcher.add(route.http_method, route.template, route)
    return matcher


def _bindings(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    yield rule
    yield from rule.additional_bindings


def _route(
    descriptors: Descriptors,
    method: descriptor.MethodDescriptor,
    rule: http_pb2.HttpRule,
    index: int,
) -> Route:
    where = f"{method.full_name} (binding {index})"
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise RouteError(f"{where}: the rule has no HTTP method and path")
    if kind == "custom":
        http_method = rule.custom.kind.upper() or ANY_METHOD
        path = rule.custom.path
    elif kind in _KINDS:
        http_method, path = kind.upper(), getattr(rule, kind)
    else:
        raise RouteError(f"{where}: unknown pattern {kind}")
    if method.client_streaming:
        raise RouteError(f"{where}: client-streaming methods cannot be transcoded")
    if rule.response_body:
        raise RouteError(f"{where}: response_body is not supported (Envoy neither)")
    try:
        parsed = template.parse(path)
    except template.TemplateError as exc:
        raise RouteError(f"{where}: {exc}") from exc
    request = method.input_type
    for var in parsed.variables:
        leaf = _check_field_path(request, var.field_path, f"{where}: path variable {var.name}")
        if not fieldvalues.settable_from_text(leaf) or leaf.is_repeated:
            raise RouteError(f"{where}: path variable {var.name} must be a singular scalar")
    if rule.body and rule.body != "*":
        _check_field_path(request, tuple(rule.body.split(".")), f"{where}: body {rule.body}")
    return Route(
        method=method,
        http_method=http_method,
        template=parsed,
        body=rule.body,
        binding=index,
        request_class=descriptors.message_class(request),
        response_class=descriptors.message_class(method.output_type),
    )


def _check_field_path(
    msg: descriptor.Descriptor, path: tuple[str, ...], where: str
) -> descriptor.FieldDescriptor:
    """The field a dotted path names; `RouteError` unless every step is a singular message."""
    current: descriptor.Descriptor | None = msg
    field: descriptor.FieldDescriptor | None = None
    for depth, name in enumerate(path):
        if current is None or name not in current.fields_by_name:
            owner = current.full_name if current else "a scalar"
            raise RouteError(f"{where}: no field {name!r} in {owner}")
        field = current.fields_by_name[name]
        if depth < len(path) - 1 and (field.message_type is None or field.is_repeated):
            raise RouteError(f"{where}: {name} is not a singular message")
        current = field.message_type
    assert field is not None, "a field path has at least one name"
    return field


__all__ = ["DescriptorError", "Route", "RouteError", "build_matcher", "build_routes"]
