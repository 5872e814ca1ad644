"""The tap's SchemaLookup backed by Confluent's schema registry client.

An unknown schema id is the record's fault (dead letter); a registry that does not answer is not
(retryable: the tap's session restarts, and nothing is dead-lettered for it).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError

from processor.config import Settings
from processor.errors import DeadLetterReason, InvalidRecord, RewindError


class RegistryUnavailable(RewindError):
    retryable = True


class _Registry(Protocol):
    def get_schema(self, schema_id: int) -> Any: ...


class RegistryLookup:
    def __init__(self, client: _Registry) -> None:
        self._client = client
        self._parsed: dict[int, Any] = {}

    def parsed_schema(self, schema_id: int) -> Any:
        if schema_id not in self._parsed:
            self._parsed[schema_id] = self._fetch(schema_id)
        return self._parsed[schema_id]

    def _fetch(self, schema_id: int) -> Any:
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise InvalidRecord(
                    DeadLetterReason.BAD_AVRO, f"schema id {schema_id} is not in the registry"
                ) from exc
            raise RegistryUnavailable(f"schema registry error for id {schema_id}: {exc}") from exc
        except Exception as exc:  # connection refused, timeouts: the registry, not the record
            raise RegistryUnavailable(f"schema registry did not answer for id {schema_id}: {exc}") from exc
        if (schema.schema_type or "AVRO") != "AVRO":
            raise InvalidRecord(
                DeadLetterReason.BAD_AVRO, f"schema id {schema_id} is {schema.schema_type}, not Avro"
            )
        return fastavro.parse_schema(json.loads(schema.schema_str))


def registry_lookup(settings: Settings) -> RegistryLookup | None:
    tap = settings.tap
    if not tap.schema_registry_url:
        return None
    conf = {"url": tap.schema_registry_url}
    if tap.schema_registry_user:
        password = tap.schema_registry_password.get_secret_value() if tap.schema_registry_password else ""
        conf["basic.auth.user.info"] = f"{tap.schema_registry_user}:{password}"
    return RegistryLookup(SchemaRegistryClient(conf))
