"""Who may undo what (pure): signing keys and the keyring, signatures over rewind's control messages,
and the gate that admits a message only when a known key with the needed role signed it lately."""
