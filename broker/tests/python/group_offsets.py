"""OffsetDelete through kafka-python's admin client: a live consumer group keeps the offsets
of topics it subscribes to (GROUP_SUBSCRIBED_TO_TOPIC) and loses the others; an empty group
loses any; unknown groups and partitions are errors.

Usage: group_offsets.py BOOTSTRAP. Exits non-zero with a message naming the failed step.
"""

import sys
import time

BOOTSTRAP = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.errors import GroupIdNotFoundError, GroupSubscribedToTopicError, NoError, UnknownTopicOrPartitionError  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="py-offsets")
admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in ("od-a", "od-b")])
a, b = TopicPartition("od-a", 0), TopicPartition("od-b", 0)

consumer = KafkaConsumer(
    bootstrap_servers=BOOTSTRAP,
    group_id="od-group",
    enable_auto_commit=False,
    session_timeout_ms=10000,
    heartbeat_interval_ms=500,
)
consumer.subscribe(["od-a"])
deadline = time.time() + 30
while not consumer.assignment() and time.time() < deadline:
    consumer.poll(timeout_ms=200)
check(consumer.assignment() == {a}, f"joined the group: {consumer.assignment()}")
consumer.commit({a: OffsetAndMetadata(0, "", -1), b: OffsetAndMetadata(0, "", -1)})

result = admin.delete_group_offsets("od-group", [a, b])
check(result == {a: GroupSubscribedToTopicError, b: NoError}, f"live group: {result}")
left = admin.list_group_offsets(["od-group"])["od-group"]
check(set(left) == {a}, f"only the subscribed topic's offset is left: {left}")

consumer.close()
result = admin.delete_group_offsets("od-group", [a, TopicPartition("od-a", 7)])
check(result == {a: NoError, TopicPartition("od-a", 7): UnknownTopicOrPartitionError}, f"empty group: {result}")
check(admin.list_group_offsets(["od-group"])["od-group"] == {}, "no offsets left")

try:
    admin.delete_group_offsets("no-such-group", [a])
    check(False, "an unknown group is an error")
except GroupIdNotFoundError:
    pass
admin.close()
print("OK")
