"""kafka-rewind's native tap engine (see processor/tap/native.py, which wraps it)."""

from collections.abc import Callable, Sequence
from typing import Any

# (journal key, Avro value, action type, reversibility, complete, phase, type fallback)
Out = tuple[bytes, bytes, str, str, bool, str, bool]

class TapEngine:
    def __init__(
        self,
        config: Any,  # processor.tap.native.EngineSettings
        router: Callable[[str], str | None],
        classify: Callable[[str], str],
    ) -> None: ...
    def process_messages(
        self, messages: Sequence[Any], start: int, now_ms: int
    ) -> tuple[list[Out], list[int], list[tuple[str, str | None, int]], list[tuple[str, int, int]], int]: ...
    def process_record(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]],
        ts_ms: int | None,
        now_ms: int,
    ) -> tuple[list[Out], str, str | None]: ...
    def tick(self, now_ms: int) -> list[Out]: ...
    def finish(self, now_ms: int) -> list[Out]: ...
    def seed(self, entry: Any) -> None: ...
    def seed_journal(self, values: list[bytes]) -> int | None: ...
    def safe_offsets(self) -> list[tuple[str, int, int]]: ...
    @property
    def open_transactions(self) -> int: ...
    @property
    def pending_intents(self) -> int: ...
    @property
    def dedupe_size(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def incomplete(self) -> int: ...
    @property
    def in_doubt(self) -> int: ...

def canonical_json(data: bytes) -> str | None:
    """A JSON text's canonical form by the engine's rules (processor.jsonvalue), or None."""
