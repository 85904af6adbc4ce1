"""Assembling from text what wasmtime 50's text parser does not know.

``wasmtime.wat2wasm`` (wasm-tools) rejects two things the spec's tests write:
the ``thread.set-task`` built-in (the spec's ``task-switch`` branch, opcode
0x2e) and the ``cancellable`` immediate of ``waitable-set.wait``/``.poll`` and
the ``thread.*`` built-ins. :func:`assemble` turns such a component's text into
something wat2wasm encodes, and says how to turn the decoded component back
into what the text meant:

* each ``(canon thread.set-task ...)`` is written ``(canon context.get i32 M
  ...)``, with ``M`` a marker index of its own (``MARKER`` + n; a valid
  ``context.get`` has index 0 or 1, so no valid component holds one);
* each ``cancellable`` immediate of a canon is blanked out.

Both keep every other byte of the text, so wat2wasm emits one canon
definition per canon form, in text order within each component. The patches
are keyed by (path of nested components, ordinal of the canon definition in
that component). Before the binary is used, :func:`assemble` decodes it and
checks that the canon definitions of every patched component line up one to
one with the text's (same count, same built-in at every ordinal, the marker at
every ``thread.set-task``); anything else is an error, never a guess. The
runtime applies the patches to the decoded component (:func:`apply_patches`),
so a ``thread.set-task`` runs as ``CanonThreadSetTask`` and a ``cancellable``
canon has its flag set, exactly as if decoded from the binary the spec
defines.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from callscope.component import ast as A
from callscope.component import binary

from .sexpr import Atom, SList, parse

MARKER = 0x5E7_0000  # context.get index of the first thread.set-task placeholder

SET_TASK = "thread.set-task"
CANCELLABLE = "cancellable"


class AssembleError(ValueError):
    """The text cannot be assembled soundly."""


class Assembled(bytes):
    """A component binary and the canon patches it needs:
    ``canon_patches[path][ordinal]`` is ``"set-task"`` or ``"cancellable"``."""

    canon_patches: dict


def needs_assembly(text: str) -> bool:
    return SET_TASK in text or CANCELLABLE in text


def _norm(op: str) -> str:
    return op.replace("_", "-")


def assemble(text: str) -> bytes:
    """The binary of component ``text`` (``Assembled`` when it needed
    patches). Raises ``wasmtime.WasmtimeError`` when wat2wasm rejects the
    rewritten text, :class:`AssembleError` when it cannot be made sound."""
    import wasmtime

    forms = parse(text)
    if len(forms) != 1 or not isinstance(forms[0], SList) or forms[0].head != "component":
        return bytes(wasmtime.wat2wasm(text))
    edits: list = []  # (start, end, replacement)
    patches: dict = {}
    ops: dict = {}  # path -> the text's canon ops in order
    counter = [0]

    def walk_component(comp: SList, path: tuple) -> None:
        seq: list = []
        ops[path] = seq
        nested = 0
        for child in comp[1:]:
            if isinstance(child, SList) and child.head == "component":
                walk_component(child, path + (nested,))
                nested += 1
            elif isinstance(child, SList):
                visit(child, path, seq)

    def visit(node: SList, path: tuple, seq: list) -> None:
        if node.head == "canon":
            canon(node, path, seq)
            return
        for child in node:
            if isinstance(child, SList):
                visit(child, path, seq)

    def canon(node: SList, path: tuple, seq: list) -> None:
        op = str(node[1]) if len(node) > 1 and isinstance(node[1], Atom) else ""
        ordinal = len(seq)
        if op == SET_TASK:
            marker = MARKER + counter[0]
            counter[0] += 1
            edits.append((node[1].start, node[1].end, f"context.get i32 {marker}"))
            patches.setdefault(path, {})[ordinal] = "set-task"
            seq.append(("context.get", marker))
            return
        for child in node[2:]:
            if isinstance(child, Atom) and child == CANCELLABLE:
                edits.append((child.start, child.end, " " * (child.end - child.start)))
                patches.setdefault(path, {})[ordinal] = "cancellable"
        seq.append((_norm(op), None))

    walk_component(forms[0], ())
    if not patches:
        return bytes(wasmtime.wat2wasm(text))
    base = forms[0].start
    out = text[base:forms[0].end]
    for start, end, repl in sorted(edits, reverse=True):
        out = out[:start - base] + repl + out[end - base:]
    data = bytes(wasmtime.wat2wasm(out))
    _check(binary.decode(data), patches, ops)
    result = Assembled(data)
    result.canon_patches = patches
    return result


def _component_at(root: A.Component, path: tuple) -> A.Component:
    c = root
    for i in path:
        nested = c.components
        if i >= len(nested):
            raise AssembleError("nested components of the binary do not line up with the text's")
        c = nested[i].component
    return c


def _check(root: A.Component, patches: dict, ops: dict) -> None:
    for path in patches:
        canons = _component_at(root, path).of(A.CanonDef)
        want = ops[path]
        if len(canons) != len(want):
            raise AssembleError(f"the binary has {len(canons)} canon definitions where the text has {len(want)}")
        for d, (op, marker) in zip(canons, want):
            if _norm(d.op) != op or (marker is not None and d.index != marker):
                raise AssembleError(f"canon `{d.op}` of the binary stands where the text has `{op}`")


def apply_patches(root: A.Component, patches: Optional[dict]) -> A.Component:
    """Turn the placeholders of an :func:`assemble`d binary, decoded, back
    into what the text meant (in place)."""
    if not patches:
        return root
    for path, at in patches.items():
        comp = _component_at(root, path)
        where = [i for i, d in enumerate(comp.definitions) if isinstance(d, A.CanonDef)]
        for ordinal, what in at.items():
            i = where[ordinal]
            d = comp.definitions[i]
            if what == "set-task":
                comp.definitions[i] = A.CanonThreadSetTask()
            else:
                if not any(f.name == "cancellable" for f in dataclasses.fields(d)):
                    raise AssembleError(f"`canon {d.op}` takes no `cancellable`")
                comp.definitions[i] = dataclasses.replace(d, cancellable=True)
    return root
