"""A topic's compression.type with the Python clients: set with confluent-kafka's
incremental_alter_configs (and at creation with kafka-python), batches produced in another
codec are re-compressed by the broker and read back unchanged; a value Kafka does not define
is refused with INVALID_CONFIG.

Usage: compression.py BOOTSTRAP. Exits non-zero with a message naming the failed step.
"""

import sys

BOOTSTRAP = sys.argv[1]
BASE = 1_700_000_000_000


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def confluent():
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewTopic,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("ck-zstd", num_partitions=1, replication_factor=1)]).values():
        f.result(timeout=20)

    def set_type(value):
        res = ConfigResource(ResourceType.TOPIC, "ck-zstd", incremental_configs=[
            ConfigEntry("compression.type", value, incremental_operation=AlterConfigOpType.SET)
        ])
        return admin.incremental_alter_configs([res])[res].result(timeout=20)

    set_type("zstd")
    res = ConfigResource(ResourceType.TOPIC, "ck-zstd")
    value = admin.describe_configs([res])[res].result(timeout=20)["compression.type"].value
    check(value == "zstd", f"confluent-kafka: described {value}")

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": "gzip", "linger.ms": 500, "enable.idempotence": True})
    for i in range(10):
        producer.produce("ck-zstd", key=f"k{i}", value=f"v{i}", partition=0, timestamp=BASE + i, headers=[("n", str(i))])
    producer.flush(20)
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-zstd", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("ck-zstd", 0, 0)])
    got = []
    while len(got) < 10:
        m = consumer.poll(10)
        check(m is not None and m.error() is None, f"confluent-kafka: consume {m and m.error()}")
        got.append((m.offset(), m.key(), m.value(), m.timestamp()[1], m.headers()))
    consumer.close()
    want = [(i, f"k{i}".encode(), f"v{i}".encode(), BASE + i, [("n", str(i).encode())]) for i in range(10)]
    check(got == want, f"confluent-kafka: read back {got}")

    for bad in ["brotli", "none"]:
        try:
            set_type(bad)
            check(False, f"confluent-kafka: {bad} is refused")
        except KafkaException as e:
            err = e.args[0]
            check(err.code() == KafkaError.INVALID_CONFIG and bad in err.str(), f"confluent-kafka: {err}")


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="py-gzip")
    admin.create_topics([NewTopic("kp-gzip", num_partitions=1, replication_factor=1, topic_configs={"compression.type": "gzip"})])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=500)
    for i in range(10):
        producer.send("kp-gzip", key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0, timestamp_ms=BASE + i)
    producer.flush(timeout=20)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    consumer.assign([TopicPartition("kp-gzip", 0)])
    got = [(m.offset, m.key, m.value, m.timestamp) for m in consumer]
    consumer.close()
    want = [(i, f"k{i}".encode(), f"v{i}".encode(), BASE + i) for i in range(10)]
    check(got == want, f"kafka-python: read back {got}")


confluent()
kafka_python()
print("OK")
