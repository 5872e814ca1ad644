"""Rollback: the action catalog, the planner, and the worker that executes plans."""
