"""Drills: a canary workflow through the real services, undone through the normal request path, judged."""
