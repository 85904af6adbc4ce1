#!/usr/bin/env python3
"""Build callscope's example guests, cached by source hash.

    python examples/build.py [NAME...]          # build (or find cached), print NAME: PATH
    python examples/build.py --path NAME...     # print only the paths, one a line

``--path`` is for the shell: ``cp "$(.venv/bin/python examples/build.py --path
fanout)" fanout.wasm``. Exit status 1 when an example cannot be built (the
reason on stderr), 2 for a bad command line.

Each example is a directory here holding ``app.py`` (a Python guest, built
with componentize-py) or ``app.js`` (a JS guest, built with ``jco
componentize --backend qjs``) and, for a custom world, its WIT (``wit/`` or a
directory shared by several examples). Outputs go to
``$CALLSCOPE_EXAMPLES_CACHE`` (default ``~/.cache/callscope/examples/``), named
``NAME-HASH.wasm`` where HASH covers the toolchain's version, the world, every
source file and every WIT file used; a build happens only when that hash is
new (componentize-py: 7 to 11 s, ~20 MB per guest; jco: ~2 s, ~1.6 MB).

jco comes from npm: ``$CALLSCOPE_JCO`` names a jco executable, else the one
installed under ``$CALLSCOPE_NPM_CACHE`` (default ``~/.cache/callscope/npm``,
outside the repository); when there is none and ``npm`` is on PATH, it is
installed there (``npm install @bytecodealliance/jco@JCO_VERSION``). Without
npm a JS example cannot be built and says so.

A custom world that imports WASI packages (``wasi:clocks@0.3.0``) names them
as ``deps``: the build assembles a WIT directory in a temporary place with
``deps/`` linking to ``../shared/wit/deps/...``.

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


def _resolve(w: str, name: str) -> Path:
    if w.startswith("shared:"):
        return shared_dir() / w[len("shared:"):]
    return (HERE / name / w).resolve()


@dataclass(frozen=True)
class Example:
    name: str
    world: str
    wit: tuple  # paths, relative to the example's directory or starting with "shared:"
    note: str = ""
    lang: str = "py"  # "py": app.py, componentize-py; "js": app.js, jco componentize --backend qjs
    deps: tuple = ()  # WIT packages the world imports ("shared:wit/deps/clocks-0.3.0")

    def wit_paths(self) -> list[Path]:
        return [_resolve(w, self.name) for w in self.wit]

    def dep_paths(self) -> list[Path]:
        return [_resolve(w, self.name) for w in self.deps]

    @property
    def source(self) -> Path:
        return HERE / self.name / ("app.js" if self.lang == "js" else "app.py")

    @property
    def uses_shared(self) -> bool:
        return any(w.startswith("shared:") for w in self.wit + self.deps)


HTTP_P3 = ("shared:wit/deps/http-0.3.0",)
CLOCKS_P3 = ("shared:wit/deps/clocks-0.3.0",)
GUESTS_WIT = ("../wit-guests",)  # callscope:guests/svc, shared by the custom-world Python guests
JS_WIT = ("../js-promise/wit",)

EXAMPLES = {
    "hello": Example("hello", "hello", ("wit",),
                     "custom world: async export `run` awaiting async import `host.greet`"),
    "service": Example("service", "wasi:http/service@0.3.0", HTTP_P3,
                       "well-behaved wasi:http handler (no outgoing calls)"),
    "fanout": Example("fanout", "wasi:http/service@0.3.0", HTTP_P3,
                      "proxy: client.send upstream, spawn()ed audit flusher draining a shared queue"),
    # Guests with a truth (examples/truth.json): what each call was really for.
    "queue": Example("queue", "svc", GUESTS_WIT, "a global job queue run by whichever request's worker "
                     "runs (misattributes; ids verbatim)", deps=CLOCKS_P3),
    "ints": Example("ints", "svc", GUESTS_WIT, "a shared metrics buffer flushed as integer-only "
                    "report calls (misattributes)", deps=CLOCKS_P3),
    "encoded": Example("encoded", "svc", GUESTS_WIT, "shared outbox of notifications carrying the id "
                       "percent-encoded or JSON-escaped (misattributes)", deps=CLOCKS_P3),
    "batch": Example("batch", "svc", GUESTS_WIT, "DataLoader-style batch: one post-batch call for "
                     "several requests (misattributes)", deps=CLOCKS_P3),
    "cache": Example("cache", "svc", GUESTS_WIT, "a page cache shared by all requests; B follows a "
                     "link A fetched, on its own task (NOT misattributed)", deps=CLOCKS_P3),
    "clean": Example("clean", "svc", GUESTS_WIT, "every call on its own task, spawned work after "
                     "return included (NOT misattributed)", deps=CLOCKS_P3),
    "nondet": Example("nondet", "svc", GUESTS_WIT, "shared queue of background fetches carrying a clock "
                      "reading and random bytes, no id (misattributes)", deps=CLOCKS_P3),
    "stream": Example("stream", "wasi:http/service@0.3.0", HTTP_P3,
                      "audit flusher that creates the body streams it sends (misattributes)"),
    "http-clean": Example("http-clean", "wasi:http/service@0.3.0", HTTP_P3,
                          "proxy posting its own audit after answering, on its own task (NOT misattributed)"),
    "js-promise": Example("js-promise", "svc", ("wit",), "JS (QuickJS): a promise shared by the "
                          "requests in flight moves their continuations onto one task (misattributes)",
                          lang="js", deps=CLOCKS_P3),
    "js-promise-trap": Example("js-promise-trap", "svc", JS_WIT, "js-promise returning on another "
                               "request's task: the guest's runtime panics, the instance traps",
                               lang="js", deps=CLOCKS_P3),
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


JCO_VERSION = "1.35.0"


def npm_cache() -> Path:
    d = os.environ.get("CALLSCOPE_NPM_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "callscope" / "npm"


def jco(install: bool = False) -> Optional[str]:
    """A jco executable: ``$CALLSCOPE_JCO``, else the one under npm_cache();
    with ``install``, npm installs it there first when it is missing."""
    env = os.environ.get("CALLSCOPE_JCO")
    if env:
        if Path(env).exists():
            return env
        if install:
            raise BuildError(f"CALLSCOPE_JCO={env}: no such file")
        return None
    exe = npm_cache() / "node_modules" / ".bin" / "jco"
    if exe.exists():
        return str(exe)
    if not install:
        return None
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("the JS examples need jco from npm, and npm is not on PATH "
                         "(or set CALLSCOPE_JCO to a jco executable)")
    npm_cache().mkdir(parents=True, exist_ok=True)
    r = subprocess.run([npm, "install", "--prefix", str(npm_cache()), "--no-audit", "--no-fund",
                        f"@bytecodealliance/jco@{JCO_VERSION}"], capture_output=True, text=True)
    if r.returncode != 0 or not exe.exists():
        raise BuildError(f"npm install @bytecodealliance/jco@{JCO_VERSION} into {npm_cache()} failed:\n"
                         f"{r.stdout}{r.stderr}".rstrip())
    return str(exe)


def jco_version() -> Optional[str]:
    exe = jco()
    if exe is None:
        return None
    pkg = Path(exe).resolve().parent.parent / "package.json"
    try:
        import json
        return json.loads(pkg.read_text())["version"]
    except Exception:
        return exe


def source_hash(ex: Example) -> str:
    h = hashlib.sha256()
    tool = f"jco {jco_version()} qjs" if ex.lang == "js" else f"componentize-py {componentize_py_version()}"
    h.update(f"{tool}\0world {ex.world}\0".encode())
    others = [p for p in (HERE / ex.name).glob("*.py") if p.name != "app.py"] if ex.lang == "py" else []
    for root in [ex.source] + others + ex.wit_paths() + ex.dep_paths():
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
    for w in ex.wit_paths() + ex.dep_paths():
        if not w.exists():
            raise BuildError(f"example `{name}`: WIT path {w} is missing")
    if ex.lang == "js":
        jco(install=True)
    out = output_path(name)
    if out.exists():
        return out
    if ex.lang == "js":
        return _build_js(ex, out)
    exe = componentize_py()
    if exe is None:
        raise BuildError("componentize-py is not installed (pip install componentize-py==0.25.1)")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe]
    with tempfile.TemporaryDirectory(prefix=f"callscope-{name}-") as tmp:
        for w in _wit_dirs(ex, Path(tmp)):
            cmd += ["-d", str(w)]
        cmd += ["-w", ex.world]
        if quiet:
            cmd.append("-q")
        tmp_out = Path(tmp) / f"{name}.wasm"
        cmd += ["componentize", "app", "-p", str(HERE / name), "-o", str(tmp_out)]
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)  # keep the venv's packages out of the guest
        r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"componentize-py failed for `{name}` ({' '.join(cmd)}):\n"
                             f"{r.stdout}{r.stderr}")
        _install(tmp_out, out)
    return out


def _install(built: Path, out: Path) -> None:
    staged = out.parent / f".{out.name}.{os.getpid()}.tmp"
    shutil.copyfile(built, staged)
    os.replace(staged, out)  # atomic: a concurrent build never sees half a file


def _wit_dirs(ex: Example, tmp: Path) -> list[Path]:
    """The WIT directories to hand the toolchain: the example's own, or,
    when its world imports ``deps``, one assembled under ``tmp`` (its WIT
    files copied, ``deps/NAME`` linking to each dependency where it is)."""
    if not ex.deps:
        return ex.wit_paths()
    wit = tmp / "wit"
    (wit / "deps").mkdir(parents=True)
    for w in ex.wit_paths():
        for f in sorted(w.glob("*.wit")):
            shutil.copyfile(f, wit / f.name)
    for d in ex.dep_paths():
        os.symlink(d, wit / "deps" / d.name)
    return [wit]


def _build_js(ex: Example, out: Path) -> Path:
    exe = jco(install=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"callscope-{ex.name}-") as tmp:
        [wit] = _wit_dirs(ex, Path(tmp)) if ex.deps else ex.wit_paths()[:1]
        tmp_out = Path(tmp) / f"{ex.name}.wasm"
        cmd = [exe, "componentize", str(ex.source), "--wit", str(wit), "-n", ex.world,
               "--backend", "qjs", "-o", str(tmp_out)]
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0 or not tmp_out.exists():
            raise BuildError(f"jco componentize failed for `{ex.name}` ({' '.join(cmd)}):\n"
                             f"{r.stdout}{r.stderr}".rstrip())
        _install(tmp_out, out)
    return out


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="examples/build.py",
                                description="Build callscope's example guests (componentize-py, or jco for JS) "
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
