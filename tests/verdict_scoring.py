"""Scoring callscope's misattributed verdicts against the truth of the
guests in examples/ (each guest's ``truth.json``; examples/README.md).

For one guest at one concurrency: build it (examples/build.py), run
``callscope check GUEST --json`` on its workload (falling back to reading
the trace with callscope.model where ``check`` has no ``--json``), derive
from the trace what each scored call was really for, and compare:

* a scored call is *truly misattributed* when the requests it serves (read
  off its own arguments as the truth file says) are not exactly the request
  of its stack root;
* it is *flagged* when a ``misattributed`` finding names its call id.

precision = flagged and truly misattributed / flagged; recall = flagged and
truly misattributed / truly misattributed; both None where the denominator
is 0. Also counted: scored calls whose verdict is not-judged (where the
engine says), findings on calls outside the truth's scope, and the run's
coverage counts.

    python tests/verdict_scoring.py [GUEST...] [--concurrency 2,4,8]   # prints the table

Another checkout's verdicts (e.g. main's before a change), from that
checkout's root: ``PYTHONPATH=. CALLSCOPE_SCORE_CMD="python -m callscope"
python /path/to/tests/verdict_scoring.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CONCURRENCIES = (2, 4, 8)
_LABEL = re.compile(r"^req-0*(\d+)(?:\s|$)")


def load_build():
    name = "callscope_examples_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def truth_guests() -> list[str]:
    return sorted(p.parent.name for p in EXAMPLES.glob("*/truth.json"))


def load_truth(guest: str) -> dict:
    return json.loads((EXAMPLES / guest / "truth.json").read_text())


def callscope_exe() -> list[str]:
    """The callscope to score: ``$CALLSCOPE_SCORE_CMD`` (split on spaces, e.g.
    to score another checkout's verdicts), else this venv's."""
    if os.environ.get("CALLSCOPE_SCORE_CMD"):
        return os.environ["CALLSCOPE_SCORE_CMD"].split()
    exe = Path(sys.executable).parent / "callscope"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "callscope"]


def requests_in(truth: dict) -> int:
    wl = truth["workload"]
    return wl.get("repeat", 1) * max(1, len(wl.get("invoke", ())))


def workload_argv(truth: dict, concurrency: int) -> list[str]:
    wl = truth["workload"]
    argv = []
    for call in wl.get("invoke", ()):
        argv += ["--invoke", call]
    argv += ["--repeat", str(wl.get("repeat", 1)), "--concurrency", str(concurrency)]
    if wl.get("import_module"):
        argv += ["--import-module", str(EXAMPLES / wl["import_module"])]
    return argv


# ---------------------------------------------------------------------------
# the truth of each scored call, from the trace


@dataclasses.dataclass
class TruthCall:
    call: int
    name: str
    n: int  # event number of its import.call
    stack_root: Optional[int]
    serves: frozenset  # root task ids it was really for
    numbers: tuple  # the request numbers its content names
    stack_number: Optional[int] = None  # the request number of its stack root

    @property
    def misattributed(self) -> bool:
        return self.stack_root is not None and self.serves != frozenset({self.stack_root})


class TruthError(Exception):
    """A scored call whose content does not say whom it is for (the guest or
    the truth file is wrong, or the trace's value summary cut the marker)."""


def _numbers(rule: dict, value) -> tuple:
    if rule.get("int"):
        if not isinstance(value, int):
            raise TruthError(f"expected an integer request number, got {value!r}")
        return (value,)
    if not isinstance(value, str):
        raise TruthError(f"expected a string carrying {rule['for']!r}, got {value!r}")
    m = re.search(rule["for"], value)
    if m is None:
        raise TruthError(f"{value!r} does not match {rule['for']!r}")
    return tuple(int(x) for x in m.group(1).split(".") if x)


def _some(v):
    if isinstance(v, dict) and "some" in v:
        return v["some"]
    return v


def _handle(v):
    """A handle out of a result summary: ``3``, ``{"ok": 3}``, ``[3, "<future #0>"]``."""
    if isinstance(v, dict) and "ok" in v:
        v = v["ok"]
    if isinstance(v, (list, tuple)) and v:
        v = v[0]
    return v if isinstance(v, int) else None


_CHAIN_BUILD = ("#[method]request.set-method", "#[method]request.set-scheme", "#[method]request.set-authority",
                "#[method]request.set-path-with-query", "#[method]request.set-connect-timeout")
_CHAIN_RESPONSE = ("#[method]response.get-status-code", "#[method]response.get-headers",
                   "#[static]response.consume-body", "[resource-drop]", "#response")


class _Chains:
    """The imports that build an outgoing wasi:http request and read its
    response (truth.json ``"request_chain": {"for": REGEX}``): fields.from-list
    whose fields make the request, request.new, its set-* calls, and, after
    send, the response's get-status-code, get-headers, consume-body and drop.
    Each gets the truth of the path its request was sent with."""

    def __init__(self):
        self.calls: dict = {}  # call id -> (n, name, inst, stack, args)
        self.fields: dict = {}  # (inst, fields handle) -> [call ids]
        self.building: dict = {}  # (inst, request handle) -> [call ids]
        self.responses: dict = {}  # (inst, response handle) -> chain (a list of call ids)
        self.chains: list = []  # (path, [call ids])
        self.send_chain: dict = {}  # send call id -> chain, until its return names the response

    def on_call(self, call, inst, name, stack, args, n, path_of_request):
        if not isinstance(name, str) or not name.startswith("wasi:http/") and not name.startswith("[resource-drop]wasi:http/"):
            return
        self.calls[call] = (n, name, inst, stack, args)
        h = args[0] if args and isinstance(args[0], int) else None
        if name.endswith(_CHAIN_BUILD) and (inst, h) in self.building:
            self.building[(inst, h)].append(call)
        elif "/client@" in name and name.endswith("#send") and (inst, h) in self.building:
            chain = self.building.pop((inst, h))
            self.chains.append((path_of_request((inst, h)), chain))
            self.send_chain[call] = chain
        elif (inst, h) in self.responses and (name.endswith(_CHAIN_RESPONSE[:3])
                                             or (name.startswith(_CHAIN_RESPONSE[3]) and name.endswith(_CHAIN_RESPONSE[4]))):
            self.responses[(inst, h)].append(call)
            if name.startswith("[resource-drop]"):
                del self.responses[(inst, h)]

    def on_return(self, call, result):
        info = self.calls.get(call)
        if info is None or not result:
            return
        n, name, inst, stack, args = info
        if name.endswith("#[static]fields.from-list"):
            f = _handle(result[0])
            if f is not None:
                self.fields[(inst, f)] = [call]
        elif name.endswith("#[static]request.new"):
            h = _handle(result[0])
            if h is not None:
                self.building[(inst, h)] = self.fields.pop((inst, args[0]), []) + [call] if args else [call]
        elif call in self.send_chain:
            r = _handle(result[0])
            chain = self.send_chain.pop(call)
            if r is not None:
                self.responses[(inst, r)] = chain


def truth_calls(events, truth: dict) -> list[TruthCall]:
    rules = truth["calls"]
    chain_rule = truth.get("request_chain")
    chains = _Chains() if chain_rule else None
    tasks: dict = {}  # task id -> root
    by_number: dict = {}  # request number -> root task id
    number_of: dict = {}  # root task id -> request number
    paths: dict = {}  # (inst, handle) -> path of an outgoing request
    out = []

    def truth_call(call, name, n, stack, rule, value):
        try:
            numbers = _numbers(rule, value)
            serves = frozenset(by_number[k] for k in numbers)
        except (TruthError, KeyError, IndexError) as e:
            raise TruthError(f"call {call} {name} (event #{n}): {e}") from None
        stack_root = tasks.get(stack[-1], stack[-1]) if stack else None
        return TruthCall(call, name, n, stack_root, serves, numbers, number_of.get(stack_root))

    for ev in events:
        n, kind, _time, f = ev[0], ev[1], ev[2], ev[3]
        if kind == "task.new":
            task, root, caller, label = f[0], f[4], f[3], f[5]
            tasks[task] = root
            if caller is None and isinstance(label, str):
                m = _LABEL.match(label)
                if m:
                    by_number.setdefault(int(m.group(1)), task)
                    number_of.setdefault(task, int(m.group(1)))
        elif kind == "import.return" and chains is not None:
            chains.on_return(f[0], f[1])
        elif kind == "import.call":
            call, inst, name, stack, args = f[0], f[1], f[2], f[3], f[4]
            if isinstance(name, str) and name.endswith("#[method]request.set-path-with-query") and args:
                paths[(inst, args[0])] = _some(args[1]) if len(args) > 1 else None
            if chains is not None:
                chains.on_call(call, inst, name, stack, args, n, paths.get)
            rule = rules.get(name)
            if rule is None:
                continue
            try:
                value = paths.get((inst, args[rule["path_of"]])) if "path_of" in rule else args[rule["arg"]]
            except IndexError as e:
                raise TruthError(f"call {call} {name} (event #{n}): {e}") from None
            out.append(truth_call(call, name, n, stack, rule, value))
    if chains is not None:
        scored = {c.call for c in out}
        for path, ids in chains.chains:
            for call in ids:
                if call in scored:
                    continue
                n, name, inst, stack, args = chains.calls[call]
                out.append(truth_call(call, name, n, stack, chain_rule, path))
                scored.add(call)
        out.sort(key=lambda c: c.n)
    return out


# ---------------------------------------------------------------------------
# what callscope said


@dataclasses.dataclass
class Verdicts:
    flagged: dict  # call id -> the misattributed finding (a dict)
    coverage: Optional[dict]  # check --json's coverage, when it has one
    per_call: Optional[dict]  # call id -> (verdict, by): ("consistent"|"misattributed"|"not-judged", "oracle"|...)
    exit_status: int
    fault: Optional[str]
    source: str  # "check --json" | "trace"


def _events(trace: Path) -> list:
    from callscope.trace.reader import TraceReader
    r = TraceReader(str(trace))
    try:
        return list(r.events())
    finally:
        r.close()


def _per_call_verdicts(events) -> Optional[dict]:
    """callscope.model.findings.verdicts(events), where the engine has it
    (docs/verdicts.md): call id -> verdict."""
    try:
        from callscope.model.findings import verdicts
    except ImportError:
        return None
    result = verdicts(events)
    items = result[0] if isinstance(result, tuple) else result
    out = {}
    for v in items:
        call = v.get("call") if isinstance(v, dict) else getattr(v, "call", None)
        verdict = v.get("verdict") if isinstance(v, dict) else getattr(v, "verdict", None)
        by = v.get("by") if isinstance(v, dict) else getattr(v, "by", None)
        if call is not None:
            out[call] = (verdict, by)
    return out


def run_check(wasm: Path, truth: dict, concurrency: int, trace: Path, timeout: float = 120) -> tuple:
    """Run ``callscope check`` on the guest's workload; (Verdicts, events)."""
    base = callscope_exe() + ["check", str(wasm), "-o", str(trace), "--timeout", "60"] \
        + workload_argv(truth, concurrency)
    r = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=timeout)
    report = None
    if r.returncode == 2 and "--json" in r.stderr:
        r = subprocess.run(base, capture_output=True, text=True, timeout=timeout)  # no --json here
    else:
        try:
            report = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"check --json printed no JSON (exit {r.returncode}):\n"
                                 f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}") from None
    if r.returncode == 2:
        raise AssertionError(f"check refused the input (exit 2): {r.stderr.strip()}")
    events = _events(trace)
    if report is not None:
        flagged = {f["call"]: f for f in report.get("findings", ())
                   if f.get("lint") == "misattributed" and f.get("call") is not None}
        fault = (report.get("run") or {}).get("fault")
        fault = fault.get("kind") if isinstance(fault, dict) else fault
        v = Verdicts(flagged, report.get("coverage"), _per_call_verdicts(events), r.returncode, fault,
                     "check --json")
    else:
        from callscope.model.findings import check_all
        flagged = {f.details["call"]: {"lint": f.lint, "n": f.n, "message": f.message, **f.details}
                   for f in check_all(events) if f.lint == "misattributed"}
        fault = next((ev[1] for ev in events if ev[1] in ("trap", "deadlock")), None)
        v = Verdicts(flagged, None, _per_call_verdicts(events), r.returncode, fault, "trace")
    return v, events


