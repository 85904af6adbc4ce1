"""The C parts of callscope: the trace writer's event buffer
(callscope/trace/_sink.c), the trace reader's per-event checks
(callscope/trace/_check.c) and the host-function trampoline of the fiber glue
(callscope/runtime/_fiber.c). Optional: where they cannot be built (no C
compiler), callscope uses the same code in Python (callscope/trace/sink.py,
callscope/runtime/fiber.py), slower. Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "callscope.trace._sink",
            ["callscope/trace/_sink.c"],
            depends=["callscope/_slots.h", "callscope/_sinkapi.h"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
        Extension(
            "callscope.trace._check",
            ["callscope/trace/_check.c"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
        Extension(
            "callscope.runtime._fiber",
            ["callscope/runtime/_fiber.c"],
            depends=["callscope/_slots.h", "callscope/_sinkapi.h"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
    ]
)
