"""Which tap core runs: the native engine when it is installed (REWIND_TAP__ENGINE=auto), else Python."""

from __future__ import annotations

from processor.catalog.catalog import Catalog
from processor.config import Settings
from processor.tap import native
from processor.tap.core import PythonTapCore, TapCore, TapObserver
from processor.tap.decoding import SchemaLookup


def tap_core(
    settings: Settings,
    catalog: Catalog,
    *,
    group_transactions: bool | None = None,
    lookup: SchemaLookup | None = None,
    observer: TapObserver | None = None,
    offline: bool = False,
) -> TapCore:
    """``offline``: a capture read whole, so the dedupe index forgets nothing."""
    engine = settings.tap.engine
    core = (
        PythonTapCore
        if engine == "python" or (engine == "auto" and not native.available())
        else native.NativeTapCore
    )
    return core(
        settings, catalog, group_transactions=group_transactions, lookup=lookup, observer=observer,
        offline=offline,
    )  # fmt: skip
