"""The C part of callscope: the trace writer's event buffer
(callscope/trace/_sink.c). Optional: where it cannot be built (no C compiler),
callscope uses the same buffer in Python (callscope/trace/sink.py), slower
when recording. Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "callscope.trace._sink",
            ["callscope/trace/_sink.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
