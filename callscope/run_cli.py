"""``callscope run`` and ``callscope check``: argument parsing and the
printed summary. The work is in :mod:`callscope.run`."""

from __future__ import annotations

import sys

from .argtypes import add_taint_window, COUNT, EVENTS, HTTP_STATUS, MEMORY_SIZE, SEED, TIMEOUT_S, TRACE_SIZE

DEFAULT_MAX_MEMORY = 1 << 30
DEFAULT_MAX_TRACE = 1 << 30

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_FAULT = 0, 1, 2, 3


def _common(p) -> None:
    p.add_argument("guest", nargs="?", metavar="GUEST.wasm",
                   help="the component to run: a binary, or component text (.wat) (default: the "
                        "built-in demo)")
    p.add_argument("-o", "--output", metavar="TRACE", help="where to write the trace (default: GUEST.trace in the current "
                        "directory, with GUEST's suffix dropped; demo-MODE.trace for the demo)")
    p.add_argument("--invoke", action="append", default=[], metavar="CALL",
                   help="an export call in WAVE, e.g. 'handle({i}, \"https://a.test/req-{i}\")'; "
                        "{i} is replaced by the call's number (1, 2, ...), so calls carry distinct "
                        "arguments (taint); repeatable (default: none; the demo's is "
                        "'handle({i}, \"https://upstream.test/req-{i}\")')")
    p.add_argument("--concurrency", type=COUNT, default=None, metavar="N",
                   help="root calls kept in flight at once on the one instance, for --invoke calls "
                        "and --request requests alike (default 4)")
    p.add_argument("--repeat", type=COUNT, default=None, metavar="N",
                   help="run the call list (the --invoke calls, or the --request requests) N times "
                        "(default 1; 8 when no --invoke/--request is given and the default list runs: "
                        "the demo's call, or 'GET /' for a wasi:http guest)")
    p.add_argument("--seed", type=SEED, default=0, metavar="S", help="scheduler seed (default 0)")
    p.add_argument("--schedule", choices=("fifo", "random"), default="fifo",
                   help="which ready thread runs next: fifo (wasmtime's order) or random from the seed "
                        "(default fifo)")
    p.add_argument("--timeout", type=TIMEOUT_S, default=None, metavar="SECONDS",
                   help="stop a run that takes longer, exit 3 (default: no limit)")
    p.add_argument("--max-memory", type=MEMORY_SIZE, default=DEFAULT_MAX_MEMORY, metavar="SIZE",
                   help="largest a guest's linear memory may grow, e.g. 512M (default 1G; 0: no limit); "
                        "past it memory.grow fails")
    p.add_argument("--max-events", type=EVENTS, default=0, metavar="N",
                   help="stop the run once the trace holds N events (default 0: no limit)")
    p.add_argument("--max-trace-size", type=TRACE_SIZE, default=DEFAULT_MAX_TRACE, metavar="SIZE",
                   help="stop the run once the trace file is this big, e.g. 100M (default 1G; 0: no limit)")
    add_taint_window(p)
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="NAME=SPEC",
                   help="host import without Python: 'iface#func=delay:5ms,result:VALUE'; repeatable "
                        "(default: none; delay defaults to 1ms for an async import, 0 for a sync one; "
                        "result to the type's zero value)")
    p.add_argument("--import-module", metavar="FILE.py",
                   help="a Python module whose functions implement imports (see README; default: none)")
    p.add_argument("--allow-unknown-imports", action="store_true",
                   help="instantiate even when an import is not provided; calling it traps "
                        "(default: an unprovided import is an error, exit 2)")
    g = p.add_argument_group("wasi:http guests (exporting wasi:http/handler@0.3)")
    g.add_argument("--request", dest="requests", action="append", default=[], metavar="'METHOD /path name:value ...'",
                   help="a synthetic request to `handle`; repeatable (default: 8 x 'GET /'). "
                        "Each gets an id req-N: the root's label and a taint token, sent as the "
                        "x-callscope-request-id header (and x-request-id, cdn-loop unless given)")
    g.add_argument("--requests", dest="requests_file", metavar="FILE",
                   help="requests one a line, as --request takes them (# comments; default: none)")
    g.add_argument("--upstream", metavar="URL",
                   help="send the guest's client.send requests to this real HTTP server "
                        "(default: a simulated upstream)")
    g.add_argument("--upstream-delay", metavar="DURATION",
                   help="the simulated upstream answers after this long (default 1-5 ms by path)")
    g.add_argument("--upstream-status", type=HTTP_STATUS, metavar="CODE",
                   help="the simulated upstream's status (default 200)")
    g.add_argument("--upstream-body", metavar="TEXT",
                   help="the simulated upstream's body (default: 'upstream METHOD PATH id=X-REQUEST-ID')")
    p.add_argument("--json", action="store_true",
                   help="print the findings and coverage counts as one JSON object (docs/verdicts.md; "
                        "default: the text summary)")
    p.add_argument("--demo", default="event-loop", metavar="MODE",
                   help="built-in demo variant when no GUEST is given: event-loop (misattributes), "
                        "backpressure, well-behaved, set-task (the event loop on a thread that moves to "
                        "each request's task) (default event-loop)")


