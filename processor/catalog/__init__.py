"""The action catalog: how each action type is undone, read from YAML, and what it covers of the journal."""
