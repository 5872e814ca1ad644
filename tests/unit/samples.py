"""Realistic records for each of rewind's Avro schemas, as the pipeline would produce them."""

from __future__ import annotations

import json
from typing import Any

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def journal_entry() -> dict[str, Any]:
    """An orders service placing an order: outbox event + two row changes of one transaction."""
    position = {
        "topic": "shop.public.orders",
        "partition": 0,
        "offset": 1841,
        "lsn": 24023128,
        "tx_id": "771",
        "connector": "shop",
        "ts_ms": 1790000000123,
    }
    return {
        "action_id": "8a1d9f0e-3b57-4c6a-9e0f-2d1b6c7a8e91",
        "action_type": "OrderPlaced",
        "service": "orders",
        "aggregate_type": "order",
        "aggregate_id": "1042",
        "changes": [
            {
                "database": "shop",
                "schema": "public",
                "table": "orders",
                "key_json": json.dumps({"id": 1042}),
                "op": "CREATE",
                "before_json": None,
                "after_json": json.dumps(
                    {"id": 1042, "customer_id": 7, "total_cents": 4599, "status": "PLACED"}
                ),
                "changed_fields": ["id", "customer_id", "total_cents", "status"],
                "before_complete": True,
                "position": position,
            },
            {
                "database": "shop",
                "schema": "public",
                "table": "customers",
                "key_json": json.dumps({"id": 7}),
                "op": "UPDATE",
                "before_json": json.dumps({"id": 7}),
                "after_json": json.dumps({"id": 7, "open_orders": 3}),
                "changed_fields": ["open_orders"],
                "before_complete": False,
                "position": {**position, "offset": 1842, "lsn": 24023400},
            },
        ],
        "event": {
            "event_id": "8a1d9f0e-3b57-4c6a-9e0f-2d1b6c7a8e91",
            "event_type": "OrderPlaced",
            "aggregate_type": "order",
            "aggregate_id": "1042",
            "payload_json": json.dumps({"order_id": 1042, "rule_version": "v7"}),
            "headers": {"traceparent": TRACEPARENT, "correlationId": "wf-1042"},
            "position": {
                "topic": "outbox.event.order",
                "partition": 2,
                "offset": 99,
                "lsn": 24023500,
                "tx_id": "771",
                "connector": "shop",
                "ts_ms": 1790000000123,
            },
        },
        "commit_ts_ms": 1790000000123,
        "journal_ts_ms": 1790000000456,
        "tx_id": "771",
        "complete": True,
        "causation_ids": ["c0ffee00-0000-4000-8000-000000000001"],
        "correlation_id": "wf-1042",
        "trace": {
            "traceparent": TRACEPARENT,
            "tracestate": "vendor=1",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
        },
        "decision": {"rule": "pricing", "rule_version": "v7"},
        "entities": ["public.orders:1042", "public.customers:7"],
        "external_systems": [],
        "phase": "ACTION",
        "intent_id": None,
        "reversibility": "COMPENSABLE",
        "rewind_request_id": None,
        "compensated_action_id": None,
    }


def rollback_request(kind: str = "FIELD_PREDICATE") -> dict[str, Any]:
    selectors: dict[str, dict[str, Any]] = {
        "ACTION_IDS": {"action_ids": ["a-1", "a-2"]},
        "CORRELATION_ID": {"correlation_id": "wf-1042"},
        "TRACE_ID": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        "ACTION_TYPE_WINDOW": {
            "action_type": "PriceApplied",
            "from_ts_ms": 1790000000000,
            "to_ts_ms": 1790003600000,
        },
        "FIELD_PREDICATE": {"predicate": {"field": "rule_version", "op": "EQ", "value_json": '"v7"'}},
    }
    return {
        "request_id": "rb-2026-11-23-001",
        "requested_by": "oncall@shop.example",
        "reason": "pricing rule v7 overcharged orders with coupons",
        "requested_ts_ms": 1790001000000,
        "selector": {"kind": kind, **selectors[kind]},
        "mode": "EXECUTE",
        "widen_on_overwrites": False,
    }


