"""Transactional producers fail fast against Ferry's broker, with a clear error, in both
Python clients (it has no transaction coordinator).

Usage: transactions.py BOOTSTRAP. Exits non-zero with a message naming the failed step.
"""

import sys
import time

BOOTSTRAP = sys.argv[1]
FAST = 10.0


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def kafka_python():
    from kafka import KafkaProducer
    from kafka.errors import TransactionalIdAuthorizationFailedError

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id="kp-tx", max_block_ms=30000)
    started = time.time()
    try:
        producer.init_transactions()
        check(False, "kafka-python: init_transactions must fail")
    except TransactionalIdAuthorizationFailedError as e:
        took = time.time() - started
        print(f"kafka-python: init_transactions failed after {took:.1f}s: {e!r}")
        check(took < FAST, f"kafka-python: failed fast ({took:.1f}s)")
    producer.close(timeout=5)


def confluent():
    from confluent_kafka import KafkaError, KafkaException, Producer

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "ck-tx"})
    started = time.time()
    try:
        producer.init_transactions(30)
        check(False, "confluent-kafka: init_transactions must fail")
    except KafkaException as e:
        took = time.time() - started
        err = e.args[0]
        print(f"confluent-kafka: init_transactions failed after {took:.1f}s: {err}")
        check(took < FAST, f"confluent-kafka: failed fast ({took:.1f}s)")
        check(err.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, f"confluent-kafka: error code {err.code()}")
        check(not err.retriable(), "confluent-kafka: not retriable")


kafka_python()
confluent()
print("OK")
