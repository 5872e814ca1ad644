"""The dependency graph of actions: built from journal entries, queried for lineage and rollback scope.

Everything here but ``runner`` (the graph builder's Kafka loop) is pure: no Kafka, no Prometheus. networkx
runs the algorithms on extracted subgraphs only.
"""
