"""Local services for development, tests and the demo: PostgreSQL and Kafka Connect with Debezium."""
