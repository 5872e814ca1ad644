"""The shop's tables: business rows of the services, reporting's read model, their outbox, and what each
consumer applied.

Every business table has REPLICA IDENTITY FULL, so Debezium's before-images are whole rows and rewind
can restore them. One schema per world: the real shop and the oracle world live side by side.
"""

from __future__ import annotations


def schema_sql(schema: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {schema};
    CREATE TABLE {schema}.orders (
      id bigint PRIMARY KEY, customer text NOT NULL, sku text NOT NULL, qty int NOT NULL,
      price_cents int NOT NULL, rule_version text NOT NULL, status text NOT NULL);
    CREATE TABLE {schema}.stock (sku text PRIMARY KEY, available int NOT NULL, reserved int NOT NULL);
    CREATE TABLE {schema}.payments (
      id text PRIMARY KEY, order_id bigint NOT NULL, amount_cents int NOT NULL, status text NOT NULL);
    CREATE TABLE {schema}.emails (id text PRIMARY KEY, order_id bigint NOT NULL, recipient text, body text);
    CREATE TABLE {schema}.revenue (sku text PRIMARY KEY, cents bigint NOT NULL, orders int NOT NULL);
    CREATE TABLE {schema}.applied_commands (idempotency_key text PRIMARY KEY, event_type text NOT NULL);
    CREATE TABLE {schema}.outbox (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL,
      payload jsonb, tx_id bigint DEFAULT txid_current(), correlation_id text, causation_id text,
      traceparent text, phase text, intent_id text);
    ALTER TABLE {schema}.orders REPLICA IDENTITY FULL;
    ALTER TABLE {schema}.stock REPLICA IDENTITY FULL;
    ALTER TABLE {schema}.payments REPLICA IDENTITY FULL;
    ALTER TABLE {schema}.emails REPLICA IDENTITY FULL;
    ALTER TABLE {schema}.revenue REPLICA IDENTITY FULL;
    """


def tables(schema: str) -> tuple[str, ...]:
    """What Debezium captures (the outbox last)."""
    return tuple(
        f"{schema}.{t}"
        for t in ("orders", "stock", "payments", "emails", "revenue", "applied_commands", "outbox")
    )