def add_run(sub) -> None:
    p = sub.add_parser("run", help="run a component on the recording host and write a trace",
                       description="Instantiate GUEST (or the built-in demo), drive its exports, record "
                                   "every component-model transition, and summarize.")
    _common(p)
    p.add_argument("--tui", action="store_true",
                   help="watch the recording in progress in the replay app (the run goes on in a child process)")
    p.add_argument("--oracle", action="store_true",
                   help="also run the workload serially on a fresh instance and judge every import "
                        "against it (what check does; docs/verdicts.md; default: off, taint and lineage only)")
    p.set_defaults(func=cmd_run)


def add_check(sub) -> None:
    p = sub.add_parser("check", help="run a component and fail when an import is misattributed",
                       description="Like run; exit 0 when no import is misattributed, 1 when some is, "
                                   "2 for bad input, 3 when the guest traps, deadlocks or times out.")
    _common(p)
    p.add_argument("--min-judged", type=float, default=None, metavar="F",
                   help="fail (exit 1) when fewer than this fraction (0..1) of the imports could be judged "
                        "(default: no minimum)")
    p.add_argument("--no-oracle", dest="oracle", action="store_false",
                   help="judge by taint and lineage only, without the serial run (default: the oracle runs)")
    from callscope.export.ci import add_ci_arguments
    add_ci_arguments(p)
    p.set_defaults(func=cmd_check, oracle=True)


def _options(args):
    from callscope.run import BadInput, RunOptions, parse_duration_ns, parse_import_spec, read_requests_file
    demo = args.guest is None
    requests = list(args.requests)
    if args.requests_file:
        requests += read_requests_file(args.requests_file)
    if demo and (requests or args.upstream):
        raise BadInput("--request/--requests/--upstream need a wasi:http GUEST.wasm")
    return RunOptions(
        guest=args.guest, demo=args.demo, output=args.output, invokes=list(args.invoke),
        concurrency=args.concurrency, repeat=args.repeat,
        seed=args.seed, policy=args.schedule, timeout=args.timeout,
        imports=[parse_import_spec(s) for s in args.imports], import_module=args.import_module,
        allow_unknown_imports=args.allow_unknown_imports, argv=["callscope"] + sys.argv[1:],
        requests=requests, upstream=args.upstream,
        upstream_delay_ns=parse_duration_ns(args.upstream_delay) if args.upstream_delay else None,
        upstream_status=args.upstream_status, upstream_body=args.upstream_body,
        max_memory=args.max_memory, max_events=args.max_events, max_trace_size=args.max_trace_size,
        taint_window=args.taint_window, oracle=bool(getattr(args, "oracle", False)))


def _execute(args):
    from callscope.run import BadInput, run
    from callscope.cli import CliError
    try:
        opts = _options(args)
        return opts, run(opts)
    except BadInput as e:
        raise CliError(str(e)) from None


def _findings(trace_path):
    from callscope.model.findings import default_lints
    from callscope.model.summary import summarize_trace
    from callscope.trace.reader import TraceReader
    reader = TraceReader(trace_path)
    try:
        summary = summarize_trace(reader, default_lints(keep_verdicts=False))
    finally:
        reader.close()
    return summary


