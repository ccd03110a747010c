"""The descriptor set the gateway (and Envoy) read: types, services and comments.

The set is built with `--include_imports --include_source_info`, so it carries every
type the configured services use and the proto comments that become API docs. It is
loaded into its own descriptor pool, independent of any generated code imported in
the same process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory

# Field numbers inside FileDescriptorProto / DescriptorProto / ... used by source info paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


class DescriptorError(ValueError):
    """The descriptor set cannot be read or lacks a configured service."""


class Descriptors:
    """A descriptor pool built from one descriptor set, with its comments."""

    def __init__(self, files: Sequence[descriptor_pb2.FileDescriptorProto]) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self._comments: dict[str, str] = {}
        for file in files:
            try:
                self.pool.Add(file)
            except TypeError as exc:
                raise DescriptorError(f"cannot load {file.name}: {exc}") from exc
            self._comments.update(_comments_of(file))

    @classmethod
    def load(cls, path: Path) -> Descriptors:
        """Read a serialized FileDescriptorSet."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DescriptorError(f"cannot read descriptor set {path}: {exc}") from exc
        try:
            files = descriptor_pb2.FileDescriptorSet.FromString(data).file
        except Exception as exc:  # protobuf raises DecodeError or a C-level error
            raise DescriptorError(f"{path} is not a FileDescriptorSet: {exc}") from exc
        return cls(files)

    def service(self, full_name: str) -> descriptor.ServiceDescriptor:
        try:
            return self.pool.FindServiceByName(full_name)
        except KeyError as exc:
            raise DescriptorError(f"service {full_name} is not in the descriptor set") from exc

    def message_class(self, desc: descriptor.Descriptor) -> type[message.Message]:
        """The Python class of a message type of this pool."""
        return message_factory.GetMessageClass(desc)

    def comment(self, full_name: str) -> str:
        """The leading comment of a message, field, enum, value, service or method."""
        return self._comments.get(full_name, "")


def _comments_of(file: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[str, str]]:
    names = dict(_element_names(file))
    for location in file.source_code_info.location:
        text = location.leading_comments.strip()
        if text and (name := names.get(tuple(location.path))):
            yield name, _tidy(text)


def _element_names(
    file: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[tuple[int, ...], str]]:
    prefix = f"{file.package}." if file.package else ""
    for i, msg in enumerate(file.message_type):
        yield from _message_names(msg, (_FILE_MESSAGE, i), prefix)
    for i, enum in enumerate(file.enum_type):
        yield from _enum_names(enum, (_FILE_ENUM, i), prefix)
    for i, svc in enumerate(file.service):
        name = prefix + svc.name
        yield (_FILE_SERVICE, i), name
        for j, method in enumerate(svc.method):
            yield (_FILE_SERVICE, i, _SERVICE_METHOD, j), f"{name}.{method.name}"


def _message_names(
    msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = prefix + msg.name
    yield path, name
    for i, f in enumerate(msg.field):
        yield (*path, _MESSAGE_FIELD, i), f"{name}.{f.name}"
    for i, nested in enumerate(msg.nested_type):
        yield from _message_names(nested, (*path, _MESSAGE_NESTED, i), name + ".")
    for i, enum in enumerate(msg.enum_type):
        yield from _enum_names(enum, (*path, _MESSAGE_ENUM, i), name + ".")


def _enum_names(
    enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = prefix + enum.name
    yield path, name
    # Enum values are scoped like siblings of the enum type, but documented under it.
    for i, value in enumerate(enum.value):
        yield (*path, _ENUM_VALUE, i), f"{name}.{value.name}"


def _tidy(comment: str) -> str:
    """Comment lines without their common leading space; paragraphs kept."""
    return "\n".join(line[1:] if line.startswith(" ") else line for line in comment.splitlines())
