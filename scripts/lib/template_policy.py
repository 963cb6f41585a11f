"""The template's security and reliability rules, checked on what CloudFormation receives:
the SAM template transformed offline (samtranslator, as `sam deploy` does), so that the
resources SAM generates (roles, event source mappings, API stages) are checked too.

    python scripts/lib/template_policy.py template.yaml            # check; exit 1 on a violation
    python scripts/lib/template_policy.py template.yaml --self-test  # each rule fails on a mutant

Rules:
  - no IAM statement with a wildcard action; no AWSLambdaSQSQueueExecutionRole (Resource "*");
  - every queue, topic and table encrypted;
  - every queue that is not itself a dead-letter queue has a redrive policy; every SNS
    subscription has a redrive policy (its own DLQ);
  - every table has point-in-time recovery;
  - every SQS event source mapping reports batch item failures and caps its concurrency;
  - every HTTP API stage throttles its routes;
  - every function is published under an alias with a CodeDeploy deployment group whose
    alarms stop and roll back a deployment, and every SQS trigger calls the alias.
"""

import copy
import logging
import json
import re
import os
import sys

# samtranslator reads the region for ARNs from the environment; offline, any region does.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
logging.disable(logging.WARNING)  # samtranslator warns of metrics it keeps to itself

import yaml
from samtranslator.translator.transform import transform


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)

PARAMETERS = {
    "AgoraUrl": "https://agora.example",
    "SoukUrl": "https://souk.example",
    "PaymentProviderUrl": "https://provider.example",
}

# A variable whose name says it holds a secret; it may only name one (`<NAME>_SECRET_ARN`).
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|(^|_)KEY($|_)|APIKEY")


class _NoNetworkPolicies:
    """samtranslator asks IAM for managed policy ARNs; the names are enough offline."""

    def load(self):
        return {}


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=_Loader)


