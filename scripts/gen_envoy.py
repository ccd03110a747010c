"""Generate envoy/envoy.yaml and envoy/openapi/*.json from gateway/listeners.toml.

    python scripts/gen_envoy.py            # write into envoy/
    python scripts/gen_envoy.py --check    # fail if envoy/ differs from what it would write

The gateway serves the same listeners.toml, so Envoy and the gateway cannot drift:
`make protos` runs this after gen_protos.py, `make gen-check` runs it with --check.
Routes are built from gen/auditmesh.binpb exactly as the gateway builds them, so a
rule the gateway would refuse fails here too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from gateway import envoy_config, openapi
from gateway.app import plan
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ENVOY_DIR = ROOT / "envoy"
DESCRIPTOR_SET = ROOT / "gen" / "auditmesh.binpb"


def render() -> dict[str, str]:
    """Relative path under envoy/ -> file content."""
    # Plain Settings, not from the environment: GATEWAY_PORTS must not leak into envoy.yaml.
    built = plan(Settings(descriptor_set=str(DESCRIPTOR_SET)))
    mesh, descriptors = built.mesh, built.descriptors
    files = {
        "envoy.yaml": envoy_config.HEADER
        + yaml.safe_dump(envoy_config.bootstrap(mesh, built.routes), sort_keys=False, width=100)
    }
    for listener in mesh.listeners:
        routes = built.routes[listener.name]
        spec = openapi.document(listener, routes, descriptors, mesh.transcoding)
        text = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
        files[f"openapi/{listener.name}.json"] = text
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if envoy/ is stale")
    args = parser.parse_args()
    files = render()
    if not args.check:
        for name, text in files.items():
            path = ENVOY_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return 0
    stale = [
        name
        for name, text in files.items()
        if not (ENVOY_DIR / name).is_file() or (ENVOY_DIR / name).read_text() != text
    ]
    written = {str(p.relative_to(ENVOY_DIR)) for p in (ENVOY_DIR / "openapi").glob("*.json")}
    stale += sorted(written - set(files))
    if stale:
        print("envoy/ is stale; run `make protos` and commit. Differing files:", file=sys.stderr)
        for name in stale:
            print(f"  envoy/{name}", file=sys.stderr)
        return 1
    print("envoy/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
