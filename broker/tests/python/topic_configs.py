"""IncrementalAlterConfigs with confluent-kafka's AdminClient: SET and DELETE topic configs,
read back with describe_configs; a bad value is refused with INVALID_CONFIG.

Usage: topic_configs.py BOOTSTRAP. Exits non-zero with a message naming the failed step.
"""

import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

BOOTSTRAP = sys.argv[1]
TOPIC = "ck-tuned"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def alter(admin, *entries):
    res = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op) for name, value, op in entries
    ])
    return admin.incremental_alter_configs([res])[res].result(timeout=20)


def described(admin, name):
    res = ConfigResource(ResourceType.TOPIC, TOPIC)
    entry = admin.describe_configs([res])[res].result(timeout=20)[name]
    return entry.value, entry.source


admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
for f in admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)]).values():
    f.result(timeout=20)
default_retention = described(admin, "retention.ms")[0]

alter(admin, ("retention.ms", "60000", AlterConfigOpType.SET), ("segment.bytes", "1048576", AlterConfigOpType.SET))
got = described(admin, "retention.ms")
check(got == ("60000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value), f"SET retention.ms: {got}")
check(described(admin, "segment.bytes")[0] == "1048576", "SET segment.bytes")

alter(admin, ("retention.ms", None, AlterConfigOpType.DELETE))
check(described(admin, "retention.ms")[0] == default_retention, "DELETE returns to the default")
check(described(admin, "segment.bytes")[0] == "1048576", "DELETE leaves the others")

try:
    alter(admin, ("retention.ms", "soon", AlterConfigOpType.SET))
    check(False, "a bad value is refused")
except KafkaException as e:
    err = e.args[0]
    check(err.code() == KafkaError.INVALID_CONFIG, f"INVALID_CONFIG: {err}")
    print("refused:", err.str())
print("OK")