def cloudformation(sam):
    sam = copy.deepcopy(sam)
    # What `sam package` does before the transform: local code becomes an S3 object.
    for rid, r in sam.get("Resources", {}).items():
        if r.get("Type") == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = f"s3://bazaar-artifacts/{rid}.zip"
    return transform(
        sam,
        dict(PARAMETERS, **{"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}),
        _NoNetworkPolicies(),
    )


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _ref_name(v):
    """The logical id a Ref / GetAtt points at, if any."""
    if isinstance(v, dict):
        if "Ref" in v:
            return v["Ref"]
        if "Fn::GetAtt" in v:
            return _as_list(v["Fn::GetAtt"])[0]
    return None


def violations(cfn):
    out = []
    resources = cfn.get("Resources", {})
    by_type = {}
    for rid, r in resources.items():
        by_type.setdefault(r.get("Type"), []).append((rid, r.get("Properties", {}) or {}))

    def statements(doc):
        return _as_list((doc or {}).get("Statement", []))

    for rid, p in by_type.get("AWS::IAM::Role", []):
        for arn in p.get("ManagedPolicyArns", []) or []:
            if "AWSLambdaSQSQueueExecutionRole" in json.dumps(arn):
                out.append(f"{rid}: attaches AWSLambdaSQSQueueExecutionRole (allows every queue)")
        for pol in p.get("Policies", []) or []:
            for st in statements(pol.get("PolicyDocument")):
                for action in _as_list(st.get("Action", [])):
                    if isinstance(action, str) and "*" in action:
                        out.append(f"{rid}: a statement with the wildcard action {action!r}")
    for rid, p in by_type.get("AWS::IAM::Policy", []) + by_type.get("AWS::IAM::ManagedPolicy", []):
        for st in statements(p.get("PolicyDocument")):
            for action in _as_list(st.get("Action", [])):
                if isinstance(action, str) and "*" in action:
                    out.append(f"{rid}: a statement with the wildcard action {action!r}")

    queues = by_type.get("AWS::SQS::Queue", [])
    dlqs = set()
    for _, p in queues:
        target = (p.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        if _ref_name(target):
            dlqs.add(_ref_name(target))
    for rid, p in by_type.get("AWS::SNS::Subscription", []):
        target = (p.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        if _ref_name(target):
            dlqs.add(_ref_name(target))
        else:
            out.append(f"{rid}: an SNS subscription without a redrive policy (DLQ)")
    for rid, p in queues:
        if p.get("SqsManagedSseEnabled") is not True and not p.get("KmsMasterKeyId"):
            out.append(f"{rid}: a queue without encryption")
        if rid not in dlqs and not p.get("RedrivePolicy"):
            out.append(f"{rid}: a queue without a redrive policy (DLQ)")
    for rid, p in by_type.get("AWS::SNS::Topic", []):
        if not p.get("KmsMasterKeyId"):
            out.append(f"{rid}: a topic without encryption")
    for rid, p in by_type.get("AWS::DynamoDB::Table", []):
        if (p.get("SSESpecification") or {}).get("SSEEnabled") is not True:
            out.append(f"{rid}: a table without encryption (SSESpecification)")
        pitr = p.get("PointInTimeRecoverySpecification") or {}
        if pitr.get("PointInTimeRecoveryEnabled") is not True:
            out.append(f"{rid}: a table without point-in-time recovery")

    sqs_arns = {rid for rid, _ in queues}
    for rid, p in by_type.get("AWS::Lambda::EventSourceMapping", []):
        if _ref_name(p.get("EventSourceArn")) not in sqs_arns:
            continue
        if "ReportBatchItemFailures" not in (p.get("FunctionResponseTypes") or []):
            out.append(f"{rid}: an SQS trigger without ReportBatchItemFailures")
        if not (p.get("ScalingConfig") or {}).get("MaximumConcurrency"):
            out.append(f"{rid}: an SQS trigger without ScalingConfig.MaximumConcurrency")

    # Tracing: every function traced actively, with a role that may write its segments, and
    # every topic passing the trace header on.
    roles = dict(by_type.get("AWS::IAM::Role", []))
    for rid, p in by_type.get("AWS::Lambda::Function", []):
        if (p.get("TracingConfig") or {}).get("Mode") != "Active":
            out.append(f"{rid}: a function without active tracing")
        role = roles.get(_ref_name(p.get("Role")) or "")
        if role is not None:
            text = json.dumps(role)
            if "xray:PutTraceSegments" not in text and "AWSXrayWriteOnlyAccess" not in text:
                out.append(f"{rid}: a traced function whose role may not write trace segments")
    for rid, p in by_type.get("AWS::SNS::Topic", []):
        if p.get("TracingConfig") != "Active":
            out.append(f"{rid}: a topic without active tracing")

    # Gradual deploys: every function published under an alias that CodeDeploy shifts, with
    # alarms that stop and roll a deployment back; its triggers call the alias.
    aliases = {}
    for rid, p in by_type.get("AWS::Lambda::Alias", []):
        aliases[_ref_name(p.get("FunctionName"))] = rid
    groups = dict(by_type.get("AWS::CodeDeploy::DeploymentGroup", []))
    for rid, p in by_type.get("AWS::Lambda::Function", []):
        alias = aliases.get(rid)
        if alias is None:
            out.append(f"{rid}: a function without an alias (AutoPublishAlias)")
            continue
        update = (resources[alias].get("UpdatePolicy") or {}).get("CodeDeployLambdaAliasUpdate") or {}
        group = groups.get(_ref_name(update.get("DeploymentGroupName")) or "")
        if group is None:
            out.append(f"{rid}: a function deployed without a deployment preference")
            continue
        alarms = group.get("AlarmConfiguration") or {}
        if not alarms.get("Enabled") or not alarms.get("Alarms"):
            out.append(f"{rid}: a deployment without alarms to roll it back")
        rollback = group.get("AutoRollbackConfiguration") or {}
        if not rollback.get("Enabled") or "DEPLOYMENT_STOP_ON_ALARM" not in (rollback.get("Events") or []):
            out.append(f"{rid}: a deployment that does not roll back on an alarm")
    alias_ids = set(aliases.values())
    for rid, p in by_type.get("AWS::Lambda::EventSourceMapping", []):
        if _ref_name(p.get("FunctionName")) not in alias_ids:
            out.append(f"{rid}: a trigger that calls the function, not its alias")

    # Secrets: none in a function's environment, each function may read its own alone.
    out.extend(_secret_violations(cfn, by_type, roles))

    for rid, p in by_type.get("AWS::ApiGatewayV2::Stage", []):
        s = p.get("DefaultRouteSettings") or {}
        if not s.get("ThrottlingBurstLimit") or not s.get("ThrottlingRateLimit"):
            out.append(f"{rid}: an HTTP API stage without throttling")
    if not by_type.get("AWS::ApiGatewayV2::Stage") and by_type.get("AWS::ApiGatewayV2::Api"):
        out.append("HTTP APIs without a stage to carry throttling")
    return out


def _secret_violations(cfn, by_type, roles):
    """No secret in an environment: no variable that refers to a NoEcho parameter or resolves
    a dynamic reference to Secrets Manager or an SSM SecureString (CloudFormation would write
    the plaintext into the function's configuration), and no variable named like a secret
    unless it is `<NAME>_SECRET_ARN` naming a secret of the template. A role reads with
    `secretsmanager:GetSecretValue` exactly the secrets its function's environment names."""
    out = []
    noecho = {k for k, v in (cfn.get("Parameters") or {}).items()
              if str(v.get("NoEcho", "")).lower() == "true"}
    secrets = {rid for rid, _ in by_type.get("AWS::SecretsManager::Secret", [])}

    def refs(value):
        if isinstance(value, dict):
            if "Ref" in value:
                yield value["Ref"]
            for v in value.values():
                yield from refs(v)
        elif isinstance(value, list):
            for v in value:
                yield from refs(v)
        elif isinstance(value, str):
            for name in re.findall(r"\$\{([A-Za-z0-9]+)\}", value):
                yield name

    for rid, p in by_type.get("AWS::Lambda::Function", []):
        variables = ((p.get("Environment") or {}).get("Variables") or {})
        named = set()
        for name, value in variables.items():
            text = json.dumps(value)
            if re.search(r"\{\{resolve:(secretsmanager|ssm-secure):", text):
                out.append(f"{rid}: {name} resolves a secret into the environment")
                continue
            leaked = [r for r in refs(value) if r in noecho]
            if leaked:
                out.append(f"{rid}: {name} puts the NoEcho parameter {leaked[0]} in the environment")
                continue
            if name.endswith("_SECRET_ARN"):
                target = _ref_name(value)
                if target not in secrets:
                    out.append(f"{rid}: {name} does not name a secret of the template")
                else:
                    named.add(target)
            elif SECRET_WORDS.search(name) and not name.endswith(("_ARN", "_NAME", "_URL")):
                out.append(f"{rid}: {name} looks like a secret held in the environment (name it by ARN, {name}_SECRET_ARN)")
        role = roles.get(_ref_name(p.get("Role")) or "")
        readable = set()
        for pol in (role or {}).get("Policies", []) or []:
            for st in _as_list((pol.get("PolicyDocument") or {}).get("Statement", [])):
                actions = _as_list(st.get("Action", []))
                if not any(isinstance(a, str) and a.startswith("secretsmanager:") for a in actions):
                    continue
                for res in _as_list(st.get("Resource", [])):
                    target = _ref_name(res)
                    if target in secrets:
                        readable.add(target)
                    else:
                        out.append(f"{rid}: its role reads secrets beyond its own ({json.dumps(res)})")
        for extra in sorted(readable - named):
            out.append(f"{rid}: its role may read {extra}, which its environment does not name")
        for missing in sorted(named - readable):
            out.append(f"{rid}: its environment names {missing}, which its role may not read")
    return out


def _mutants(sam):
    """Each one removes one protection; each must be caught."""
    r = sam["Resources"]

    def first(kind, pred=lambda p: True):
        return next(k for k, v in r.items() if v["Type"] == kind and pred(v.get("Properties", {})))

    def m(fn):
        t = copy.deepcopy(sam)
        fn(t["Resources"])
        return t

    q = first("AWS::SQS::Queue", lambda p: "RedrivePolicy" in p)
    sub = first("AWS::SNS::Subscription")
    table = first("AWS::DynamoDB::Table")
    topic = first("AWS::SNS::Topic")
    sqs_fn = next(k for k, v in r.items() if v["Type"] == "AWS::Serverless::Function"
                  and any(e["Type"] == "SQS" for e in (v["Properties"].get("Events") or {}).values()))
    api = first("AWS::Serverless::HttpApi")
    role = first("AWS::IAM::Role")

    def no_role(res):
        props = res[sqs_fn]["Properties"]
        props.pop("Role", None)
        props["Policies"] = []

    def sqs_event(res):
        return next(e for e in res[sqs_fn]["Properties"]["Events"].values() if e["Type"] == "SQS")["Properties"]

    def xray_removed(res):
        role = _ref_name(res[sqs_fn]["Properties"]["Role"])
        for pol in res[role]["Properties"]["Policies"]:
            pol["PolicyDocument"]["Statement"] = [
                st for st in pol["PolicyDocument"]["Statement"]
                if "xray:PutTraceSegments" not in st.get("Action", [])
            ]

    # A function with SAM policies that reads one secret.
    env_fn = next(k for k, v in r.items() if v["Type"] == "AWS::Serverless::Function"
                  and "Policies" in v["Properties"]
                  and any(n.endswith("_SECRET_ARN") for n in
                          ((v["Properties"].get("Environment") or {}).get("Variables") or {})))

    def env_of(res):
        return res[env_fn]["Properties"]["Environment"]["Variables"]

    def policies_of(res):
        return res[env_fn]["Properties"]["Policies"]

    def other_secret(res):
        own = {_ref_name(v) for v in env_of(res).values()}
        return next(k for k, v in res.items() if v["Type"] == "AWS::SecretsManager::Secret" and k not in own)

    def wildcard(res):
        res[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]["Action"] = ["dynamodb:*"]

    return {
        "a queue's DLQ removed": m(lambda res: res[q]["Properties"].pop("RedrivePolicy")),
        "a queue's encryption removed": m(lambda res: res[q]["Properties"].pop("SqsManagedSseEnabled")),
        "a subscription's DLQ removed": m(lambda res: res[sub]["Properties"].pop("RedrivePolicy")),
        "a table's PITR removed": m(lambda res: res[table]["Properties"].pop("PointInTimeRecoverySpecification")),
        "a table's encryption removed": m(lambda res: res[table]["Properties"].pop("SSESpecification")),
        "a topic's encryption removed": m(lambda res: res[topic]["Properties"].pop("KmsMasterKeyId")),
        "an SQS function on SAM's generated role": m(no_role),
        "ReportBatchItemFailures removed": m(lambda res: sqs_event(res).pop("FunctionResponseTypes")),
        "ScalingConfig removed": m(lambda res: sqs_event(res).pop("ScalingConfig")),
        "an HTTP API's throttling removed": m(lambda res: res[api]["Properties"].pop("DefaultRouteSettings")),
        "a wildcard action": m(wildcard),
        "a topic's tracing removed": m(lambda res: res[topic]["Properties"].pop("TracingConfig")),
        "a function's tracing passive": m(lambda res: res[sqs_fn]["Properties"].__setitem__("Tracing", "PassThrough")),
        "a role that may not write traces": m(xray_removed),
        "a function's deployment preference removed": m(lambda res: res[sqs_fn]["Properties"].pop("DeploymentPreference")),
        "a deployment's alarms removed": m(lambda res: res[sqs_fn]["Properties"]["DeploymentPreference"].pop("Alarms")),
        "functions published without an alias": _without_alias(sam),
        "a secret back in a NoEcho parameter and the environment": _leaky_parameter(sam, env_fn),
        "a secret resolved into the environment": m(lambda res: env_of(res).__setitem__(
            "WEBHOOK_SECRET", "{{resolve:secretsmanager:bazaar-dev-payments-webhook-secret}}")),
        "a secret's value written into the environment": m(lambda res: env_of(res).__setitem__(
            "PROVIDER_API_KEY", "sk_live_0123456789")),
        "a function allowed to read another's secret": m(lambda res: policies_of(res).append(
            {"Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                            "Resource": {"Ref": other_secret(res)}}]})),
        "a function allowed to read every secret": m(lambda res: policies_of(res).append(
            {"Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}]})),
    }


def _leaky_parameter(sam, fn):
    t = copy.deepcopy(sam)
    t["Parameters"]["LeakyApiKey"] = {"Type": "String", "NoEcho": True, "Default": "sk_live_0123456789"}
    t["Resources"][fn]["Properties"]["Environment"]["Variables"]["PARTNER_CREDENTIALS"] = {"Ref": "LeakyApiKey"}
    return t


def _without_alias(sam):
    t = copy.deepcopy(sam)
    t["Globals"]["Function"].pop("AutoPublishAlias", None)
    for v in t["Resources"].values():
        if v["Type"] == "AWS::Serverless::Function":
            v["Properties"].pop("AutoPublishAlias", None)
            v["Properties"].pop("DeploymentPreference", None)
    return t


def main():
    path = sys.argv[1]
    sam = load(path)
    found = violations(cloudformation(sam))
    for v in found:
        print(f"  policy: {v}")
    if found:
        print(f"{len(found)} violations in {path}")
        return 1
    print(f"{path}: every policy rule holds")
    if "--self-test" in sys.argv:
        failed = 0
        for name, mutant in _mutants(sam).items():
            caught = violations(cloudformation(mutant))
            print(f"  mutant: {name}: {'caught: ' + caught[0] if caught else 'NOT CAUGHT'}")
            failed += not caught
        if failed:
            print(f"{failed} mutants were not caught")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
