"""Rollback: requests and their selectors, the action store, the planner, the engine that runs a plan
(approval, emission, confirmation, verification), and the worker, its Kafka loop."""
