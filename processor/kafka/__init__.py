"""Kafka adapters: client factories, the one session loop and transactional commit (loop), topic
administration, the local development broker; and, pure, the message shape the core sees (messages) and
dead letters (deadletters)."""
