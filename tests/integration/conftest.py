"""Integration tests share the broker fixtures of tests/conftest.py."""
