#!/usr/bin/env python3
"""Build callscope's example guests with componentize-py, cached by source hash.

    python examples/build.py [NAME...]          # build (or find cached), print NAME: PATH
    python examples/build.py --path NAME...     # print only the paths, one a line

``--path`` is for the shell: ``cp "$(.venv/bin/python examples/build.py --path
fanout)" fanout.wasm``. Exit status 1 when an example cannot be built (the
reason on stderr), 2 for a bad command line.

Each example is a directory here holding ``app.py`` (the Python guest) and,
for a custom world, ``wit/``. Outputs go to ``$CALLSCOPE_EXAMPLES_CACHE``
(default ``~/.cache/callscope/examples/``), named ``NAME-HASH.wasm`` where
HASH covers the componentize-py version, the world, every source file and
every WIT file used; a build happens only when that hash is new (7 to 9 s,
~20 MB per guest).

WIT packages for the wasi:http examples are read from ``../shared/wit/deps``
beside the repository (``$CALLSCOPE_SHARED`` overrides ``../shared``); they are
never copied into the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def shared_dir() -> Path:
    return Path(os.environ.get("CALLSCOPE_SHARED", REPO.parent / "shared")).resolve()


def cache_dir() -> Path:
    d = os.environ.get("CALLSCOPE_EXAMPLES_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "callscope" / "examples"


@dataclass(frozen=True)
class Example:
    name: str
    world: str
    wit: tuple  # paths, relative to this directory or starting with "shared:"
    note: str = ""

    def wit_paths(self) -> list[Path]:
        out = []
        for w in self.wit:
            if w.startswith("shared:"):
                out.append(shared_dir() / w[len("shared:"):])
            else:
                out.append(HERE / self.name / w)
        return out


HTTP_P3 = ("shared:wit/deps/http-0.3.0",)

EXAMPLES = {
    "hello": Example("hello", "hello", ("wit",),
                     "custom world: async export `run` awaiting async import `host.greet`"),
    "service": Example("service", "wasi:http/service@0.3.0", HTTP_P3,
                       "well-behaved wasi:http handler (no outgoing calls)"),
    "fanout": Example("fanout", "wasi:http/service@0.3.0", HTTP_P3,
                      "proxy: client.send upstream, spawn()ed audit flusher draining a shared queue"),
}

# fanout-bp (the same proxy opting out of reuse with backpressure.inc/dec) cannot
# be written: componentize-py 0.25.1 gives Python code no way to call the
# backpressure built-ins (see fanout-bp/README.md).
UNAVAILABLE = {
    "fanout-bp": "componentize-py 0.25.1 exposes no backpressure built-ins to Python",
}


class BuildError(Exception):
    pass


def componentize_py() -> Optional[str]:
    exe = shutil.which("componentize-py")
    if exe is None:
        cand = Path(sys.executable).parent / "componentize-py"
        if cand.exists():
            exe = str(cand)
    return exe


def componentize_py_version() -> Optional[str]:
    try:
        from importlib.metadata import version
        return version("componentize-py")
    except Exception:
        return None


def _files(root: Path):
    if root.is_file():
        yield root
        return
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith("."):
            yield p


def source_hash(ex: Example) -> str:
    h = hashlib.sha256()
    h.update(f"componentize-py {componentize_py_version()}\0world {ex.world}\0".encode())
    for root in [HERE / ex.name / "app.py"] + [p for p in (HERE / ex.name).glob("*.py") if p.name != "app.py"] \
            + ex.wit_paths():
        for f in _files(root):
            h.update(str(f.relative_to(root.parent if root.is_file() else root)).encode() + b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:16]


def output_path(name: str) -> Path:
    ex = EXAMPLES[name]
    return cache_dir() / f"{name}-{source_hash(ex)}.wasm"


def build(name: str, quiet: bool = True) -> Path:
    """The example's component, built now if no cached build matches."""
    if name in UNAVAILABLE:
        raise BuildError(f"example `{name}` cannot be built: {UNAVAILABLE[name]}")
    if name not in EXAMPLES:
        raise BuildError(f"no example named `{name}` (have: {', '.join(EXAMPLES)})")
    ex = EXAMPLES[name]
    for w in ex.wit_paths():
        if not w.exists():
            raise BuildError(f"example `{name}`: WIT path {w} is missing")
    out = output_path(name)
    if out.exists():
        return out
    exe = componentize_py()
    if exe is None:
        raise BuildError("componentize-py is not installed (pip install componentize-py==0.25.1)")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe]
    for w in ex.wit_paths():
        cmd += ["-d", str(w)]
    cmd += ["-w", ex.world]
    if quiet:
        cmd.append("-q")
    with tempfile.TemporaryDirectory(prefix=f"callscope-{name}-") as tmp:
        tmp_out = Path(tmp) / f"{name}.wasm"
        cmd += ["componentize", "app", "-p", str(HERE / name), "-o", str(tmp_out)]
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)  # keep the venv's packages out of the guest
        r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"componentize-py failed for `{name}` ({' '.join(cmd)}):\n"
                             f"{r.stdout}{r.stderr}")
        staged = out.parent / f".{out.name}.{os.getpid()}.tmp"
        shutil.copyfile(tmp_out, staged)
        os.replace(staged, out)  # atomic: a concurrent build never sees half a file
    return out


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="examples/build.py",
                                description="Build callscope's example guests with componentize-py "
                                            "(cached by source hash) and print where they are.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"examples to build (default: all of {', '.join(EXAMPLES)})")
    p.add_argument("--path", action="store_true",
                   help="print only each path, one a line, for $(...) (default: 'NAME: PATH')")
    args = p.parse_args(argv)
    names = args.names or list(EXAMPLES)
    status = 0
    for name in names:
        try:
            out = build(name, quiet=True)
        except BuildError as e:
            print(f"{name}: {e}", file=sys.stderr)
            status = 1
            continue
        print(out if args.path else f"{name}: {out}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
