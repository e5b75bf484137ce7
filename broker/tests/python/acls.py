"""ACLs with confluent-kafka's AdminClient (KIP-140) against a broker started with
--authorizer, --super-users User:admin and SASL users admin, alice and bob: a user without
ACLs is refused (TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED); ACLs the super user
creates let alice produce and consume at once, while bob stays refused; DescribeAcls finds
them by a MATCH filter; a user who is not a super user may not change ACLs; a bad binding is
refused by name; the ACLs survive a restart; deleting one takes the permission away.

Usage: acls.py BOOTSTRAP PASSWORD PHASE, PHASE being `grant` (before a restart) or
`after-restart`; every user's password is PASSWORD. Exits non-zero naming the failed step.
"""

import sys
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

BOOTSTRAP, PASSWORD, PHASE = sys.argv[1:4]
TOPIC = "orders"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def auth(user):
    return {
        "bootstrap.servers": BOOTSTRAP,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": user,
        "sasl.password": PASSWORD,
    }


def produce(user):
    """The delivery error of one record `user` produces to TOPIC (None: delivered)."""
    outcome = []
    p = Producer({**auth(user), "acks": "all", "message.timeout.ms": 10000})
    p.produce(TOPIC, key=user, value=f"from {user}", on_delivery=lambda err, msg: outcome.append(err))
    p.flush(15)
    check(len(outcome) == 1, f"no delivery report for {user}")
    return outcome[0]


def consume(user, group):
    """(records read, first error code) for `user` reading TOPIC from the start in `group`."""
    c = Consumer({**auth(user), "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([TOPIC])
    values, error = [], None
    for _ in range(60):
        m = c.poll(0.5)
        if m is None:
            if values:
                break
            continue
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                error = m.error().code()
                break
            continue
        values.append(m.value().decode())
    c.close()
    return values, error


def binding(principal, operation, name=TOPIC, kind=ResourceType.TOPIC,
            pattern=ResourcePatternType.LITERAL, permission=AclPermissionType.ALLOW, host="*"):
    return AclBinding(kind, name, pattern, principal, host, operation, permission)


ALICE_WRITE = binding("User:alice", AclOperation.WRITE)
ALICE_READ = binding("User:alice", AclOperation.READ)
ALICE_GROUPS = binding("User:alice", AclOperation.READ, name="alice-", kind=ResourceType.GROUP,
                       pattern=ResourcePatternType.PREFIXED)
MATCH_ORDERS = AclBindingFilter(ResourceType.ANY, TOPIC, ResourcePatternType.MATCH, None, None,
                                AclOperation.ANY, AclPermissionType.ANY)


def error_of(future):
    try:
        future.result(timeout=20)
    except KafkaException as e:
        return e.args[0].code()
    return None


admin = AdminClient(auth("admin"))

if PHASE == "grant":
    check(error_of(admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC]) is None, "admin creates the topic")
    err = produce("alice")
    check(err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
          f"alice produced without an ACL: {err}")

    # Only a super user may change ACLs; a bad binding is refused by name.
    bob_admin = AdminClient(auth("bob"))
    err = error_of(bob_admin.create_acls([ALICE_WRITE])[ALICE_WRITE])
    check(err == KafkaError.CLUSTER_AUTHORIZATION_FAILED, f"bob created an ACL: {err}")
    bad = binding("User:alice", AclOperation.READ, host="example.com")
    try:
        err = error_of(admin.create_acls([bad])[bad])
    except (KafkaException, ValueError) as e:  # confluent-kafka may refuse it first
        err = e
    check(err is not None, "a binding with a host name was accepted")

    results = admin.create_acls([ALICE_WRITE, ALICE_READ, ALICE_GROUPS])
    for b, future in results.items():
        check(error_of(future) is None, f"create {b}")
    check(produce("alice") is None, "alice could not produce with WRITE")
    values, err = consume("alice", f"alice-{uuid.uuid4()}")
    check(err is None and "from alice" in values, f"alice could not consume: {values} {err}")
    err = produce("bob")
    check(err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
          f"bob produced: {err}")
    values, err = consume("bob", f"alice-{uuid.uuid4()}")
    check(err in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)
          and not values, f"bob consumed: {values} {err}")

    found = admin.describe_acls(MATCH_ORDERS).result(timeout=20)
    check(sorted(map(str, found)) == sorted(map(str, [ALICE_WRITE, ALICE_READ])),
          f"described {found}")
elif PHASE == "after-restart":
    found = admin.describe_acls(MATCH_ORDERS).result(timeout=20)
    check(len(found) == 2, f"ACLs after a restart: {found}")
    check(produce("alice") is None, "alice could not produce after a restart")
    only_write = AclBindingFilter(ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL,
                                  "User:alice", None, AclOperation.WRITE, AclPermissionType.ALLOW)
    deleted = admin.delete_acls([only_write])[only_write].result(timeout=20)
    check([str(b) for b in deleted] == [str(ALICE_WRITE)], f"deleted {deleted}")
    err = produce("alice")
    check(err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
          f"alice produced after her ACL was deleted: {err}")
else:
    check(False, f"unknown phase {PHASE}")

print("OK")