# ---------------------------------------------------------------------------
# scores


@dataclasses.dataclass
class Score:
    guest: str
    concurrency: int
    scored: int = 0
    truly: int = 0  # truly misattributed scored calls
    flagged: int = 0  # flagged scored calls
    tp: int = 0
    fp: int = 0
    fn: int = 0
    not_judged: Optional[int] = None  # scored calls the engine did not judge (None: engine does not say)
    outside: int = 0  # misattributed findings on calls the truth does not score
    coverage: Optional[dict] = None
    exit_status: int = 0
    fault: Optional[str] = None
    source: str = ""
    judged_by: dict = dataclasses.field(default_factory=dict)  # evidence -> scored calls it judged
    served: dict = dataclasses.field(default_factory=dict)  # import name -> request numbers its calls served
    missed: list = dataclasses.field(default_factory=list)  # TruthCall
    verdict_of: Optional[dict] = None  # call id -> (verdict, by), where the engine says
    false_alarms: list = dataclasses.field(default_factory=list)  # (TruthCall, finding)

    @property
    def precision(self) -> Optional[float]:
        return self.tp / self.flagged if self.flagged else None

    @property
    def recall(self) -> Optional[float]:
        return self.tp / self.truly if self.truly else None

    def row(self) -> str:
        def f(x):
            return "  -  " if x is None else f"{x:5.3f}"
        cov = self.coverage or {}
        nj = "?" if self.not_judged is None else str(self.not_judged)
        cov_txt = f"{cov.get('judged', '?')}/{cov.get('imports', '?')}" if cov else "n/a"
        if self.judged_by:
            nj += " (by " + ", ".join(f"{k} {v}" for k, v in sorted(self.judged_by.items(), key=str)) + ")"
        return (f"{self.guest:16} c={self.concurrency}  scored {self.scored:3}  truly {self.truly:3}  "
                f"flagged {self.flagged:3}  tp {self.tp:3} fp {self.fp:3} fn {self.fn:3}  "
                f"P {f(self.precision)}  R {f(self.recall)}  outside {self.outside:3}  "
                f"all imports judged {cov_txt}  scored not judged {nj}  exit {self.exit_status}{' ' + self.fault if self.fault else ''}")


