"""SUMO helpers for the green-wave validation (bench/greenwave_sumo.py and tests/greenwave/test_sumo.py)."""
