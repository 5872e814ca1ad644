"""Plumbing of the local daemons: ports handed out, and the jars a Maven closure will put where."""

from __future__ import annotations

from pathlib import Path

from processor.devenv.procs import free_port, tgf_jars

# The head of `mvn dependency:tree -DoutputType=tgf` on processor/kafka/maven/broker.pom.xml (Maven
# 3.9, maven-dependency-plugin 3.8.1), one line with a classifier added and the edges cut short.
BROKER_TREE = """\
1294058862 io.kafka-rewind:local-kafka-broker:pom:1
1919592808 org.apache.kafka:kafka_2.13:jar:4.1.1:compile
118492650 org.apache.kafka:kafka-clients:jar:4.1.1:compile
1898773347 com.github.luben:zstd-jni:jar:1.5.6-10:runtime
17 io.netty:netty-transport-native-epoll:jar:linux-x86_64:4.1.118.Final:runtime
#
1294058862 1919592808 compile
1919592808 118492650 compile
"""


def test_successive_free_ports_are_distinct() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_a_dependency_tree_names_the_jars_in_the_local_repository() -> None:
    repo = Path("/m2")
    assert tgf_jars(BROKER_TREE, repo) == [
        repo / "org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar",
        repo / "org/apache/kafka/kafka-clients/4.1.1/kafka-clients-4.1.1.jar",
        repo / "com/github/luben/zstd-jni/1.5.6-10/zstd-jni-1.5.6-10.jar",
        repo
        / "io/netty/netty-transport-native-epoll/4.1.118.Final/netty-transport-native-epoll-4.1.118.Final-linux-x86_64.jar",
    ]
