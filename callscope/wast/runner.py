"""Run a component WAST script against a :class:`~callscope.wast.engine.WastEngine`.

One line is reported per failed assertion::

    FILE:LINE: assert_return: expected (u32.const 1), got (u32.const 2)

``assert_invalid`` and ``assert_malformed`` are answered by wasmtime's own
validator, not by the engine. Values are converted to and compared with the
engine's results type-directed, by the function type the engine reports.
"""

from __future__ import annotations

import os
import traceback

import math
import os
import struct
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..component import types as T
from ..runtime.errors import Trap
from .engine import LinkError, NotSupported, WastEngine
from .sexpr import SExprError
from .script import (
    ActionCmd, AssertInvalid, AssertMalformed, AssertReturn, AssertTrap, AssertUnlinkable,
    ComponentCmd, InstanceCmd, Invoke, ModuleCmd, ModuleSource, RegisterCmd, Script,
    ScriptError, WastValue, parse_script, type_name, F32_CANONICAL_PAYLOAD,
    F64_CANONICAL_PAYLOAD, _INT_BITS, _PRIM_KIND,
)


class BadInput(Exception):
    """The file cannot be run at all (missing, not WAST, a bad directive).
    ``str(e)`` is the one line to show, starting with the file name."""


# --------------------------------------------------------------------------
# Loading


def load_script(path: str) -> Script:
    """Read, parse and statically check a script. Raises :class:`BadInput`."""
    if os.path.isdir(path):
        raise BadInput(f"{path}: is a directory")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a WAST script: not UTF-8 text") from None
    return load_text(text, path)


def load_text(text: str, path: str = "<script>") -> Script:
    try:
        script = parse_script(text, path)
    except SExprError as e:
        raise BadInput(f"{path}: not a WAST script: {e}") from None
    except ScriptError as e:
        raise BadInput(f"{path}:{e.line}: {e.message}") from None
    try:
        check_script(script)
    except ScriptError as e:
        raise BadInput(f"{path}:{e.line}: {e.message}") from None
    return script


def check_script(script: Script) -> None:
    """Static checks: names resolve, and components stand where components
    belong. Raises :class:`ScriptError`."""
    defs: set[str] = set()
    instances: set[str] = set()
    have_current = False

    def component_only(mod: ModuleSource, line: int):
        if mod.kind == "module" or mod.is_core_binary:
            raise ScriptError("a core module where a component belongs "
                              "(callscope runs component-model scripts)", line)

    def check_invoke(inv: Invoke):
        if inv.instance is not None:
            if inv.instance not in instances:
                raise ScriptError(f"unknown instance {inv.instance}", inv.line)
        elif not have_current:
            raise ScriptError("invoke before any component is instantiated", inv.line)

    for cmd in script.commands:
        if isinstance(cmd, ModuleCmd):
            component_only(cmd.module, cmd.line)
        elif isinstance(cmd, ComponentCmd):
            component_only(cmd.module, cmd.line)
            if cmd.definition:
                if cmd.module.id:
                    defs.add(cmd.module.id)
            else:
                if cmd.module.id:
                    instances.add(cmd.module.id)
                have_current = True
        elif isinstance(cmd, InstanceCmd):
            if cmd.definition not in defs:
                raise ScriptError(f"unknown component definition {cmd.definition}", cmd.line)
            if cmd.id:
                instances.add(cmd.id)
            have_current = True
        elif isinstance(cmd, RegisterCmd):
            if cmd.instance is not None and cmd.instance not in instances:
                raise ScriptError(f"unknown instance {cmd.instance}", cmd.line)
            if cmd.instance is None and not have_current:
                raise ScriptError("register before any component is instantiated", cmd.line)
        elif isinstance(cmd, (ActionCmd, AssertReturn)):
            check_invoke(cmd.invoke)
        elif isinstance(cmd, AssertTrap):
            if cmd.invoke is not None:
                check_invoke(cmd.invoke)
            else:
                component_only(cmd.module, cmd.line)
        elif isinstance(cmd, AssertUnlinkable):
            component_only(cmd.module, cmd.line)


