"""SCRAM credentials managed with confluent-kafka's AdminClient (KIP-554): a user added with
alter_user_scram_credentials authenticates at once, is described with its mechanism and
iterations, survives a broker restart, and cannot authenticate once deleted; users of the
--sasl-users file, too few iterations and unknown users are refused with Kafka's errors.

Usage: scram_admin.py BOOTSTRAP ADMIN_USER ADMIN_PASSWORD PHASE, PHASE being `add` (before a
restart) or `after-restart`. Exits non-zero with a message naming the failed step.
"""

import sys

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

BOOTSTRAP, ADMIN, ADMIN_PASSWORD, PHASE = sys.argv[1:5]
USER, PASSWORD = "carol", "carol-s3cret"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def auth(user, password):
    return {
        "bootstrap.servers": BOOTSTRAP,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
    }


def error_of(future):
    try:
        future.result(timeout=20)
    except KafkaException as e:
        return e.args[0]
    return None


def produces(user, password):
    """Whether `user` can authenticate and produce one record."""
    errors, delivered = [], []
    p = Producer({**auth(user, password), "acks": "all", "message.timeout.ms": 5000,
                  "error_cb": lambda e: errors.append(e)})
    p.produce("scram-admin", value=user, on_delivery=lambda err, msg: delivered.append(err is None))
    p.flush(10)
    auth_failed = any(e.code() == KafkaError._AUTHENTICATION for e in errors)
    return delivered == [True] and not auth_failed, errors


admin = AdminClient(auth(ADMIN, ADMIN_PASSWORD))
info512 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)

if PHASE == "add":
    err = error_of(admin.describe_user_scram_credentials([USER])[USER])
    check(err is not None and err.code() == KafkaError.RESOURCE_NOT_FOUND, f"describe an unknown user: {err}")
    ok, errors = produces(USER, PASSWORD)
    check(not ok, "an unknown user authenticated")

    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(USER, info512, PASSWORD.encode())])
    err = error_of(futures[USER])
    check(err is None, f"add {USER}: {err}")
    described = admin.describe_user_scram_credentials([USER])[USER].result(timeout=20)
    infos = [(i.mechanism, i.iterations) for i in described.scram_credential_infos]
    check(infos == [(ScramMechanism.SCRAM_SHA_512, 8192)], f"described {infos}")
    everyone = admin.describe_user_scram_credentials().result(timeout=20)
    check({ADMIN, USER} <= set(everyone), f"all users: {sorted(everyone)}")
    ok, errors = produces(USER, PASSWORD)
    check(ok, f"{USER} could not produce after being added: {errors}")
    ok, errors = produces(USER, "wrong")
    check(not ok, f"{USER} authenticated with a wrong password")

    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(ADMIN, info512, b"taken-over")])
    err = error_of(futures[ADMIN])
    check(err is not None and "--sasl-users" in err.str(), f"a file user altered: {err}")
    few = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000)
    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion("dave", few, b"pw")])
    err = error_of(futures["dave"])
    check(err is not None and err.code() == KafkaError.UNACCEPTABLE_CREDENTIAL, f"1000 iterations: {err}")
    futures = admin.alter_user_scram_credentials([UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_256)])
    err = error_of(futures["dave"])
    check(err is not None and err.code() == KafkaError.RESOURCE_NOT_FOUND, f"delete an unknown user: {err}")
elif PHASE == "after-restart":
    ok, errors = produces(USER, PASSWORD)
    check(ok, f"{USER} could not produce after a restart: {errors}")
    futures = admin.alter_user_scram_credentials([UserScramCredentialDeletion(USER, ScramMechanism.SCRAM_SHA_512)])
    err = error_of(futures[USER])
    check(err is None, f"delete {USER}: {err}")
    ok, errors = produces(USER, PASSWORD)
    check(not ok, f"{USER} authenticated after being deleted")
else:
    check(False, f"unknown phase {PHASE}")
print("OK")
