"""Offsets by time with the Python clients: a timestamp inside a (compressed) batch finds
the record, and confluent-kafka's max-timestamp lookup (KIP-734).

Usage: timestamps.py BOOTSTRAP. Exits non-zero with a message naming the failed step.
"""

import sys

BOOTSTRAP = sys.argv[1]
BASE = 1_700_000_000_000


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="py-times")
    admin.create_topics([NewTopic("kp-times", num_partitions=1, replication_factor=1)])
    admin.close()
    # One gzip batch of ten records one second apart.
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", compression_type="gzip", linger_ms=2000)
    for i in range(10):
        producer.send("kp-times", value=f"v{i}".encode(), partition=0, timestamp_ms=BASE + i * 1000)
    producer.flush(timeout=20)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
    tp = TopicPartition("kp-times", 0)
    for target, offset, ts in [(BASE, 0, BASE), (BASE + 2500, 3, BASE + 3000), (BASE + 9000, 9, BASE + 9000)]:
        found = consumer.offsets_for_times({tp: target})[tp]
        check(found is not None and (found.offset, found.timestamp) == (offset, ts), f"kafka-python: offsets_for_times({target - BASE}) = {found}")
    check(consumer.offsets_for_times({tp: BASE + 9001})[tp] is None, "kafka-python: nothing after the last record")
    consumer.close()


def confluent():
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("ck-times", num_partitions=1, replication_factor=1)]).values():
        f.result(timeout=20)
    # One zstd batch; the largest timestamp is in the middle.
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": "zstd", "linger.ms": 2000})
    for i, second in enumerate([5, 1, 9, 3, 9, 2]):
        producer.produce("ck-times", value=f"v{i}", partition=0, timestamp=BASE + second * 1000)
    producer.flush(20)

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-times"})
    found = consumer.offsets_for_times([TopicPartition("ck-times", 0, BASE + 4000)], timeout=10)[0]
    check(found.error is None and found.offset == 0, f"confluent-kafka: offsets_for_times(4 s) = {found}")
    found = consumer.offsets_for_times([TopicPartition("ck-times", 0, BASE + 6000)], timeout=10)[0]
    check(found.error is None and found.offset == 2, f"confluent-kafka: offsets_for_times(6 s) = {found}")
    consumer.close()

    tp = TopicPartition("ck-times", 0)
    result = admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=10)[tp].result(timeout=20)
    check((result.offset, result.timestamp) == (2, BASE + 9000), f"confluent-kafka: max_timestamp = {result.offset}@{result.timestamp}")


kafka_python()
confluent()
print("OK")
