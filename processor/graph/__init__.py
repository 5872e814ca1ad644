"""The dependency graph of actions: built from journal entries, queried for lineage and rollback scope.

Pure: no Kafka, no Prometheus. networkx runs the algorithms on extracted subgraphs only.
"""
