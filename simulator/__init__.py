"""A Genesys Cloud look-alike: an org model, a seeded generator and a real local HTTP server."""

from simulator.generator import DEFAULT_SHIFTS, Shift, generate_org
from simulator.model import SimGroup, SimOrg, SimQueue, SimRole, SimSegment, SimUser
from simulator.scenario import load_scenario, save_scenario
from simulator.server import Fault, GenesysSimulator, RecordedRequest

__all__ = [
    "DEFAULT_SHIFTS",
    "Fault",
    "GenesysSimulator",
    "RecordedRequest",
    "Shift",
    "SimGroup",
    "SimOrg",
    "SimQueue",
    "SimRole",
    "SimSegment",
    "SimUser",
    "generate_org",
    "load_scenario",
    "save_scenario",
]
