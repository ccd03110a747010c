"""Parse envoy/envoy.yaml into Envoy's Bootstrap message and summarise it as JSON.

Runs in .venv-envoy (scripts/setup_envoy_venv.sh), where xds-protos provides Envoy's
own config protos; Envoy itself cannot be installed here. Parsing is strict: an
unknown field, a wrong type or an unresolvable typed_config fails. The transcoder's
services are looked up in the descriptor set. The summary (listeners, routes,
clusters, transcoder options) is printed for tests/gateway/test_envoy_config.py.

    .venv-envoy/bin/python scripts/check_envoy_config.py envoy/envoy.yaml gen/auditmesh.binpb
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, json_format

# Every type a typed_config of envoy.yaml names must be imported to be resolvable.
_MODULES = {
    "bootstrap": "envoy.config.bootstrap.v3.bootstrap_pb2",
    "hcm": (
        "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2"
    ),
    "transcoder": "envoy.extensions.filters.http.grpc_json_transcoder.v3.transcoder_pb2",
    "router": "envoy.extensions.filters.http.router.v3.router_pb2",
    "compressor": "envoy.extensions.filters.http.compressor.v3.compressor_pb2",
    "gzip": "envoy.extensions.compression.gzip.compressor.v3.gzip_pb2",
    "http_options": "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    "upstream_tls": "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
}


def summarise(config_path: Path, descriptor_set: Path) -> dict[str, Any]:
    modules = {key: importlib.import_module(name) for key, name in _MODULES.items()}
    data = yaml.safe_load(config_path.read_text())
    bootstrap = json_format.ParseDict(data, modules["bootstrap"].Bootstrap())
    pool = _pool(descriptor_set)
    listeners = []
    for listener in bootstrap.static_resources.listeners:
        hcm = modules["hcm"].HttpConnectionManager()
        [network_filter] = listener.filter_chains[0].filters
        network_filter.typed_config.Unpack(hcm)
        transcoder = modules["transcoder"].GrpcJsonTranscoder()
        http_filters = [f.name for f in hcm.http_filters]
        (coder,) = [f for f in hcm.http_filters if f.name.endswith("grpc_json_transcoder")]
        coder.typed_config.Unpack(transcoder)
        missing = [s for s in transcoder.services if not _has_service(pool, s)]
        validation = transcoder.request_validation_options
        routes = []
        for route in hcm.route_config.virtual_hosts[0].routes:
            routes.append(
                {
                    "match": json_format.MessageToDict(route.match),
                    "cluster": route.route.cluster,
                    "timeout": route.route.timeout.ToJsonString()
                    if route.route.HasField("timeout")
                    else None,
                    "direct_response_file": route.direct_response.body.filename,
                }
            )
        listeners.append(
            {
                "name": listener.name,
                "address": listener.address.socket_address.address,
                "port": listener.address.socket_address.port_value,
                "http_filters": http_filters,
                "use_remote_address": hcm.use_remote_address.value,
                "request_id_in_response": hcm.always_set_request_id_in_response,
                "services": list(transcoder.services),
                "services_missing_from_descriptor_set": missing,
                "proto_descriptor": transcoder.proto_descriptor,
                "convert_grpc_status": transcoder.convert_grpc_status,
                "print_options": json_format.MessageToDict(
                    transcoder.print_options,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                ),
                "reject_unknown_method": validation.reject_unknown_method,
                "reject_unknown_query_parameters": validation.reject_unknown_query_parameters,
                "max_request_body_size": transcoder.max_request_body_size.value,
                "routes": routes,
            }
        )
    clusters = []
    for cluster in bootstrap.static_resources.clusters:
        options = modules["http_options"].HttpProtocolOptions()
        key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        cluster.typed_extension_protocol_options[key].Unpack(options)
        [endpoint] = cluster.load_assignment.endpoints[0].lb_endpoints
        address = endpoint.endpoint.address.socket_address
        clusters.append(
            {
                "name": cluster.name,
                "http2": options.explicit_http_config.HasField("http2_protocol_options"),
                "address": address.address,
                "port": address.port_value,
            }
        )
    return {"listeners": listeners, "clusters": clusters}


def _pool(descriptor_set: Path) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file:
        pool.Add(file)
    return pool


def _has_service(pool: descriptor_pool.DescriptorPool, name: str) -> bool:
    try:
        pool.FindServiceByName(name)
    except KeyError:
        return False
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        summary = summarise(Path(argv[0]), Path(argv[1]))
    except (json_format.ParseError, yaml.YAMLError, ValueError, TypeError) as exc:
        print(f"{argv[0]} is not a valid Envoy bootstrap: {exc}", file=sys.stderr)
        return 1
    json.dump(summary, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