def rollback_control(command: str = "APPROVE") -> dict[str, Any]:
    return {
        "request_id": "rb-2026-11-23-001",
        "command": command,
        "issued_by": "lead@shop.example",
        "issued_ts_ms": 1790001060000,
        "reason": "blast radius reviewed",
    }


def rollback_status() -> dict[str, Any]:
    return {
        "request_id": "rb-2026-11-23-001",
        "state": "PARTIALLY_ROLLED_BACK",
        "reason": "1 step unconfirmed after 5 attempts",
        "ts_ms": 1790001200000,
        "plan": {
            "scope": ["a-1", "a-2", "a-3"],
            "waves": 2,
            "steps": [
                {
                    "action_id": "a-3",
                    "action_type": "PaymentCaptured",
                    "service": "payments",
                    "mechanism": "COMPENSATE",
                    "wave": 0,
                    "state": "CONFIRMED",
                    "attempts": 1,
                    "idempotency_key": "rb-2026-11-23-001:a-3",
                    "last_error": None,
                },
                {
                    "action_id": "a-2",
                    "action_type": "StockReserved",
                    "service": "inventory",
                    "mechanism": "RESTORE",
                    "wave": 0,
                    "state": "FAILED",
                    "attempts": 5,
                    "idempotency_key": "rb-2026-11-23-001:a-2",
                    "last_error": "not confirmed within 30s",
                },
                {
                    "action_id": "a-1",
                    "action_type": "OrderPlaced",
                    "service": "orders",
                    "mechanism": "IRREVERSIBLE",
                    "wave": 1,
                    "state": "SKIPPED",
                    "attempts": 0,
                    "idempotency_key": None,
                    "last_error": None,
                },
            ],
            "conflicts": [{"action_id": "a-2", "entity": "public.stock:sku-9", "overwritten_by": ["b-7"]}],
            "irreversible": ["a-1"],
            "in_doubt": [],
            "unclassified": [],
            "blast_radius": [
                {
                    "service": "payments",
                    "action_type": "PaymentCaptured",
                    "mechanism": "COMPENSATE",
                    "count": 1,
                }
            ],
            "needs_approval": True,
            "approval_reasons": ["irreversible steps: 1 > 0"],
        },
        "verification": [
            {
                "entity": "public.stock:sku-9",
                "field": "reserved",
                "expected_json": "0",
                "actual_json": "2",
            }
        ],
    }


def compensation() -> dict[str, Any]:
    return {
        "event_id": "5f0c2a8e-6d4b-4f1a-8c3e-9b7d1e2f3a4b",
        "request_id": "rb-2026-11-23-001",
        "compensated_action_id": "a-3",
        "idempotency_key": "rb-2026-11-23-001:a-3",
        "mechanism": "COMPENSATE",
        "event_type": "RefundPayment",
        "entity": None,
        "key_json": json.dumps({"payment_id": 311}),
        "payload_json": json.dumps({"payment_id": 311, "amount_cents": 4599}),
        "expected_json": None,
        "correlation_id": "wf-1042",
        "traceparent": TRACEPARENT,
        "emitted_ts_ms": 1790001100000,
    }


def drill_verdict() -> dict[str, Any]:
    return {
        "drill_id": "a1b2c3", "asked": "compensate", "outcome": "FAILED",
        "reason": "step reserve-7 (StockReserved, compensate) failed: unconfirmed after 3 attempts",
        "started_ts_ms": 1_700_000_000_000, "ended_ts_ms": 1_700_000_042_000, "request_id": "drill-a1b2c3",
        "failed_step": "reserve-7", "journaled_ms": 3_100, "undone_ms": 38_000,
        "exercised": ["IRREVERSIBLE", "RESTORE"], "action_types": ["EmailSent", "OrderPriced"],
    }  # fmt: skip
