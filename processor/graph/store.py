"""The graph's checkpoint: the whole index and the journal offsets it reflects, in one file, written
atomically (temporary file, fsync, rename), so a restart resumes where the checkpoint stands instead of
re-reading the journal. Lost or unreadable: the graph is rebuilt from the journal's start."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processor.errors import RewindError, Where
from processor.graph.builder import CausalGraph

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    graph: CausalGraph
    topic: str
    offsets: dict[int, int]  # journal partition -> next offset to read
    written_at: float


class CheckpointError(RewindError):
    """A checkpoint exists but cannot be used; the graph is rebuilt from the journal."""


def save(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "version": FORMAT_VERSION,
        "topic": checkpoint.topic,
        "written_at": checkpoint.written_at,
        "offsets": {str(p): o for p, o in checkpoint.offsets.items()},
        "small": checkpoint.graph.small_state(),
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            **checkpoint.graph.to_arrays(),
        }
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds too narrowly
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load(path: Path, topic: str) -> Checkpoint | None:
    """The checkpoint at ``path`` for this journal topic; None when there is none."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop("meta").tobytes())
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint is unreadable: {exc}", where=Where(file=str(path))) from exc
    if meta.get("version") != FORMAT_VERSION or meta.get("topic") != topic:
        raise CheckpointError(
            f"checkpoint is for {meta.get('topic')!r} (format {meta.get('version')}), not {topic!r}",
            where=Where(file=str(path)),
        )
    small = meta["small"]
    small["dangling"] = {k: list(v) for k, v in small["dangling"].items()}
    graph = CausalGraph.from_arrays(arrays, small)
    offsets = {int(p): int(o) for p, o in meta["offsets"].items()}
    return Checkpoint(graph, topic, offsets, float(meta["written_at"]))


def load_or_empty(path: Path, topic: str) -> Checkpoint:
    try:
        found = load(path, topic)
    except CheckpointError as exc:
        logger.warning("%s; rebuilding the graph from the journal", exc)
        found = None
    return found or Checkpoint(CausalGraph(), topic, {}, time.time())
