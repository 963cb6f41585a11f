"""Starts moto_server with one repair: DynamoDB TransactWriteItems backs up only what it touches.

moto (5.2.5) makes a transaction atomic by deep-copying every table the transaction names,
once per item, before it applies anything, and putting the copies back if any item fails. The
cost of one transaction therefore grows with the size of the tables, and a run that writes an
inbox record and an outbox record for every message grows quadratically: a 200-order saga spent
most of half an hour copying tables and moto_server ran out of memory.

The repair keeps the semantics and changes the cost: before the transaction it copies only the
items the transaction names (by their keys); on failure it puts those items back (or removes
the ones that did not exist), so a failed transaction still leaves no partial write. The
whole-table copy is skipped only while such a transaction runs (a thread-local flag), so every
other use of deepcopy in moto is untouched.

Usage: python scripts/lib/moto_server.py [moto_server arguments...]
       python scripts/lib/moto_server.py --self-test   (checks the repair keeps atomicity)
"""

import copy
import sys
import threading
import types

import moto.dynamodb.models as ddb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_local = threading.local()


def _deepcopy(value, memo=None):
    # Inside a transaction the table itself stands in for its "backup": the rollback below
    # restores the touched items instead, so putting the table back on itself is a no-op.
    if isinstance(value, Table) and getattr(_local, "in_transaction", False):
        return value
    return copy.deepcopy(value, memo)


# The module moto's backend uses, with deepcopy swapped for the function above.
_copy_shim = types.ModuleType("copy")
_copy_shim.__dict__.update(copy.__dict__)
_copy_shim.deepcopy = _deepcopy

_original_transact = DynamoDBBackend.transact_write_items


def _touched(backend, transact_items):
    """(table, hash, range, copy of the current item or None) for every item named."""
    touched = []
    for entry in transact_items:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue  # the original rejects it before writing anything
        op_type, op = next(iter(entry.items()))
        try:
            table = backend.get_table(op["TableName"])
            key = op["Item"] if op_type == "Put" else op["Key"]
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = (
                DynamoType(key[table.range_key_attr])
                if table.range_key_attr is not None
                else None
            )
            current = table.get_item(hash_value, range_value)
        except Exception:
            continue  # a malformed item fails in the original, before any write of its own
        touched.append((table, hash_value, range_value, copy.deepcopy(current)))
    return touched


def _restore(touched):
    for table, hash_value, range_value, previous in reversed(touched):
        if range_value is not None:
            bucket = table.items[hash_value]
            if previous is None:
                bucket.pop(range_value, None)
                if not bucket:
                    table.items.pop(hash_value, None)
            else:
                bucket[range_value] = previous
        elif previous is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = previous


def transact_write_items(self, transact_items):
    touched = _touched(self, transact_items)
    _local.in_transaction = True
    try:
        return _original_transact(self, transact_items)
    except Exception:
        _restore(touched)
        raise
    finally:
        _local.in_transaction = False


def install():
    ddb_models.copy = _copy_shim
    DynamoDBBackend.transact_write_items = transact_write_items


def self_test():
    """A failed transaction leaves nothing behind; a good one applies every item."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )

        def key(pk, sk):
            return {"pk": {"S": pk}, "sk": {"S": sk}}

        client.put_item(TableName="t", Item={**key("a", "1"), "n": {"N": "1"}})
        client.put_item(TableName="t", Item={**key("gate", "x")})

        def items():
            return sorted(
                (i["pk"]["S"], i["sk"]["S"], i.get("n", {}).get("N"))
                for i in client.scan(TableName="t")["Items"]
            )

        before = items()
        try:
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": {**key("new", "1")}}},
                    {
                        "Update": {
                            "TableName": "t",
                            "Key": key("a", "1"),
                            "UpdateExpression": "SET n = :n",
                            "ExpressionAttributeValues": {":n": {"N": "2"}},
                        }
                    },
                    {"Delete": {"TableName": "t", "Key": key("gate", "x")}},
                    {
                        "ConditionCheck": {
                            "TableName": "t",
                            "Key": key("missing", "1"),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                ]
            )
            raise AssertionError("the transaction should have been cancelled")
        except ClientError as error:
            code = error.response["Error"]["Code"]
            assert code == "TransactionCanceledException", code
        after = items()
        assert after == before, f"a cancelled transaction left writes behind: {after}"

        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {**key("new", "1")}}},
                {"Delete": {"TableName": "t", "Key": key("gate", "x")}},
            ]
        )
        assert items() == [("a", "1", "1"), ("new", "1", None)], items()
    print("moto_server repair: a cancelled transaction leaves no partial write (3 checks)")


if __name__ == "__main__":
    install()
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
