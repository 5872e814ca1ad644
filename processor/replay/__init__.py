"""Replay and repair: a filtered, exactly-once copy of a topic without a scope's records
(``scope``: what to skip and where to start, pure; ``runner``: the Kafka loop), and the re-drive of a
repair's good inputs (planned by the rollback planner, emitted by the worker)."""
