"""The simulated LiveCoinWatch API: same endpoints, bodies, errors and credits; seeded random-walk prices.

Public pieces: `SimConfig` and `SimulatedApi` (server), `SimApiServer` / `SimApiProcess` /
`wait_ready` (launcher), `SimAdmin` (test switches), `walk` (the documented price formula),
`catalog.COINS` (the coins).
"""

from coinstream.producers.sim.admin import SimAdmin
from coinstream.producers.sim.launcher import SimApiError, SimApiProcess, SimApiServer, wait_ready
from coinstream.producers.sim.server import SimConfig, SimulatedApi

__all__ = ["SimAdmin", "SimApiError", "SimApiProcess", "SimApiServer", "SimConfig", "SimulatedApi", "wait_ready"]