def score(guest: str, concurrency: int, calls: list, v: Verdicts) -> Score:
    s = Score(guest, concurrency, coverage=v.coverage, exit_status=v.exit_status, fault=v.fault, source=v.source,
              verdict_of=v.per_call)
    scored_ids = set()
    for c in calls:
        scored_ids.add(c.call)
        s.scored += 1
        s.served.setdefault(c.name, set()).update(c.numbers)
        hit = v.flagged.get(c.call)
        if c.misattributed:
            s.truly += 1
        if hit is not None:
            s.flagged += 1
        if c.misattributed and hit is not None:
            s.tp += 1
        elif hit is not None:
            s.fp += 1
            s.false_alarms.append((c, hit))
        elif c.misattributed:
            s.fn += 1
            s.missed.append(c)
    if v.per_call is not None:
        s.not_judged = 0
        for c in calls:
            verdict, by = v.per_call.get(c.call, (None, None))
            if verdict in (None, "not-judged", "not_judged"):
                s.not_judged += 1
            else:
                s.judged_by[by] = s.judged_by.get(by, 0) + 1
    s.outside = sum(1 for call in v.flagged if call not in scored_ids)
    return s


def measure(guest: str, concurrency: int, workdir: Optional[Path] = None) -> Score:
    build = load_build()
    wasm = build.build(guest)
    truth = load_truth(guest)
    with tempfile.TemporaryDirectory(prefix=f"score-{guest}-") as tmp:
        trace = Path(workdir or tmp) / f"{guest}-c{concurrency}.trace"
        v, events = run_check(wasm, truth, concurrency, trace)
        return score(guest, concurrency, truth_calls(events, truth), v)


