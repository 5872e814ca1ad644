"""The journal topic's boundary: journal entries to Avro records and back."""