# --------------------------------------------------------------------------
# Comparing and formatting values


def _f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _f64_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _nan_matches(kind: str, pattern: tuple, actual: float) -> bool:
    if not math.isnan(actual):
        return False
    sign, pat = pattern
    if kind == "f32":
        bits = _f32_bits(actual)
        payload, neg, canon, quiet = bits & 0x7FFFFF, bits >> 31, F32_CANONICAL_PAYLOAD, 1 << 22
    else:
        bits = _f64_bits(actual)
        payload, neg, canon, quiet = (bits & ((1 << 52) - 1), bits >> 63,
                                      F64_CANONICAL_PAYLOAD, 1 << 51)
    if pat == "canonical":
        return payload == canon
    if pat == "arithmetic":
        return bool(payload & quiet)
    if pat == "canonical_exact":  # plain `nan` / `-nan`
        return payload == canon and neg == (1 if sign < 0 else 0)
    return payload == pat and neg == (1 if sign < 0 else 0)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def matches(exp: WastValue, actual: Any, t: Optional[T.ValType]) -> bool:
    """Whether the engine's ``actual`` host value is what ``exp`` expects,
    directed by type ``t`` (None: by the constant's own kind)."""
    k = exp.kind
    if t is not None:
        want = _PRIM_KIND.get(type(t))
        if want is not None and want != k:
            return False
    if k in ("f32", "f64"):
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return False
        actual = float(actual)
        if exp.is_nan:
            return _nan_matches(k, exp.value, actual)
        if math.isnan(actual):
            return False
        return actual == exp.value and math.copysign(1, actual) == math.copysign(1, exp.value)
    if k in _INT_BITS:
        return _is_int(actual) and actual == exp.value
    if k == "bool":
        return isinstance(actual, bool) and actual == exp.value
    if k in ("char", "str"):
        return isinstance(actual, str) and actual == exp.value
    if k == "list":
        if isinstance(t, T.MapType):
            entry = T.TupleType((t.k, t.v))
            if not isinstance(actual, (list, tuple)) or len(actual) != len(exp.value):
                return False
            return all(matches(e, _as_tuple_dict(a), entry) for e, a in zip(exp.value, actual))
        if t is not None and not isinstance(t, T.ListType):
            return False
        if not isinstance(actual, (list, tuple)) or len(actual) != len(exp.value):
            return False
        et = t.t if t is not None else None
        return all(matches(e, a, et) for e, a in zip(exp.value, actual))
    if k == "tuple":
        if t is not None and (not isinstance(t, T.TupleType) or len(t.ts) != len(exp.value)):
            return False
        actual = _as_tuple_dict(actual)
        if not isinstance(actual, dict) or set(actual) != {str(i) for i in range(len(exp.value))}:
            return False
        return all(matches(e, actual[str(i)], t.ts[i] if t is not None else None)
                   for i, e in enumerate(exp.value))
    if k == "record":
        if t is not None and not isinstance(t, T.RecordType):
            return False
        given = dict(exp.value)
        if not isinstance(actual, dict) or set(actual) != set(given):
            return False
        ftypes = {f.label: f.t for f in t.fields} if t is not None else {}
        return all(matches(e, actual[label], ftypes.get(label)) for label, e in given.items())
    if k in ("variant", "option", "result"):
        if k == "variant":
            label, payload = exp.value
            if t is not None and not isinstance(t, T.VariantType):
                return False
            cases = {c.label: c.t for c in t.cases} if t is not None else {}
        elif k == "option":
            label, payload = exp.value
            if t is not None and not isinstance(t, T.OptionType):
                return False
            cases = {"none": None, "some": t.t} if t is not None else {}
        else:
            label, payload = exp.value
            if t is not None and not isinstance(t, T.ResultType):
                return False
            cases = {"ok": t.ok, "error": t.error} if t is not None else {}
        if not isinstance(actual, dict) or len(actual) != 1:
            return False
        (alabel, avalue), = actual.items()
        if alabel != label:
            return False
        if payload is None:
            return avalue is None
        return matches(payload, avalue, cases.get(label))
    if k == "enum":
        if t is not None and not isinstance(t, T.EnumType):
            return False
        return isinstance(actual, dict) and actual == {exp.value: None}
    if k == "flags":
        if t is not None and not isinstance(t, T.FlagsType):
            return False
        if not isinstance(actual, dict):
            return False
        if t is not None and not set(actual) <= set(t.labels):
            return False
        return {label for label, on in actual.items() if on} == set(exp.value)
    return False


