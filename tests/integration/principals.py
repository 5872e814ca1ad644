"""A cluster as its roles see it: on the plain broker every role connects the same way; on the
secured broker (SASL/SCRAM over TLS, ACLs enforced) each role is its own principal, after the admin
step (`rewind acl apply`: rewind's topics and every role's ACLs). Tests written against it run on both."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.app import Rewind
from processor.config import Settings
from processor.kafka import clients
from processor.kafka.local_broker import LocalBroker
from tests.integration.rollkit import RollbackTopics, deliver


@dataclass
class Cluster:
    bootstrap: str
    secured: LocalBroker | None = None  # None: the plain broker

    def settings(self, base: Settings, role: str) -> Settings:
        """``base`` as ``role`` connects (on the secured broker: no topic creation at run time)."""
        if self.secured is None:
            return base
        return self.secured.settings_as(base, role)

    def conf(self, base: Settings, role: str) -> dict[str, Any]:
        """librdkafka properties (without bootstrap) of ``role``."""
        conf = self.settings(base, role).client_config(self.bootstrap)
        conf.pop("bootstrap.servers")
        return conf

    def file_settings(self, base: Settings, role: str) -> dict[str, Any]:
        """What a settings file says for ``role``: connection and topics (secrets written out, as a
        file mounted from a Secret would hold them)."""
        s = self.settings(base, role)
        security = s.security.model_dump(mode="json")
        if s.security.sasl_password is not None:
            security["sasl_password"] = s.security.sasl_password.get_secret_value()
        return {"security": security, "topics": s.topics.model_dump(mode="json")}

    def prepare(self, topics: RollbackTopics, base: Settings, catalog: Path) -> None:
        """rewind's topics and the services' (and on the secured broker, every role's ACLs)."""
        if self.secured is None:
            topics.create(base)
            return
        self.admin_step(base, topics.commands, catalog)

    def admin_step(self, base: Settings, more_topics: list[str], catalog: Path | None = None) -> None:
        """On the secured broker, as its admin: rewind's topics and ``more_topics`` (the sources', the
        services'), then every role's ACLs (`rewind acl apply`)."""
        assert self.secured is not None
        admin = self.settings(base, "admin")
        clients.ensure_topics(clients.admin(admin, self.bootstrap), more_topics, partitions=3,
                              replication_factor=1)  # fmt: skip
        Rewind(admin, catalog_file=catalog).apply_acls()
        deadline = time.monotonic() + 30  # new ACLs reach the authorizer a moment later
        probe = self.settings(base, "tap").client_config(self.bootstrap)  # a dead letter no test counts
        while deliver(probe, base.topics.deadletter, "acl-probe", b""):
            assert time.monotonic() < deadline, "the ACLs never took effect"
            time.sleep(0.5)