def _print_summary(opts, result, summary, out=None) -> None:
    from callscope.model.findings import format_finding
    out = out or sys.stdout
    what = opts.guest or f"built-in demo ({opts.demo})"
    print(f"callscope: ran {what}: {result.calls_done}/{result.calls_started} calls returned "
          f"at concurrency {opts.concurrency}, {result.sim_time_ns / 1e6:.1f} ms simulated "
          f"in {result.elapsed_s:.2f} s", file=out)
    s = summary
    print(f"  instances {s.instances}  tasks {s.tasks} (root {s.root_tasks})  imports {s.imports}  "
          f"events {s.events}", file=out)
    if s.coverage is not None:
        from callscope.model.findings import format_coverage
        print(f"  {format_coverage(s.coverage)}", file=out)
    if result.exchanges:
        from callscope.run import response_counts
        for what, k in response_counts(result.exchanges):
            print(f"  responses: {k} x {what}", file=out)
    findings = s.findings
    if findings:
        from callscope.model.findings import summary as findings_summary
        print(f"  findings: {len(findings)}", file=out)
        for line in findings_summary(findings).splitlines():
            print(f"    {line}", file=out)
        sends = [f for f in findings if f.lint == "misattributed" and _is_outgoing(f.details.get("import"))]
        if sends:
            print(f"  misattributed outgoing requests: {len(sends)}", file=out)
            for f in sends[:20]:
                d = f.details
                print(f"    call {d['call']} (event #{f.n}) {d['import']}: sent for {d['origin_label'] or d['origin']!s}, "
                      f"attributed to {d['stack_root_label'] or d['stack_root']!s}", file=out)
            if len(sends) > 20:
                print(f"    ... and {len(sends) - 20} more", file=out)
        # the first findings of each kind, the most telling kinds first: a
        # run's many after-return imports must not hide its misattributions
        shown = sorted(findings, key=lambda f: (_LINT_ORDER.get(f.lint, len(_LINT_ORDER)), f.n))[:20]
        for f in shown:
            print("    " + format_finding(f), file=out)
        if len(findings) > len(shown):
            print(f"    ... and {len(findings) - len(shown)} more (callscope summary {result.trace_path})", file=out)
    else:
        print("  findings: none", file=out)
    if result.fault:
        print(f"  guest {result.fault}: {result.fault_message}", file=out)
    if result.pending:
        print(f"  still pending at the end: {len(result.pending)} task(s)", file=out)
        for tid, root, label in result.pending[:10]:
            print(f"    task {tid} under root task {root}" + (f" {_safe(label)}" if label else ""), file=out)
        if len(result.pending) > 10:
            print(f"    ... and {len(result.pending) - 10} more", file=out)
    print(f"  trace: {result.trace_path}", file=out)


_LINT_ORDER = {"misattributed": 0, "cdn-loop-misrouted": 1, "import-without-root": 2,
               "long-backpressure": 3, "import-after-root-returned": 4}


def _is_outgoing(name) -> bool:
    return bool(name) and name.startswith("wasi:http/") and "/client@" in name and name.endswith("#send")


def _report(args, opts, result, summary) -> None:
    if getattr(args, "json", False):
        from callscope.trace.commands import write_summary_json
        run = {"fault": {"kind": result.fault, "message": result.fault_message} if result.fault else None,
               "pending": [{"task": t, "root": r, "label": lb} for t, r, lb in result.pending],
               "calls_started": result.calls_started, "calls_done": result.calls_done}
        write_summary_json(sys.stdout, summary, result.trace_path, run)
    else:
        _print_summary(opts, result, summary)


def cmd_run(args) -> int:
    if getattr(args, "tui", False):
        from callscope.replay.live import run_tui
        return run_tui(args)
    opts, result = _execute(args)
    summary = _findings(result.trace_path)
    _report(args, opts, result, summary)
    if result.signum:  # stopped by SIGINT/SIGTERM: 130/143, the trace complete
        return 128 + result.signum
    return EXIT_FAULT if result.fault else EXIT_OK


def cmd_check(args) -> int:
    from callscope.cli import CliError
    if args.min_judged is not None and not 0.0 <= args.min_judged <= 1.0:
        raise CliError(f"--min-judged {args.min_judged:g}: give a fraction between 0 and 1")
    opts, result = _execute(args)
    summary = _findings(result.trace_path)
    _report(args, opts, result, summary)
    if result.signum:
        return 128 + result.signum
    code = _check_status(args, result, summary)
    from callscope.export.ci import write_ci_reports
    write_ci_reports(args, result.trace_path, summary.findings, opts.guest, code)
    return code


def _check_status(args, result, summary) -> int:
    mis = [f for f in summary.findings if f.lint == "misattributed"]
    if mis:  # a misattribution found before a trap is still found (both reported)
        return EXIT_FINDINGS
    cov = summary.coverage
    if args.min_judged is not None and cov is not None:
        frac = cov["judged"] / cov["imports"] if cov["imports"] else 1.0
        if frac < args.min_judged:
            if not getattr(args, "json", False):
                print(f"callscope: judged {frac:.1%} of the imports, below --min-judged {args.min_judged:g}")
            return EXIT_FINDINGS
    if result.fault:
        return EXIT_FAULT
    return EXIT_OK


def _safe(text) -> str:
    """Trace text for a terminal: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
