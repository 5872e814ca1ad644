"""Kafka adapters: client factories, topic administration and the local development broker."""
