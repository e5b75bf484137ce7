"""DeleteRecords with the Python clients: kafka-python's KafkaAdminClient.delete_records and
confluent-kafka's AdminClient.delete_records move the log start; the earliest offset and a
consumer from the beginning follow it; past the high watermark is OFFSET_OUT_OF_RANGE.

Usage: delete_records.py BOOTSTRAP. Exits non-zero with a message naming the failed step.
"""

import sys

BOOTSTRAP = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import OffsetOutOfRangeError

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="py-delete")
    admin.create_topics([NewTopic("kp-trim", num_partitions=1, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    for i in range(20):
        producer.send("kp-trim", value=f"v{i}".encode(), partition=0)
    producer.flush(timeout=20)
    producer.close()

    tp = TopicPartition("kp-trim", 0)
    result = admin.delete_records({tp: 7})
    check(result[tp]["low_watermark"] == 7, f"kafka-python: low watermark {result}")
    try:
        admin.delete_records({tp: 21})
        check(False, "kafka-python: past the high watermark is refused")
    except OffsetOutOfRangeError:
        pass
    admin.close()

    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    check(consumer.beginning_offsets([tp])[tp] == 7, "kafka-python: beginning_offsets follows the log start")
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    first = next(iter(consumer))
    check((first.offset, first.value) == (7, b"v7"), f"kafka-python: first record {first.offset}")
    consumer.close()


def confluent():
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("ck-trim", num_partitions=1, replication_factor=1)]).values():
        f.result(timeout=20)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(20):
        producer.produce("ck-trim", value=f"v{i}", partition=0)
    producer.flush(20)

    # OFFSET_END (-1): everything below the high watermark.
    for offset, low in [(12, 12), (3, 12), (-1, 20)]:
        tp = TopicPartition("ck-trim", 0, offset)
        deleted = admin.delete_records([tp])[tp].result(timeout=20)
        check(deleted.low_watermark == low, f"confluent-kafka: delete before {offset}: {deleted.low_watermark}")
    tp = TopicPartition("ck-trim", 0, 30)
    try:
        admin.delete_records([tp])[tp].result(timeout=20)
        check(False, "confluent-kafka: past the high watermark is refused")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, f"confluent-kafka: {e}")

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-trim"})
    low, high = consumer.get_watermark_offsets(TopicPartition("ck-trim", 0), timeout=10)
    check((low, high) == (20, 20), f"confluent-kafka: watermarks {low}, {high}")
    consumer.close()


kafka_python()
confluent()
print("OK")
