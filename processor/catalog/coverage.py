"""What the catalog covers of the journal (pure): observed action types with counts, the unclassified
ones, restores that cannot work, and outbox events typed only by their aggregate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from processor.catalog.catalog import Catalog
from processor.journal.model import JournalEntry, Op
from processor.undo import Mechanism

ROUTER_TYPE_SETTING = "transforms.outbox.table.fields.additional.placement=type:header:eventType"


@dataclass
class CatalogReport:
    observed: Counter[str] = field(default_factory=Counter)
    unclassified: Counter[str] = field(default_factory=Counter)
    warnings: dict[str, str] = field(default_factory=dict)
    untyped: Counter[str] = field(default_factory=Counter)  # aggregate types standing in for a type

    @property
    def notes(self) -> list[str]:
        """What to change in the connector, said once for the whole journal."""
        if not self.untyped:
            return []
        types = ", ".join(f"{t} ({n})" for t, n in self.untyped.most_common())
        return [
            f"{sum(self.untyped.values())} outbox events carried no event type, so their aggregate type "
            f"stands in for it: {types}. The catalog cannot tell their kinds apart: add "
            f"`{ROUTER_TYPE_SETTING}` to the connector (the outbox 'type' column as the eventType header)"
        ]


def check_catalog(catalog: Catalog, entries: Iterable[JournalEntry]) -> CatalogReport:
    report = CatalogReport()
    not_restorable: Counter[str] = Counter()
    for e in entries:
        report.observed[e.action_type] += 1
        if e.type_fallback:
            report.untyped[e.action_type] += 1
        spec = catalog.actions.get(e.action_type)
        if spec is None:
            report.unclassified[e.action_type] += 1
        elif spec.mechanism is Mechanism.RESTORE and any(
            c.op in (Op.UPDATE, Op.DELETE) and not c.before_complete for c in e.changes
        ):
            not_restorable[e.action_type] += 1
    for action_type, n in not_restorable.items():
        report.warnings[action_type] = (
            f"{n} actions have before-images holding only the key or placeholders (REPLICA IDENTITY "
            "DEFAULT): restores cannot be built; set REPLICA IDENTITY FULL on their tables"
        )
    for action_type in report.untyped:
        report.warnings.setdefault(action_type, "typed by its aggregate only: the router placed no type")
    return report