def _as_tuple_dict(a):
    """Tuples are dicts keyed '0', '1', ...; accept Python tuples too."""
    if isinstance(a, (tuple, list)):
        return {str(i): v for i, v in enumerate(a)}
    return a


def _fmt_float(x: float, kind: str) -> str:
    if math.isnan(x):
        if kind == "f32":
            bits = _f32_bits(x)
            payload, neg, canon = bits & 0x7FFFFF, bits >> 31, F32_CANONICAL_PAYLOAD
        else:
            bits = _f64_bits(x)
            payload, neg, canon = bits & ((1 << 52) - 1), bits >> 63, F64_CANONICAL_PAYLOAD
        s = "-" if neg else ""
        return f"{s}nan" if payload == canon else f"{s}nan:{payload:#x}"
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    if kind == "f32":
        for p in range(1, 10):
            s = f"{x:.{p}g}"
            if struct.unpack("<f", struct.pack("<f", float(s)))[0] == x:
                break
    else:
        s = repr(x)
    if "e" not in s and s.endswith(".0"):
        s = s[:-2]
    if x == 0 and math.copysign(1, x) < 0 and not s.startswith("-"):
        s = "-" + s
    return s


def _fmt_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_value(v: Any, t: Optional[T.ValType] = None) -> str:
    """A host value in wast syntax, e.g. ``(u32.const 2)``, directed by ``t``."""
    return "(" + _fmt_inner(v, t) + ")"


def _fmt_inner(v: Any, t) -> str:
    try:
        return _fmt_typed(v, t) if t is not None else _fmt_untyped(v)
    except Exception:
        return f"<{type_name(t)}: {v!r}>"


def _fmt_typed(v: Any, t) -> str:
    k = _PRIM_KIND.get(type(t))
    if k is not None:
        if k == "bool" and isinstance(v, bool):
            return f"bool.const {'true' if v else 'false'}"
        if k in _INT_BITS and _is_int(v):
            return f"{k}.const {v}"
        if k in ("f32", "f64") and isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{k}.const {_fmt_float(float(v), k)}"
        if k == "char" and isinstance(v, str):
            return f"char.const {_fmt_string(v)}"
        if k == "str" and isinstance(v, str):
            return f"str.const {_fmt_string(v)}"
        return f"<{type_name(t)}: {v!r}>"
    if isinstance(t, T.ListType):
        return " ".join(["list.const"] + [format_value(e, t.t) for e in v])
    if isinstance(t, T.MapType):
        entry = T.TupleType((t.k, t.v))
        return " ".join(["list.const"] + [format_value(_as_tuple_dict(e), entry) for e in v])
    if isinstance(t, T.TupleType):
        v = _as_tuple_dict(v)
        return " ".join(["tuple.const"] + [format_value(v[str(i)], et) for i, et in enumerate(t.ts)])
    if isinstance(t, T.RecordType):
        parts = ["record.const"]
        for f in t.fields:
            parts.append(f"(field {_fmt_string(f.label)} {_fmt_inner(v[f.label], f.t)})")
        return " ".join(parts)
    if isinstance(t, (T.VariantType, T.OptionType, T.ResultType)):
        (label, payload), = v.items()
        if isinstance(t, T.VariantType):
            ct = {c.label: c.t for c in t.cases}[label]
            s = f"variant.const {_fmt_string(label)}"
        elif isinstance(t, T.OptionType):
            ct = t.t if label == "some" else None
            s = {"none": "option.none", "some": "option.some"}[label]
        else:
            ct = t.ok if label == "ok" else t.error
            s = {"ok": "result.ok", "error": "result.err"}[label]
        if payload is not None or ct is not None:
            s += " " + format_value(payload, ct)
        return s
    if isinstance(t, T.EnumType):
        (label, _), = v.items()
        return f"enum.const {_fmt_string(label)}"
    if isinstance(t, T.FlagsType):
        return " ".join(["flags.const"] + [_fmt_string(label) for label in t.labels if v.get(label)])
    return f"<{type_name(t)} {v!r}>"


