"""Authorized operations (KIP-430) with the Python clients: confluent-kafka's describe_topics,
describe_cluster and describe_consumer_groups, and kafka-python's describe_groups, with
include_authorized_operations, list every operation of the resource type (the broker has no
ACLs, as a Kafka broker without an authorizer).

Usage: authorized_operations.py BOOTSTRAP. Exits non-zero with a message naming the failed
step.
"""

import sys

BOOTSTRAP = sys.argv[1]
TOPIC_OPS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}
GROUP_OPS = {"READ", "DELETE", "DESCRIBE"}
CLUSTER_OPS = {"CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def names(ops):
    return {op.name for op in ops or []}


def confluent():
    from confluent_kafka import Consumer, TopicCollection
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("ck-ops", num_partitions=1, replication_factor=1)]).values():
        f.result(timeout=20)
    topic = admin.describe_topics(TopicCollection(["ck-ops"]), include_authorized_operations=True)["ck-ops"].result(timeout=20)
    check(names(topic.authorized_operations) == TOPIC_OPS, f"confluent-kafka topic: {topic.authorized_operations}")
    plain = admin.describe_topics(TopicCollection(["ck-ops"]))["ck-ops"].result(timeout=20)
    check(not plain.authorized_operations, f"confluent-kafka topic, not asked: {plain.authorized_operations}")

    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=20)
    check(names(cluster.authorized_operations) == CLUSTER_OPS, f"confluent-kafka cluster: {cluster.authorized_operations}")
    check(len(cluster.nodes) == 1 and cluster.controller is not None, f"confluent-kafka cluster: {cluster}")

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-ops"})
    consumer.subscribe(["ck-ops"])
    consumer.poll(5)
    group = admin.describe_consumer_groups(["ck-ops"], include_authorized_operations=True)["ck-ops"].result(timeout=20)
    check(names(group.authorized_operations) == GROUP_OPS, f"confluent-kafka group: {group.authorized_operations}")
    consumer.close()


def kafka_python():
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="py-ops")
    described = admin.describe_groups(["kp-ops"], include_authorized_operations=True)
    ops = described[0]["authorized_operations"] if isinstance(described, list) else described["kp-ops"]["authorized_operations"]
    check(set(ops) == GROUP_OPS, f"kafka-python group: {ops}")
    admin.close()


confluent()
kafka_python()
print("OK")
