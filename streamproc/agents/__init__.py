"""Faust app and agents: wiring only; the logic lives in pure modules."""
