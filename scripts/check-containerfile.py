#!/usr/bin/env python3
"""Static checks of the detector's Containerfile, for machines without a
container engine: what a build would trip over first, checked against the
repository as it is.

- every COPY source from the build context exists and is not excluded by
  .dockerignore; so are Cargo.toml, Cargo.lock and every workspace member;
- every COPY --from names an earlier stage;
- the build stage builds a [[bin]] that the named package declares, and
  copies it from the path cargo writes it to;
- the ENTRYPOINT is the path the binary was copied to in the final stage;
- the final stage runs as a non-root user;
- the Rust image is at least the workspace's rust-version.

Exit status 0 when every check passes, 1 otherwise (each failure named).
Usage: scripts/check-containerfile.py [Containerfile]
"""

import fnmatch
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def instructions(text):
    """(line number, INSTRUCTION, arguments) with continuations joined."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out


def ignore_patterns():
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    pats = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line.rstrip("/"))
    return pats


def ignored(rel, patterns):
    """Whether `rel` (or a directory above it) matches an ignore pattern.
    Negations (`!`) are not used by this repository's .dockerignore and are
    refused rather than half-supported."""
    parts = Path(rel).parts
    hit = False
    for pat in patterns:
        if pat.startswith("!"):
            raise SystemExit(".dockerignore: negated patterns are not supported by this check")
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:i]), pat):
                hit = True
    return hit


def split_flags(args):
    words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    return flags, rest


def main():
    file = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Containerfile"
    text = file.read_text()
    errors = []
    patterns = ignore_patterns()
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    args = {}
    stages = []  # (name or None, image)
    final_copies = {}  # destination -> source, in the final stage
    built = set()  # (package, bin) built by a RUN cargo build
    installed = None  # where the build stage puts the binary
    entrypoint = None
    user = None

    for required in ["Cargo.toml", "Cargo.lock", *workspace["workspace"]["members"]]:
        if not (ROOT / required).exists():
            errors.append(f"{required}: listed by the workspace but missing")
        elif ignored(required, patterns):
            errors.append(f"{required}: needed by the build but excluded by .dockerignore")

    for line, word, rest in instructions(text):
        where = f"{file.name}:{line}"
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            if not m:
                errors.append(f"{where}: cannot read FROM {rest!r}")
                continue
            image = re.sub(r"\$\{(\w+)\}", lambda a: args.get(a.group(1), ""), m.group(1))
            stages.append((m.group(2), image))
            final_copies, user, entrypoint = {}, None, None
        elif word == "COPY":
            flags, paths = split_flags(rest)
            *sources, dest = paths
            source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source_stage is None:
                for src in sources:
                    if src == ".":
                        continue
                    if not (ROOT / src).exists():
                        errors.append(f"{where}: COPY source {src} does not exist in the build context")
                    elif ignored(src, patterns):
                        errors.append(f"{where}: COPY source {src} is excluded by .dockerignore")
            elif source_stage not in [name for name, _ in stages[:-1]]:
                errors.append(f"{where}: COPY --from={source_stage} names no earlier stage")
            for src in sources:
                final_copies[dest] = (source_stage, src)
        elif word == "RUN":
            body = re.sub(r"^(--\S+\s+)*", "", rest)
            for m in re.finditer(r"cargo build ([^&;]*)", body):
                opts = shlex.split(m.group(1))
                pkg = opts[opts.index("-p") + 1] if "-p" in opts else None
                binary = opts[opts.index("--bin") + 1] if "--bin" in opts else None
                if "--locked" not in opts:
                    errors.append(f"{where}: cargo build without --locked is not reproducible")
                if "--release" not in opts:
                    errors.append(f"{where}: cargo build without --release")
                built.add((pkg, binary))
                out = f"target/release/{binary}"
                for other in re.finditer(r"install\s+(?:-[mog]\s+\S+\s+|-\S+\s+)*(\S+)\s+(\S+)", body):
                    if other.group(1) != out:
                        errors.append(f"{where}: installs {other.group(1)}, but cargo writes {out}")
                    installed = other.group(2)
        elif word == "USER":
            user = rest
        elif word == "ENTRYPOINT":
            try:
                entrypoint = json.loads(rest)[0]
            except (ValueError, IndexError):
                errors.append(f"{where}: ENTRYPOINT is not in exec (JSON) form")

    manifests = {}
    for member in workspace["workspace"]["members"]:
        path = ROOT / member / "Cargo.toml"
        if path.exists():
            manifest = tomllib.loads(path.read_text())
            manifests[manifest["package"]["name"]] = manifest
    for pkg, binary in built:
        if pkg not in manifests:
            errors.append(f"cargo build -p {pkg}: no workspace member is named {pkg}")
            continue
        bins = [b["name"] for b in manifests[pkg].get("bin", [])]
        if binary not in bins:
            errors.append(f"cargo build -p {pkg} --bin {binary}: {pkg} declares no such [[bin]] ({bins})")

    if entrypoint is None:
        errors.append(f"{file.name}: the final stage has no ENTRYPOINT")
    elif entrypoint not in final_copies:
        errors.append(f"{file.name}: ENTRYPOINT {entrypoint} is not a path copied into the final stage")
    else:
        stage, src = final_copies[entrypoint]
        if stage is None or src != installed:
            errors.append(f"{file.name}: ENTRYPOINT {entrypoint} comes from {stage}:{src}, not the built binary {installed}")

    if user is None or user.split(":")[0] in ("0", "root"):
        errors.append(f"{file.name}: the final stage runs as root (USER {user})")

    rust_images = [image for _, image in stages if re.search(r"(^|/)rust:", image)]
    need = tuple(int(x) for x in workspace["workspace"]["package"]["rust-version"].split("."))
    for image in rust_images:
        m = re.search(r"rust:(\d+)\.(\d+)", image)
        if not m or tuple(int(x) for x in m.groups()) < need[:2]:
            errors.append(f"{file.name}: {image} is older than rust-version {'.'.join(map(str, need))}")
    if not rust_images:
        errors.append(f"{file.name}: no stage builds from a rust image")

    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"ok: {file.name}: {len(stages)} stages, binary {entrypoint}, context checked against .dockerignore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
