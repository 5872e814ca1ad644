"""How an action is undone, in one vocabulary: the catalog's mechanism, the reversibility the journal
stamps on an entry, and the mechanism of a plan's step. Each is a wire format of its own (catalog YAML,
the journal's and the status topic's Avro enums), so the three spellings stay; the mappings live here.
"""

from __future__ import annotations

from enum import StrEnum


class Mechanism(StrEnum):
    """What the catalog says undoes an action type (``mechanism:`` in its YAML)."""

    RESTORE = "restore"  # put the rows back to their before-images
    COMPENSATE = "compensate"  # a business command that reverses the effect
    IRREVERSIBLE = "irreversible"  # cannot be undone: notify, and list it
    REPLAY = "replay"  # the effect lives in a derived store: rebuild it from a filtered replay

    @property
    def reversibility(self) -> Reversibility:
        return Reversibility.of(self)


class Reversibility(StrEnum):
    """What the journal records of an entry: the catalog's answer when the tap journaled it."""

    RESTORABLE = "RESTORABLE"
    COMPENSABLE = "COMPENSABLE"
    IRREVERSIBLE = "IRREVERSIBLE"
    UNCLASSIFIED = "UNCLASSIFIED"  # not in the catalog
    REPLAYABLE = "REPLAYABLE"  # undone by rebuilding its store from a filtered replay

    @classmethod
    def of(cls, mechanism: Mechanism | None) -> Reversibility:
        return _REVERSIBILITY[mechanism]


class StepMechanism(StrEnum):
    """How a plan's step undoes its action (the status topic's spelling)."""

    RESTORE = "RESTORE"
    COMPENSATE = "COMPENSATE"
    IRREVERSIBLE = "IRREVERSIBLE"
    UNCLASSIFIED = "UNCLASSIFIED"
    REPLAY = "REPLAY"

    @classmethod
    def of(cls, mechanism: Mechanism | None) -> StepMechanism:
        return cls.UNCLASSIFIED if mechanism is None else cls(mechanism.value.upper())


_REVERSIBILITY = {
    Mechanism.RESTORE: Reversibility.RESTORABLE,
    Mechanism.COMPENSATE: Reversibility.COMPENSABLE,
    Mechanism.IRREVERSIBLE: Reversibility.IRREVERSIBLE,
    Mechanism.REPLAY: Reversibility.REPLAYABLE,
    None: Reversibility.UNCLASSIFIED,
}
