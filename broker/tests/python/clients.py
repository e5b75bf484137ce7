"""Real Python Kafka clients against ferry-broker: kafka-python and confluent-kafka.

Usage: clients.py BOOTSTRAP. Exits non-zero with a message naming the failed step.
"""

import sys
import time

BOOTSTRAP = sys.argv[1]
N = 30


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="py-admin")
    admin.create_topics([NewTopic("kp-orders", num_partitions=3, replication_factor=1)])
    check("kp-orders" in admin.list_topics(), "kafka-python: created topic is listed")
    try:
        admin.create_topics([NewTopic("kp-orders", num_partitions=1, replication_factor=1)])
        check(False, "kafka-python: creating a topic twice fails")
    except TopicAlreadyExistsError:
        pass

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    for i in range(N):
        producer.send("kp-orders", key=f"k{i}".encode(), value=f"v{i}".encode())
    producer.flush(timeout=20)
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id="kp-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    consumer.subscribe(["kp-orders"])
    seen = []
    deadline = time.time() + 60
    while len(seen) < N and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen.extend(r.value.decode() for r in records)
    check(sorted(seen) == sorted(f"v{i}" for i in range(N)), f"kafka-python: consumed all {N}: {len(seen)}")
    consumer.commit()
    parts = [TopicPartition("kp-orders", p) for p in range(3)]
    ends = consumer.end_offsets(parts)
    for tp in parts:
        check(consumer.committed(tp) == ends[tp], f"kafka-python: committed offset of {tp} is its end")
    consumer.close()

    offsets = admin.list_group_offsets(["kp-group"])["kp-group"]
    check(sum(o.offset for o in offsets.values()) == N, f"kafka-python: admin sees committed offsets: {offsets}")
    groups = admin.list_groups()
    check(any("kp-group" in str(g) for g in groups), f"kafka-python: group is listed: {groups}")
    described = admin.describe_groups(["kp-group"])
    check("Empty" in str(described), f"kafka-python: closed group is Empty: {described}")
    deleted = admin.delete_groups(["kp-group"])
    check(len(deleted) == 1 and "Error" not in str(deleted).replace("NoError", ""), f"kafka-python: delete group: {deleted}")
    print("kafka-python delete_groups:", deleted)
    check(admin.list_group_offsets(["kp-group"])["kp-group"] == {}, "kafka-python: deleted group has no offsets")
    admin.delete_topics(["kp-orders"])
    check("kp-orders" not in admin.list_topics(), "kafka-python: deleted topic is gone")
    admin.close()


def confluent():
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("ck-orders", num_partitions=2, replication_factor=1)]).values():
        f.result(timeout=20)
    check("ck-orders" in admin.list_topics(timeout=10).topics, "confluent-kafka: created topic is listed")

    delivered = []
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True})
    for i in range(N):
        producer.produce(
            "ck-orders",
            key=f"k{i}",
            value=f"v{i}",
            on_delivery=lambda err, msg: delivered.append(err is None),
        )
    producer.flush(20)
    check(len(delivered) == N and all(delivered), "confluent-kafka: every record delivered")

    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": "ck-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["ck-orders"])
    seen = []
    deadline = time.time() + 60
    while len(seen) < N and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        seen.append(msg.value().decode())
        consumer.commit(message=msg, asynchronous=False)
    check(sorted(seen) == sorted(f"v{i}" for i in range(N)), f"confluent-kafka: consumed all {N}: {len(seen)}")
    committed = consumer.committed([TopicPartition("ck-orders", p) for p in range(2)], timeout=10)
    check(sum(tp.offset for tp in committed) == N, "confluent-kafka: commits cover every record")
    consumer.close()

    for f in admin.delete_topics(["ck-orders"]).values():
        f.result(timeout=20)
    check("ck-orders" not in admin.list_topics(timeout=10).topics, "confluent-kafka: deleted topic is gone")


kafka_python()
confluent()
print("OK")
