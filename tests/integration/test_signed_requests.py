"""Signed requests and control messages on a real broker: the worker admits only what a key of its
keyring with the role signed lately, once. Each refusal is checked where the user sees it: a request's
REJECTED status naming the reason, a control message's dead letter or the request's audit; and nothing
refused emits anything."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from processor.config import Settings
from processor.rollback.request import Control, ControlCommand, Mode, RollbackRequest, Selector, SelectorKind
from processor.rollback.serde import signed_control, signed_request
from processor.security.keys import SigningKey
from processor.security.signature import HEADER
from tests.integration.rollkit import (
    APPROVER,
    BOTH,
    OPERATOR,
    RollbackTopics,
    Running,
    key_of,
    publish_journal,
    send_control,
    send_raw,
)
from tests.integration.tapkit import headers_of, read_topic
from tests.unit.rollback.world import World

ORDER_1 = Selector(SelectorKind.CORRELATION_ID, correlation_id="order-1")


def _now() -> int:
    return int(time.time() * 1000)


def _request(by: str) -> RollbackRequest:
    return RollbackRequest(f"r-{uuid.uuid4().hex[:8]}", by, "bad rule v7", _now(), ORDER_1, Mode.EXECUTE)


def _send(
    settings: Settings, by: str, key: SigningKey | None, *, at_ms: int = 0, tamper: bool = False
) -> str:
    request = _request(by)
    body, headers = signed_request(request, key, at_ms or _now())
    if tamper:  # the reason changed after signing
        body = body.replace(b"bad rule v7", b"bad rule v8")
    send_raw(settings, settings.topics.requests, request.request_id, body, headers)
    return request.request_id


def test_every_refusal_is_named_and_nothing_refused_emits(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topics = RollbackTopics(unique)
    settings = topics.settings(kafka_bootstrap)  # the email is irreversible: every plan waits for approval
    topics.create(settings)
    world = World()
    world.order(1, rule="v7", price=90)
    publish_journal(kafka_bootstrap, settings.topics.journal, world.entries)
    with Running(settings, topics, tmp_path) as run:
        refused = {
            "unsigned": _send(settings, OPERATOR, None),
            "unknown key": _send(settings, "mallory", SigningKey.generate("mallory")),
            "forged": _send(
                settings, OPERATOR, SigningKey.generate(OPERATOR)
            ),  # the operator's id, another key
            "tampered": _send(settings, OPERATOR, key_of(OPERATOR), tamper=True),
            "expired": _send(settings, OPERATOR, key_of(OPERATOR), at_ms=_now() - 600_000),
            "wrong role": _send(settings, APPROVER, key_of(APPROVER)),
        }
        reasons = {
            case: run.status.wait(rid, {"REJECTED", "AWAITING_APPROVAL"}).reason
            for case, rid in refused.items()
        }
        # The same signed bytes twice under two Kafka keys: the second is a replay.
        body, headers = signed_request(_request(OPERATOR), key_of(OPERATOR), _now())
        send_raw(settings, settings.topics.requests, "first", body, headers)
        send_raw(settings, settings.topics.requests, "again", body, headers)
        replayed = run.status.wait("again", {"REJECTED", "AWAITING_APPROVAL"})

        request_id = _send(settings, BOTH, key_of(BOTH))  # a key that may request and approve
        waiting = run.status.wait(request_id, {"AWAITING_APPROVAL"})
        send_control(
            settings, request_id, ControlCommand.APPROVE, by=BOTH, plan_hash=waiting.plan_hash
        )  # own
        send_control(settings, request_id, ControlCommand.APPROVE, by=OPERATOR, plan_hash=waiting.plan_hash)
        send_control(
            settings, request_id, ControlCommand.APPROVE, by=APPROVER, plan_hash="0" * 64
        )  # another plan
        time.sleep(3)
        emitted_before_approval = list(run.services.seen)
        control = Control(request_id, ControlCommand.APPROVE, APPROVER, _now(), plan_hash=waiting.plan_hash)
        approve, approve_headers = signed_control(control, key_of(APPROVER), _now())
        send_raw(settings, settings.topics.control, request_id, approve, approve_headers)
        done = run.status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK"}, 90)
        send_raw(settings, settings.topics.control, request_id, approve, approve_headers)  # a replay
        dead = read_topic(kafka_bootstrap, settings.topics.deadletter, expect=2, timeout_s=30)
        commands = list(run.services.seen)

    assert reasons["unsigned"] == f"refused: unsigned: no {HEADER} header on this request"
    assert reasons["unknown key"] == "refused: unknown key: key 'mallory' is not in the keyring"
    assert reasons["forged"] == f"refused: bad signature: the request does not verify with key '{OPERATOR}'"
    assert reasons["tampered"] == reasons["forged"]
    assert reasons["expired"] == "refused: expired: issued 600s ago; the window is 300s"
    assert f"refused: wrong role: key '{APPROVER}' has roles ['approver']" in (reasons["wrong role"] or "")
    assert replayed.state.value == "REJECTED" and "refused: replayed: nonce" in (replayed.reason or "")
    assert emitted_before_approval == [], "nothing refused emits"

    assert done.state.value == "COMPLETED", done.reason
    audit = [(a.command, a.key_id, a.outcome) for a in done.audit]
    assert audit[0] == ("REQUEST", BOTH, "received")
    assert audit[1][:2] == ("APPROVE", BOTH) and "cannot approve it too (two-person rule)" in audit[1][2]
    assert audit[2][:2] == ("APPROVE", APPROVER) and "it approves plan 000000000000" in audit[2][2]
    assert audit[3][:2] == ("APPROVE", APPROVER) and "EXECUTING" in audit[3][2]
    assert done.requested_key == BOTH and [a.key_id for a in done.approvals] == [APPROVER]
    assert len(commands) == 4 and {c["request_id"] for c in commands} == {request_id}, "emitted once"

    letters = {headers_of(d)["rewind.dlq.error"].decode() for d in dead}
    assert {headers_of(d)["rewind.dlq.reason"].decode() for d in dead} == {"refused_control"}
    assert any(f"key '{OPERATOR}' has roles ['operator']" in e for e in letters), letters  # not an approver
    assert any("refused: replayed" in e or "replayed: nonce" in e for e in letters), letters
