"""The smallest real guest: an async export that awaits an async import.

It also prints to stdout and stderr (through WASI 0.2's preview1 adapter),
so a host can check where output goes."""

import sys

import wit_world
from wit_world.imports import host


class WitWorld(wit_world.WitWorld):
    async def run(self, name: str, n: int) -> str:
        print(f"run({name!r}, {n})", flush=True)
        parts = []
        for i in range(n):
            parts.append(await host.greet(f"{name}{i}"))
        print(f"greeted {len(parts)}", file=sys.stderr, flush=True)
        return ", ".join(parts)