def explain(s: Score, limit: int = 6) -> list[str]:
    """Lines naming the calls a score got wrong."""
    out = []
    for c in s.missed[:limit]:
        said = (s.verdict_of or {}).get(c.call)
        said = f"; judged {said[0]} by {said[1]}" if said else ""
        out.append(f"  missed: call {c.call} {c.name} (event #{c.n}) serves request(s) {list(c.numbers)}, "
                   f"made on request {c.stack_number}'s task{said}")
    for c, f in s.false_alarms[:limit]:
        out.append(f"  false alarm: call {c.call} {c.name} (event #{c.n}) serves request(s) {list(c.numbers)}, "
                   f"made on request {c.stack_number}'s task; flagged by {f.get('by') or 'taint/lineage'}: "
                   f"{str(f.get('message', ''))[:160]}")
    return out


def main(argv: list[str]) -> int:
    conc = CONCURRENCIES
    if "--concurrency" in argv:
        i = argv.index("--concurrency")
        conc = tuple(int(x) for x in argv[i + 1].split(","))
        argv = argv[:i] + argv[i + 2:]
    guests = argv or truth_guests()
    total = Score("ALL", 0)
    for g in guests:
        for c in conc:
            s = measure(g, c)
            print(s.row(), flush=True)
            for line in explain(s, 3):
                print(line)
            for k in ("scored", "truly", "flagged", "tp", "fp", "fn"):
                setattr(total, k, getattr(total, k) + getattr(s, k))
    print(f"ALL: scored {total.scored}  truly {total.truly}  flagged {total.flagged}  tp {total.tp} "
          f"fp {total.fp} fn {total.fn}  precision {total.precision}  recall {total.recall}")
    return 0


if __name__ == "__main__":
    if importlib.util.find_spec("callscope") is None:
        sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
