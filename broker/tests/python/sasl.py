"""Python Kafka clients authenticating to ferry-broker with SASL SCRAM over SASL_PLAINTEXT:
kafka-python with SCRAM-SHA-256, confluent-kafka with SCRAM-SHA-512.

Usage: sasl.py BOOTSTRAP USER PASSWORD. Exits non-zero with a message naming the failed step.
"""

import sys
import time

BOOTSTRAP, USER, PASSWORD = sys.argv[1:4]
N = 10


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def kafka_python():
    from kafka import KafkaConsumer, KafkaProducer

    auth = dict(
        bootstrap_servers=BOOTSTRAP,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username=USER,
        sasl_plain_password=PASSWORD,
    )
    producer = KafkaProducer(acks="all", **auth)
    for i in range(N):
        producer.send("kp-sasl", value=f"v{i}".encode())
    producer.flush(timeout=20)
    producer.close()
    consumer = KafkaConsumer(
        "kp-sasl", group_id="kp-sasl-group", auto_offset_reset="earliest", **auth
    )
    seen = []
    deadline = time.time() + 60
    while len(seen) < N and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen.extend(r.value.decode() for r in records)
    consumer.close()
    check(sorted(seen) == sorted(f"v{i}" for i in range(N)), f"kafka-python SCRAM-SHA-256: consumed {len(seen)} of {N}")


def confluent():
    from confluent_kafka import Consumer, KafkaException, Producer

    auth = {
        "bootstrap.servers": BOOTSTRAP,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": USER,
        "sasl.password": PASSWORD,
    }
    delivered = []
    producer = Producer({**auth, "acks": "all"})
    for i in range(N):
        producer.produce("ck-sasl", value=f"v{i}", on_delivery=lambda err, msg: delivered.append(err is None))
    producer.flush(20)
    check(len(delivered) == N and all(delivered), f"confluent-kafka SCRAM-SHA-512: delivered {delivered}")
    consumer = Consumer({**auth, "group.id": "ck-sasl-group", "auto.offset.reset": "earliest"})
    consumer.subscribe(["ck-sasl"])
    seen = []
    deadline = time.time() + 60
    while len(seen) < N and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        seen.append(msg.value().decode())
    consumer.close()
    check(sorted(seen) == sorted(f"v{i}" for i in range(N)), f"confluent-kafka SCRAM-SHA-512: consumed {len(seen)} of {N}")

    # A wrong password is an authentication error, not a hang.
    errors = []
    bad = Producer({**auth, "sasl.password": "wrong", "error_cb": lambda e: errors.append(e), "message.timeout.ms": 3000})
    bad.produce("ck-sasl", value="never")
    bad.flush(10)
    check(any("Authentication failed" in e.str() for e in errors), f"confluent-kafka wrong password: {[e.str() for e in errors]}")


kafka_python()
confluent()
print("OK")
