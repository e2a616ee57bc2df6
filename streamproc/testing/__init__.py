"""Test helpers and sample generators (trace generators, tamper simulators)."""
