"""A deploy rehearsal: the template, transformed as `sam deploy` transforms it, created as a
stack on an AWS-compatible CloudFormation (moto), updated with a changed parameter, and
deleted, each step required to complete. Every function's code is a stub (a zip holding a
`bootstrap` that is never run): what is rehearsed is the stack, not the code. A broken
reference, a circular dependency or a resource the service refuses fails here before a
real deploy does.

    python scripts/lib/deploy_rehearsal.py template.yaml --endpoint-url http://127.0.0.1:5000
    python scripts/lib/deploy_rehearsal.py template.yaml --endpoint-url URL --self-test

The self-test rehearses broken templates (a reference to nothing, two resources that depend
on each other, a queue whose dead-letter queue does not exist) and fails unless each is
refused.
"""

import argparse
import copy
import io
import json
import os
import sys
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import template_policy  # noqa: E402  (the offline transform, shared with the policy check)

import boto3  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

BUCKET = "bazaar-artifacts"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


class Refused(Exception):
    """A step that did not complete, with what the service said."""


def clients(endpoint):
    kw = dict(
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    return Clients(*(boto3.client(s, **kw) for s in ("cloudformation", "s3", "lambda", "dynamodb")))


class Clients:
    def __init__(self, cfn, s3, lam, ddb):
        self.cfn, self.s3, self.lam, self.ddb = cfn, s3, lam, ddb


def stub_code(s3, resources):
    """What `sam package` uploads, one stub zip per function."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho 'a stub: the deploy rehearsal never runs code' >&2\nexit 1\n")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    for rid, r in resources.items():
        if r.get("Type") == "AWS::Lambda::Function":
            code = r["Properties"]["Code"]
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=buf.getvalue())


def moto_aliases(cfn_template):
    """moto's CloudFormation models no `AWS::Lambda::Alias`: a reference to one resolves to
    nothing (a permission naming an alias fails with a server error). So that the rest is
    rehearsed, what names an alias names its function's ARN here (`Ref`, and `${Alias}` in
    `Fn::Sub`); the aliases and their deployment groups are still in the stack. Returns the
    template and how many aliases were so pointed at their functions."""
    t = copy.deepcopy(cfn_template)
    target = {}
    for rid, r in t["Resources"].items():
        if r.get("Type") == "AWS::Lambda::Alias":
            fn = (r.get("Properties") or {}).get("FunctionName")
            if isinstance(fn, dict) and "Ref" in fn:
                target[rid] = fn["Ref"]

    def walk(v):
        if isinstance(v, dict):
            if set(v) == {"Ref"} and v["Ref"] in target:
                # An alias's Ref is its ARN.
                return {"Fn::GetAtt": [target[v["Ref"]], "Arn"]}
            if "Fn::Sub" in v:
                sub = v["Fn::Sub"]
                text = sub if isinstance(sub, str) else sub[0]
                for alias, fn in target.items():
                    text = text.replace("${" + alias + "}", "${" + fn + ".Arn}")
                v = dict(v, **{"Fn::Sub": text if isinstance(sub, str) else [text] + [walk(x) for x in sub[1:]]})
                return v
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    for rid, r in t["Resources"].items():
        if r.get("Type") != "AWS::Lambda::Alias":
            t["Resources"][rid] = walk(r)
    return t, len(target)


def parameters(stage, extra=None):
    values = dict(template_policy.PARAMETERS, Stage=stage, Architecture="x86_64")
    values.update(extra or {})
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def wait(cfn, stack_id, verb):
    """Waits out `<VERB>_IN_PROGRESS`; returns the final status or raises with the reasons."""
    for _ in range(600):
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        time.sleep(0.5)
    if status != f"{verb}_COMPLETE":
        events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
        reasons = [
            f"  {e['LogicalResourceId']}: {e.get('ResourceStatus')} {e.get('ResourceStatusReason', '')}"
            for e in events
            if "FAILED" in e.get("ResourceStatus", "")
        ]
        raise Refused(f"{verb.lower()}: {status}\n" + "\n".join(reasons[:20]))
    return status


def rehearse(c, cfn_template, stage, quiet=False):
    """Create, update (OrderDeadlineSeconds changed), delete; then the tables a deletion
    keeps (`DeletionPolicy: Retain`) must still be there, and are removed so that the next
    rehearsal on the same endpoint starts clean. Returns a summary line."""
    cfn, s3, lam = c.cfn, c.s3, c.lam
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    listed = []
    cfn_template, pointed = moto_aliases(cfn_template)
    if pointed:
        say(f"  {pointed} aliases: moto models none, so what calls an alias calls its function here")
    resources = cfn_template["Resources"]
    stub_code(s3, resources)
    name = f"bazaar-{stage}"
    body = json.dumps(cfn_template)
    say(f"  creating stack {name}: {len(resources)} resources")
    try:
        stack_id = cfn.create_stack(
            StackName=name, TemplateBody=body, Parameters=parameters(stage), Capabilities=CAPABILITIES
        )["StackId"]
    except Exception as e:  # noqa: BLE001
        # moto answers some broken templates with a server error (a body botocore cannot
        # parse) rather than a validation error: refused all the same. A half-made stack of
        # it is removed.
        try:
            cfn.delete_stack(StackName=name)
        except (ClientError, BotoCoreError):
            pass
        said = str(e).splitlines()[0]
        if "Unable to parse response" in said:
            said = "the service failed on it (a server error, not a validation error)"
        raise Refused(f"create refused: {said[:160]}")
    try:
        wait(cfn, stack_id, "CREATE")
        token = None
        while True:
            page = cfn.list_stack_resources(StackName=stack_id, **({"NextToken": token} if token else {}))
            listed += page["StackResourceSummaries"]
            token = page.get("NextToken")
            if not token:
                break
        complete = [r for r in listed if r["ResourceStatus"] == "CREATE_COMPLETE"]
        if len(complete) != len(resources):
            missing = sorted(set(resources) - {r["LogicalResourceId"] for r in complete})
            raise Refused(f"create: {len(complete)} of {len(resources)} resources complete; not: {missing[:10]}")
        say(f"  CREATE_COMPLETE: {len(complete)} of {len(resources)} resources")

        function = next(
            r["PhysicalResourceId"] for r in listed if r["LogicalResourceId"] == "OrdersApiFunction"
        )
        say("  updating with OrderDeadlineSeconds=1800")
        cfn.update_stack(
            StackName=stack_id,
            TemplateBody=body,
            Parameters=parameters(stage, {"OrderDeadlineSeconds": "1800"}),
            Capabilities=CAPABILITIES,
        )
        wait(cfn, stack_id, "UPDATE")
        env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
        if str(env.get("ORDER_DEADLINE_SECONDS")) != "1800":
            raise Refused(f"update: orders-api's ORDER_DEADLINE_SECONDS is {env.get('ORDER_DEADLINE_SECONDS')!r}, not 1800")
        say("  UPDATE_COMPLETE: orders-api has ORDER_DEADLINE_SECONDS=1800")
    finally:
        cfn.delete_stack(StackName=stack_id)
        deleted = wait(cfn, stack_id, "DELETE")
        say(f"  {deleted}")
        kept = retained(c, cfn_template, listed)
    if kept:
        say(f"  kept by DeletionPolicy: Retain, as a real deletion keeps them: {len(kept)} tables (removed now)")
    return f"{len(resources)} of {len(resources)} resources created, updated and deleted"


def retained(c, cfn_template, listed):
    """The tables the deletion kept, checked present and then deleted."""
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in listed}
    kept = []
    for rid, r in cfn_template["Resources"].items():
        if r.get("DeletionPolicy") != "Retain" or rid not in physical:
            continue
        if r["Type"] == "AWS::Lambda::Version":
            continue  # SAM keeps published versions on purpose; they go with their function
        if r["Type"] != "AWS::DynamoDB::Table":
            raise Refused(f"delete: {rid} ({r['Type']}) is retained; the rehearsal only knows retained tables")
        try:
            c.ddb.describe_table(TableName=physical[rid])
        except ClientError:
            raise Refused(f"delete: {rid} has DeletionPolicy: Retain but its table {physical[rid]} is gone")
        c.ddb.delete_table(TableName=physical[rid])
        kept.append(rid)
    return kept


def mutants(cfn_template):
    """Broken templates, each of which a deploy must refuse."""
    def with_(mutate):
        t = copy.deepcopy(cfn_template)
        mutate(t["Resources"])
        return t

    def dangling(res):
        q = res["NotifierQueue"]["Properties"]
        q["RedrivePolicy"]["deadLetterTargetArn"] = {"Fn::GetAtt": ["NoSuchDeadLetterQueue", "Arn"]}

    def cycle(res):
        res["NotifierQueue"]["DependsOn"] = "NotifierDLQ"
        res["NotifierDLQ"]["DependsOn"] = "NotifierQueue"

    def ref_to_nothing(res):
        res["OrdersApiFunction"]["Properties"]["Environment"]["Variables"]["TABLE_NAME"] = {"Ref": "NoSuchTable"}

    return [
        ("a dead-letter queue that does not exist", with_(dangling)),
        ("two resources that depend on each other", with_(cycle)),
        ("a reference to nothing", with_(ref_to_nothing)),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template")
    ap.add_argument("--endpoint-url", required=True)
    ap.add_argument("--stage", default="rehearsal")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    c = clients(args.endpoint_url)
    cfn_template = template_policy.cloudformation(template_policy.load(args.template))
    try:
        summary = rehearse(c, cfn_template, args.stage)
    except Refused as e:
        print(f"deploy rehearsal failed: {e}", file=sys.stderr)
        return 1
    print(f"deploy rehearsal: {summary}")
    if not args.self_test:
        return 0
    failed = False
    for i, (what, broken) in enumerate(mutants(cfn_template)):
        try:
            rehearse(c, broken, f"{args.stage}-m{i}", quiet=True)
        except Refused as e:
            print(f"  mutant: {what}: refused: {str(e).splitlines()[0]}")
            continue
        print(f"  mutant: {what}: NOT refused", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
