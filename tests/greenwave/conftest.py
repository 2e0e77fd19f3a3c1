"""The plan-sink tests use the shared real Redis fixtures of tests/conftest.py."""