def _fmt_untyped(v: Any) -> str:
    if isinstance(v, bool):
        return f"bool.const {'true' if v else 'false'}"
    if isinstance(v, int):
        return f"{'s64' if v < 0 else 'u64'}.const {v}"
    if isinstance(v, float):
        return f"f64.const {_fmt_float(v, 'f64')}"
    if isinstance(v, str):
        return f"str.const {_fmt_string(v)}"
    if isinstance(v, (list, tuple)):
        return " ".join(["list.const"] + [format_value(e) for e in v])
    return f"<{v!r}>"


def format_results(values: list, types: list) -> str:
    if not values:
        return "nothing"
    ts = list(types) + [None] * (len(values) - len(types))
    return " ".join(format_value(v, t) for v, t in zip(values, ts))


def short_error(e: BaseException) -> str:
    """One line from a (possibly multi-line) wasmtime error."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if "Caused by:" in lines:
        i = lines.index("Caused by:")
        rest = [ln.lstrip("0123456789: ") for ln in lines[i + 1:]]
        return "; ".join(rest) if rest else lines[0]
    return lines[0]


# --------------------------------------------------------------------------
# Validation by wasmtime


_VALIDATION_ENGINE = None


def _validation_engine():
    global _VALIDATION_ENGINE
    if _VALIDATION_ENGINE is None:
        from ..runtime.fiber import new_engine

        _VALIDATION_ENGINE = new_engine()
    return _VALIDATION_ENGINE


def wasmtime_rejects(mod: ModuleSource) -> Optional[str]:
    """The reason wasmtime rejects this component (or core module), or None
    when it accepts it."""
    import wasmtime

    try:
        data = mod.to_bytes()
    except Exception as e:  # wat2wasm: malformed text
        return short_error(e)
    try:
        if mod.kind == "module":
            wasmtime.Module.validate(_validation_engine(), data)
        else:
            from wasmtime.component import Component

            Component(_validation_engine(), data)
    except Exception as e:
        return short_error(e)
    return None


# --------------------------------------------------------------------------
# Running


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0  # whole files (see skip_reason)

    def __iadd__(self, other: "Counts") -> "Counts":
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        return self

    def closing_line(self) -> str:
        line = f"{self.passed} passed, {self.failed} failed"
        if self.skipped:
            line += f", {self.skipped} file{'s' if self.skipped != 1 else ''} skipped"
        return line


# --------------------------------------------------------------------------
# Files not run: what the spec marks not yet implemented, and what the text
# parser cannot read


def nyi_entry(path: str) -> Optional[str]:
    """The ``nyi.txt`` that lists ``path`` as not yet implemented, or None.

    The spec's reference tests keep, at the root of their test directory, a
    ``nyi.txt`` naming (``./async/x.wast``, relative to it) the tests that
    land ahead of every implementation. It is looked for in each directory
    above ``path``, nearest first."""
    real = os.path.abspath(path)
    d = os.path.dirname(real)
    while True:
        listing = os.path.join(d, "nyi.txt")
        if os.path.isfile(listing):
            rel = os.path.relpath(real, d)
            try:
                with open(listing, encoding="utf-8", errors="replace") as f:
                    names = {os.path.normpath(ln.strip()) for ln in f
                             if ln.strip() and not ln.lstrip().startswith("#")}
            except OSError:
                names = set()
            if rel in names:
                shorter = os.path.relpath(listing)
                return shorter if len(shorter) < len(listing) else listing
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def unreadable_component(script: Script) -> Optional[str]:
    """Why wasmtime's text parser cannot read a component the script runs
    (``line 13: the `cancellable` option is no longer supported ...``), or
    None. The compiled binaries are kept (``ModuleSource.to_bytes``), so the
    run does not parse them twice. Texts that assertions expect to be
    malformed or invalid are not looked at."""
    for cmd in script.commands:
        mod = None
        if isinstance(cmd, ComponentCmd):
            mod = cmd.module
        elif isinstance(cmd, (AssertTrap, AssertUnlinkable)):
            mod = getattr(cmd, "module", None)
        if mod is None or mod.fmt == "binary":
            continue
        try:
            mod.to_bytes()
        except Exception as e:
            return f"line {cmd.line}: {short_error(e)}"
    return None


def skip_reason(path: str, script: Script) -> Optional[str]:
    """Why ``callscope wast`` (without ``--strict``) does not run this file,
    or None."""
    listing = nyi_entry(path)
    if listing is not None:
        return f"listed in {listing} (the spec's list of tests not yet implemented)"
    why = unreadable_component(script)
    if why is not None:
        return f"wasmtime's text parser cannot read a component: {why}"
    return None


class _Failed(Exception):
    """An assertion cannot run or went wrong for a reason other than a trap."""


class _Unavailable:
    """Stands for an instance (or definition) that could not be made."""

    def __init__(self, reason: str):
        self.reason = reason


def _is(e: BaseException, cls: type) -> bool:
    """``isinstance``, or an exception class of the same name (the runtime
    may define its own ``LinkError``/``NotSupported``)."""
    return isinstance(e, cls) or any(c.__name__ == cls.__name__ for c in type(e).__mro__)


def _trap_matches(expected: str, message: str) -> bool:
    if expected in message:
        return True
    for prefix in ("wasm trap: ",):
        if expected.startswith(prefix) and expected[len(prefix):] in message:
            return True
        if message.startswith(prefix) and expected in message[len(prefix):]:
            return True
    return False


class Runner:
    """Runs one script. ``report`` receives each output line."""

    def __init__(self, engine: WastEngine, path: str, report: Callable[[str], None] = print,
                 verbose: bool = False):
        self.engine = engine
        self.path = path
        self.report = report
        self.verbose = verbose
        self.counts = Counts()
        self.defs: dict[str, Any] = {}
        self.instances: dict[str, Any] = {}
        self.current: Any = None

    # ---- reporting
    def _fail(self, line: int, what: str, msg: str) -> None:
        self.counts.failed += 1
        self.report(f"{self.path}:{line}: {what}: {msg}")

    def _pass(self, line: int, what: str, detail: str = "") -> None:
        self.counts.passed += 1
        if self.verbose:
            self.report(f"{self.path}:{line}: {what}: passed{': ' + detail if detail else ''}")

    # ---- engine calls, each turning engine trouble into _Failed
    def _compile(self, mod: ModuleSource) -> bytes:
        try:
            return mod.to_bytes()
        except Exception as e:
            raise _Failed(f"component does not compile: {short_error(e)}") from None

    def _instantiate(self, data: bytes, name: Optional[str]) -> Any:
        """Raises Trap and LinkError through; other trouble as _Failed."""
        try:
            return self.engine.instantiate(data, name)
        except (Trap, LinkError):
            raise
        except Exception as e:
            if _is(e, LinkError):
                raise LinkError(str(e)) from None
            raise self._trouble(e) from None

    @staticmethod
    def _trouble(e: Exception) -> "_Failed":
        if _is(e, NotSupported):
            return _Failed(f"not supported: {e}")
        if os.environ.get("CALLSCOPE_DEBUG"):
            traceback.print_exception(e)
        where = ""
        tb = traceback.extract_tb(e.__traceback__)
        if tb:
            frame = tb[-1]
            name = os.path.relpath(frame.filename)
            if name.startswith(".."):
                name = frame.filename
            where = f" at {name}:{frame.lineno}"
        detail = f": {e}" if str(e) else ""
        return _Failed(f"internal error: {type(e).__name__}{detail}{where}")

    def _resolve(self, inv: Invoke) -> Any:
        inst = self.current if inv.instance is None else self.instances.get(inv.instance)
        if inst is None:
            raise _Failed(f"unknown instance {inv.instance or '(none instantiated)'}")
        if isinstance(inst, _Unavailable):
            raise _Failed(inst.reason)
        return inst

    def _call(self, inv: Invoke) -> tuple[list, T.FuncType]:
        """Invoke; returns (results, func type). Trap passes through."""
        inst = self._resolve(inv)
        try:
            ft = self.engine.func_type(inst, inv.name)
        except KeyError:
            raise _Failed(f"no exported function {inv.name!r}") from None
        except Trap as e:
            raise _Failed(f"cannot call {inv.name!r}: {e.message}") from None
        except Exception as e:
            raise self._trouble(e) from None
        ptypes = ft.param_types()
        if len(ptypes) != len(inv.args):
            raise _Failed(f"{inv.name!r} takes {len(ptypes)} argument(s), "
                          f"{len(inv.args)} given")
        args = []
        for i, (a, pt) in enumerate(zip(inv.args, ptypes)):
            try:
                args.append(a.to_host(pt))
            except ValueError as e:
                raise _Failed(f"argument {i + 1}: {e}") from None
        try:
            results = self.engine.invoke(inst, inv.name, args)
        except Trap:
            raise
        except Exception as e:
            raise self._trouble(e) from None
        return list(results), ft

    # ---- directives
    def run(self, script: Script) -> Counts:
        for cmd in script.commands:
            getattr(self, "_do_" + type(cmd).__name__)(cmd)
        return self.counts

    def _do_ComponentCmd(self, cmd: ComponentCmd) -> None:
        mod = cmd.module
        if cmd.definition:
            try:
                value: Any = self._compile(mod)
            except _Failed as f:
                value = _Unavailable(f"definition {mod.id or ''} at line {cmd.line}: {f}")
                self._fail(cmd.line, "component definition", str(f))
            if mod.id:
                self.defs[mod.id] = value
            return
        try:
            inst = self._instantiate(self._compile(mod), mod.id)
        except (_Failed, Trap, LinkError) as e:
            reason = self._instantiation_failure(e)
            inst = _Unavailable(f"component at line {cmd.line} failed to instantiate: {reason}")
            self._fail(cmd.line, "component", reason)
        if mod.id:
            self.instances[mod.id] = inst
        self.current = inst

    @staticmethod
    def _instantiation_failure(e: Exception) -> str:
        if isinstance(e, Trap):
            return f"trap {_quote(e.message)}"
        if isinstance(e, LinkError):
            return f"link error: {e}"
        return str(e)

    def _do_InstanceCmd(self, cmd: InstanceCmd) -> None:
        d = self.defs.get(cmd.definition)
        if isinstance(d, _Unavailable):
            inst: Any = _Unavailable(d.reason)
            self._fail(cmd.line, "component instance", d.reason)
        else:
            try:
                inst = self._instantiate(d, cmd.id)
            except (_Failed, Trap, LinkError) as e:
                reason = self._instantiation_failure(e)
                inst = _Unavailable(f"instance {cmd.id or ''} at line {cmd.line} "
                                    f"failed to instantiate: {reason}")
                self._fail(cmd.line, "component instance", reason)
        if cmd.id:
            self.instances[cmd.id] = inst
        self.current = inst

    def _do_ModuleCmd(self, cmd: ModuleCmd) -> None:  # rejected by check_script
        self._fail(cmd.line, "module", "core modules are not supported at top level")

    def _do_RegisterCmd(self, cmd: RegisterCmd) -> None:
        register = getattr(self.engine, "register", None)
        inst = self.current if cmd.instance is None else self.instances.get(cmd.instance)
        if isinstance(inst, _Unavailable):
            self._fail(cmd.line, "register", inst.reason)
        elif register is None:
            self._fail(cmd.line, "register", "not supported: the engine cannot register instances")
        else:
            try:
                register(cmd.name, inst)
            except Exception as e:
                self._fail(cmd.line, "register", str(self._trouble(e)))

    def _do_ActionCmd(self, cmd: ActionCmd) -> None:
        try:
            self._call(cmd.invoke)
        except Trap as e:
            self._fail(cmd.line, "invoke", f"unexpected trap {_quote(e.message)}")
        except _Failed as f:
            self._fail(cmd.line, "invoke", str(f))

    def _do_AssertReturn(self, cmd: AssertReturn) -> None:
        expected = " ".join(v.text for v in cmd.results) or "nothing"
        try:
            results, ft = self._call(cmd.invoke)
        except Trap as e:
            return self._fail(cmd.line, "assert_return",
                              f"expected {expected}, got trap {_quote(e.message)}")
        except _Failed as f:
            return self._fail(cmd.line, "assert_return", str(f))
        rtypes = ft.result_type()
        ok = len(results) == len(cmd.results) and all(
            matches(e, a, rtypes[i] if i < len(rtypes) else None)
            for i, (e, a) in enumerate(zip(cmd.results, results)))
        if ok:
            self._pass(cmd.line, "assert_return")
        else:
            self._fail(cmd.line, "assert_return",
                       f"expected {expected}, got {format_results(results, rtypes)}")

    def _do_AssertTrap(self, cmd: AssertTrap) -> None:
        what = "assert_exhaustion" if cmd.exhaustion else "assert_trap"
        want = f"expected trap {_quote(cmd.message)}"
        try:
            if cmd.invoke is not None:
                results, ft = self._call(cmd.invoke)
                got = f"returned {format_results(results, ft.result_type())}"
            else:
                self._instantiate(self._compile(cmd.module), cmd.module.id)
                got = "instantiated without trapping"
        except Trap as e:
            if _trap_matches(cmd.message, e.message) or (
                    getattr(self.engine, "dialect", "spec") == "wasmtime" and _wasmtime_words(cmd.message, e.message)):
                return self._pass(cmd.line, what, _quote(e.message))
            return self._fail(cmd.line, what, f"{want}, got trap {_quote(e.message)}")
        except LinkError as e:
            return self._fail(cmd.line, what, f"{want}, got link error: {e}")
        except _Failed as f:
            return self._fail(cmd.line, what, str(f))
        self._fail(cmd.line, what, f"{want}, {got}")

    def _validate(self, cmd, what: str, adjective: str) -> None:
        reason = wasmtime_rejects(cmd.module)
        if reason is not None:
            self._pass(cmd.line, what, reason)
        else:
            self._fail(cmd.line, what, f"expected {adjective} {cmd.module.kind} "
                       f"({_quote(cmd.message)}), but wasmtime accepted it")

    def _do_AssertInvalid(self, cmd: AssertInvalid) -> None:
        self._validate(cmd, "assert_invalid", "an invalid")

    def _do_AssertMalformed(self, cmd: AssertMalformed) -> None:
        self._validate(cmd, "assert_malformed", "a malformed")

    def _do_AssertUnlinkable(self, cmd: AssertUnlinkable) -> None:
        want = f"expected link error {_quote(cmd.message)}"
        try:
            self._instantiate(self._compile(cmd.module), cmd.module.id)
        except LinkError as e:
            return self._pass(cmd.line, "assert_unlinkable", str(e))
        except Trap as e:
            return self._fail(cmd.line, "assert_unlinkable", f"{want}, got trap {_quote(e.message)}")
        except _Failed as f:
            return self._fail(cmd.line, "assert_unlinkable", str(f))
        self._fail(cmd.line, "assert_unlinkable", f"{want}, but it linked")


def _wasmtime_words(expected: str, message: str) -> bool:
    from .wasmtime_dialect import trap_matches
    return trap_matches(expected, message)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def run_script(script: Script, engine: WastEngine, path: str = "<script>",
               report: Callable[[str], None] = print, verbose: bool = False) -> Counts:
    """Run every directive of ``script``; returns the assertion counts."""
    return Runner(engine, path, report, verbose).run(script)


def run_text(text: str, engine: WastEngine, path: str = "<script>",
             report: Callable[[str], None] = print, verbose: bool = False) -> Counts:
    """Parse, check and run a script given as text. Raises :class:`BadInput`."""
    return run_script(load_text(text, path), engine, path, report, verbose)
