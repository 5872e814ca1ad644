"""The tap: source records (CDC, transaction metadata, outbox) in, journal entries and dead letters out.

Everything here but ``runner`` is pure: it runs the same on a live consumer and on a captured file.
"""
