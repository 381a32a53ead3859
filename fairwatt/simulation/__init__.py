"""Simulate charging sessions at a station with a scheduler in the loop, and report on it."""

from fairwatt.simulation.errors import SessionsFileError, SimulationError
from fairwatt.simulation.sessions import SessionRecord, parse_sessions, read_sessions

__all__ = ["SessionRecord", "SessionsFileError", "SimulationError", "parse_sessions", "read_sessions"]
