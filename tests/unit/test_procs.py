"""Ports handed to local daemons: two in a row never name the same port."""

from __future__ import annotations

from processor.devenv.procs import free_port


def test_successive_free_ports_are_distinct() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
