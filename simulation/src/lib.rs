//! Deterministic simulation harness (filled in by the simulation work).
