#!/usr/bin/env python3
"""Validate OCSF events (JSON Lines) against the OCSF schema they declare.

The authority is not this repository. The schema is the OCSF project's own
export of the declared version (`scripts/conformance/ocsf/VERSION.json`,
Apache-2.0, vendored unchanged; its source and checksum are in
scripts/conformance/ocsf/NOTICE.md). `ocsf-json-schema` (PyPI, pinned in
scripts/requirements-test.txt) turns a class of it, with the profiles an event
lists in `metadata.profiles`, into a JSON Schema (draft 2020-12: no attribute
outside the class and its profiles, required attributes, types, enums,
`at_least_one` / `just_one` constraints); `jsonschema` checks each event
against it. An event that declares a version with no vendored schema fails.

Usage: ocsf_validate.py FILE.jsonl...   ("-" reads stdin)
Exit 0 when every event is valid, 1 when any is not, 2 on a usage or setup
error (a missing module is a failure, never a skip).
"""
import hashlib
import json
import pathlib
import sys

try:
    import jsonschema
    from ocsf_json_schema import OcsfJsonSchemaEmbedded
except ImportError as e:  # fail loudly: a validator that is missing validates nothing
    print(f"ocsf_validate: {e}; run scripts/venv.sh (scripts/requirements-test.txt)", file=sys.stderr)
    sys.exit(2)

SCHEMA_DIR = pathlib.Path(__file__).resolve().parent / "ocsf"
# The vendored exports, by version, with their SHA-256 (NOTICE.md names the source).
PINNED = {"1.4.0": "56fa01e200346d88659e98b86857854420f360e0636ad98e8321ff5ef23d28e6"}

_schemas = {}
_validators = {}


def load_schema(version):
    if version not in PINNED:
        raise ValueError(f"no vendored OCSF schema for version {version!r} (have {sorted(PINNED)})")
    raw = (SCHEMA_DIR / f"{version}.json").read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != PINNED[version]:
        raise ValueError(f"{SCHEMA_DIR / (version + '.json')}: sha256 {digest}, pinned {PINNED[version]}")
    schema = json.loads(raw)
    if schema.get("version") != version:
        raise ValueError(f"the export of {version} says version {schema.get('version')!r}")
    return schema


def validator(version, class_uid, profiles):
    if version not in _schemas:
        _schemas[version] = OcsfJsonSchemaEmbedded(load_schema(version))
    key = (version, class_uid, tuple(sorted(profiles)))
    if key not in _validators:
        s = _schemas[version]
        name = s.lookup_class_name_from_uid(class_uid=class_uid)
        schema = s.get_class_schema(class_name=name, profiles=list(profiles))
        _validators[key] = (name, jsonschema.Draft202012Validator(schema))
    return _validators[key]


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    total = bad = 0
    seen = set()
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                total += 1
                where = f"{path}:{n}"
                try:
                    ev = json.loads(line)
                    meta = ev.get("metadata") or {}
                    version = meta["version"]
                    profiles = meta.get("profiles") or []
                    name, v = validator(version, ev["class_uid"], profiles)
                except Exception as e:  # noqa: BLE001 - reported per event
                    bad += 1
                    print(f"{where}: cannot validate: {e!r}")
                    continue
                seen.add((version, name, ",".join(sorted(profiles))))
                errors = sorted(v.iter_errors(ev), key=lambda e: list(e.absolute_path))
                if errors:
                    bad += 1
                    for e in errors:
                        path_s = "/".join(str(p) for p in e.absolute_path) or "(event)"
                        print(f"{where}: {path_s}: {e.message[:300]}")
    for version, name, profiles in sorted(seen):
        print(f"checked against OCSF {version} class {name} profiles [{profiles}]")
    print(f"{total - bad} of {total} events valid")
    return 1 if bad or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
