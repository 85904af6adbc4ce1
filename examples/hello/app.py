"""The smallest real guest: an async export that awaits an async import."""

import wit_world
from wit_world.imports import host


class WitWorld(wit_world.WitWorld):
    async def run(self, name: str, n: int) -> str:
        parts = []
        for i in range(n):
            parts.append(await host.greet(f"{name}{i}"))
        return ", ".join(parts)
