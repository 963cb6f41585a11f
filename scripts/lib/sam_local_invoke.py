"""The real `sam local invoke`, run on four functions against a stack on moto: an HTTP
function with a token (catalog-api: `PUT /products/MUG-01` as a merchant, the product stored;
the token's issuer is served here, where the container fetches its keys; then the same
function behind `sam local start-api` answers `GET /products/MUG-01` with it), an SQS
function (event-archiver: the sample event archived in the ops table), the saga on an event
for an order it does not know (parked in its DLQ with the reason), and a scheduled function
(queue-monitor: reads that DLQ's depth). Each effect is checked on the endpoint, and each
invocation's output is read, since `sam local invoke` exits 0 when the function failed.

    python scripts/lib/sam_local_invoke.py --bazaar target/debug/bazaar
    python scripts/lib/sam_local_invoke.py --bazaar target/debug/bazaar --every-function

`--every-function` (not part of scripts/test: about 15 s per function) then invokes every
function of the template on its first sample event and reports what each answered: that it
starts (its settings and secrets read on the endpoint) and handles the event.

Needs a Docker engine (`docker info` answers). SAM asks for the image
public.ecr.aws/lambda/provided:al2023-x86_64; where it is not there and cannot be pulled
(no registry but the package ones), a stand-in is built under that name from this machine's
C library and loader (and a static busybox, which SAM's image build runs `mv` and `chmod`
with), and the run says so. Function binaries are the debug builds of their crates, put
where SAM mounts a function's code (`bootstrap` in its CodeUri).
"""

import argparse
import base64
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import boto3

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = "public.ecr.aws/lambda/provided:al2023-x86_64"
LIBS = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib64/ld-linux-x86-64.so.2"]
# SAM runs the image with this environment set by the real base image.
IMAGE_ENV = [
    "ENV LANG=C.UTF-8 TZ=:/etc/localtime PATH=/usr/local/bin:/usr/bin:/bin LD_LIBRARY_PATH=/lib64:/var/runtime:/var/task LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime",
    "WORKDIR /var/task",
    "LABEL bazaar.stand-in=true",
]
FUNCTIONS = {
    # logical id: (crate, event)
    "CatalogApiFunction": ("catalog-api", "events/catalog-api.put-product.json"),
    "EventArchiverFunction": ("event-archiver", "events/event-archiver.sqs.json"),
    "OrdersSagaFunction": ("orders-saga", "events/orders-saga.sqs.json"),
    "QueueMonitorFunction": ("queue-monitor", "events/queue-monitor.schedule.json"),
}


def run(cmd, **kw):
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def docker_answers():
    return shutil.which("docker") is not None and run(["docker", "info"]).returncode == 0


def ensure_image():
    """The base image SAM asks for: present, pulled, or a stand-in built here."""
    present = run(["docker", "image", "inspect", "-f", '{{ index .Config.Labels "bazaar.stand-in" }}', IMAGE])
    if present.returncode == 0:
        # A stand-in built by an earlier run is still a stand-in.
        return "stand-in" if present.stdout.strip() == "true" else "present"
    if run(["docker", "pull", IMAGE]).returncode == 0:
        return "pulled"
    busybox = shutil.which("busybox")
    if not busybox or "not a dynamic executable" not in (lambda r: r.stdout + r.stderr)(run(["ldd", busybox])):
        sys.exit("no static busybox to build the stand-in image with (apt-get install busybox-static)")
    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "rootfs.tar")
        with tarfile.open(archive, "w") as tar:
            for d in ["var/task", "var/runtime", "opt", "tmp", "etc", "bin", "lib64", "lib/x86_64-linux-gnu"]:
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            for lib in LIBS:
                tar.add(os.path.realpath(lib), arcname=lib.lstrip("/"))
            tar.add(busybox, arcname="bin/busybox")
            for tool in ["sh", "mv", "chmod", "cp", "rm", "ls", "cat"]:
                link = tarfile.TarInfo(f"bin/{tool}")
                link.type = tarfile.SYMTYPE
                link.linkname = "busybox"
                tar.addfile(link)
            for name, text in [("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")]:
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        cmd = ["docker", "import"]
        for change in IMAGE_ENV:
            cmd += ["-c", change]
        r = run(cmd + [archive, IMAGE])
        if r.returncode != 0:
            sys.exit(f"building the stand-in image failed: {r.stderr}")
    return "stand-in"


def bridge_address():
    """Where containers reach the host: the docker0 bridge's address."""
    r = run(["ip", "-4", "-o", "addr", "show", "docker0"])
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", r.stdout)
    if not m:
        sys.exit(f"no docker0 bridge address: {r.stdout or r.stderr}")
    return m.group(1)


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, proc, log):
    import urllib.request
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"moto_server stopped:\n{open(log).read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"moto_server did not answer at {url}")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """A token issuer for the HTTP function: an RSA key whose JWKS (and an empty revocation
    list) is served on `host:port`, where the function's container fetches it, as it
    fetches the identity service's on AWS."""

    def __init__(self, host, port):
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        length = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")
        jwks = {"keys": [{"kty": "RSA", "kid": "sam-local-test", "alg": "RS256", "use": "sig",
                          "n": b64url(length(numbers.n)), "e": b64url(length(numbers.e))}]}
        pages = {"/.well-known/jwks.json": jwks, "/.well-known/revoked-sessions.json": {"sessions": []}}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                page = pages.get(self.path)
                body = json.dumps(page).encode()
                self.send_response(200 if page is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, issuer, audience, subject, roles):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": "sam-local-test"}
        claims = {"iss": issuer, "sub": subject, "aud": audience, "roles": roles, "iat": now,
                  "nbf": now, "exp": now + 900, "jti": f"sam-{now}", "sid": f"sam-{now}"}
        signing = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{b64url(signature)}"

    def stop(self):
        self.server.shutdown()


def start_api_get(api, log, url):
    """GET `url` once `sam local start-api` listens (the first call also starts a container)."""
    import urllib.error
    import urllib.request
    deadline = time.time() + 120
    while time.time() < deadline:
        if api.poll() is not None:
            sys.exit(f"sam local start-api stopped:\n{open(log).read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            time.sleep(0.5)
    sys.exit(f"sam local start-api did not answer at {url}:\n{open(log).read()[-2000:]}")


def invoke(work, env_file, logical_id, event):
    """`sam local invoke`; returns (response, output). SAM's exit code is not enough."""
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "sam"), "local", "invoke", logical_id,
        "-t", os.path.join(work, "template.yaml"),
        # The project's samconfig.toml gives the rest (the host gateway, the architecture,
        # no image pull), as it does for a developer: a setting missing there fails here.
        "--config-file", os.path.join(ROOT, "samconfig.toml"),
        "--env-vars", env_file,
        "--event", event if os.path.isabs(event) else os.path.join(ROOT, event),
    ]
    r = run(cmd, cwd=work, env=dict(os.environ, SAM_CLI_TELEMETRY="0"))
    out = r.stdout + r.stderr
    if r.returncode != 0:
        raise SystemExit(f"sam local invoke {logical_id} exited {r.returncode}:\n{out[-3000:]}")
    # The response is the last line of standard output (`null` for a scheduled function).
    lines = r.stdout.strip().splitlines()
    try:
        response = json.loads(lines[-1]) if lines else None
        answered = bool(lines)
    except ValueError:
        answered = False
    if not answered or "errorMessage" in json.dumps(response) or "errorType" in out:
        raise SystemExit(f"sam local invoke {logical_id}: the function failed:\n{out[-3000:]}")
    return response, out


def template_functions():
    """Every function of the template: logical id -> crate (its `Binary`)."""
    out, current = {}, None
    with open(os.path.join(ROOT, "template.yaml")) as f:
        for line in f:
            m = re.match(r"^  ([A-Za-z0-9]+Function):\s*$", line)
            if m:
                current = m.group(1)
            m = re.match(r"^        Binary: ([a-z0-9-]+)\s*$", line)
            if m and current:
                out[current] = m.group(1)
    return out


def first_event(crate):
    names = sorted(n for n in os.listdir(os.path.join(ROOT, "events")) if n.startswith(crate + "."))
    return os.path.join("events", names[0]) if names else None


def every_function(work, env_file):
    """Each function on its first sample event: what it answered."""
    failed = 0
    for logical, crate in sorted(template_functions().items()):
        event = first_event(crate)
        if event is None:
            print(f"  {logical:<28} no sample event")
            continue
        try:
            response, out = invoke(work, env_file, logical, event)
        except SystemExit as e:
            print(f"  {logical:<28} {os.path.basename(event):<44} sam failed: {str(e)[:200]}")
            failed += 1
            continue
        if "cannot start" in out or "errorType" in out and response is None:
            what = "DID NOT START: " + next((l for l in out.splitlines() if "cannot start" in l), out[-200:])
            failed += 1
        elif isinstance(response, dict) and "statusCode" in response:
            what = f"answered HTTP {response['statusCode']}"
        elif isinstance(response, dict) and "batchItemFailures" in response:
            what = f"handled the batch ({len(response['batchItemFailures'])} failed items)"
        elif response is None:
            what = "ran (no response: a schedule)"
        else:
            what = f"answered {json.dumps(response)[:80]}"
        print(f"  {logical:<28} {os.path.basename(event):<44} {what}")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bazaar", required=True, help="the bazaar toolbelt binary")
    ap.add_argument("--every-function", action="store_true",
                    help="then invoke every function on its first sample event")
    args = ap.parse_args()
    if not docker_answers():
        print("NOT CHECKED: sam local invoke (no Docker engine answers; .ci/run starts one)")
        return 0
    image = ensure_image()
    print(f"base image {IMAGE}: {image}" + (" (a stand-in built from this machine's C library and loader, not AWS's image)" if image == "stand-in" else ""))

    crates = sorted(set(template_functions().values())) if args.every_function else [c for c, _ in FUNCTIONS.values()]
    r = run(["cargo", "build", "--quiet"] + sum((["-p", c] for c in crates), []), cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"building the functions failed:\n{r.stderr}")

    host = bridge_address()
    port = free_port(host)
    endpoint = f"http://{host}:{port}"
    work = tempfile.mkdtemp(prefix="bazaar-sam-")
    log = os.path.join(work, "moto.log")
    moto = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts/lib/moto_server.py"), "-H", host, "-p", str(port)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"{endpoint}/moto-api/", moto, log)
        creds = dict(AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        os.environ.update(creds)
        with open(os.path.join(ROOT, "template.yaml")) as f:
            template = f.read()
        template = re.sub(r"CodeUri: functions/([a-z0-9-]+)/?", r"CodeUri: code/\1", template)
        with open(os.path.join(work, "template.yaml"), "w") as f:
            f.write(template)
        for crate in crates:
            os.makedirs(os.path.join(work, "code", crate))
            shutil.copy(os.path.join(ROOT, "target/debug", crate), os.path.join(work, "code", crate, "bootstrap"))
        env_file = os.path.join(work, "env.json")
        r = run([args.bazaar, "--template", os.path.join(ROOT, "template.yaml"), "--endpoint-url", endpoint,
                 "sam", "env-vars", "--out", env_file, "--function-endpoint-url", f"http://host.docker.internal:{port}"])
        if r.returncode != 0:
            sys.exit(f"bazaar sam env-vars failed:\n{r.stderr}")
        aws = dict(endpoint_url=endpoint, region_name="us-east-1")
        ddb, sqs = boto3.client("dynamodb", **aws), boto3.client("sqs", **aws)

        # An HTTP function with a token: its issuer's keys served where the container
        # fetches them, the token signed by that issuer, the product stored on the endpoint.
        issuer_port = free_port(host)
        issuer = Issuer(host, issuer_port)
        with open(env_file) as f:
            env = json.load(f)
        catalog = env["CatalogApiFunction"]
        catalog["JWT_ISSUER"] = f"http://host.docker.internal:{issuer_port}"
        with open(env_file, "w") as f:
            json.dump(env, f)
        token = issuer.token(catalog["JWT_ISSUER"], catalog["JWT_AUDIENCE"], "merchant-1", ["merchant"])
        with open(os.path.join(ROOT, FUNCTIONS["CatalogApiFunction"][1])) as f:
            request = json.load(f)
        request["headers"]["authorization"] = f"Bearer {token}"
        event_file = os.path.join(work, "put-product.json")
        with open(event_file, "w") as f:
            json.dump(request, f)
        # First with the signature spoiled: refused, so the one that passes was checked.
        spoiled = dict(request, headers=dict(request["headers"], authorization=f"Bearer {token[:-6]}AAAAAA"))
        spoiled_file = os.path.join(work, "put-product-spoiled.json")
        with open(spoiled_file, "w") as f:
            json.dump(spoiled, f)
        try:
            refused, out = invoke(work, env_file, "CatalogApiFunction", spoiled_file)
            if not (isinstance(refused, dict) and refused.get("statusCode") == 401):
                sys.exit(f"catalog-api: a spoiled token was not refused: {refused}\n{out[-2000:]}")
            response, out = invoke(work, env_file, "CatalogApiFunction", event_file)
        finally:
            issuer.stop()
        if not (isinstance(response, dict) and 200 <= response.get("statusCode", 0) < 300):
            sys.exit(f"catalog-api: PUT {request['rawPath']} answered {response}:\n{out[-2000:]}")
        items = ddb.scan(TableName=catalog["TABLE_NAME"])["Items"]
        if not any("MUG-01" in json.dumps(i) for i in items):
            sys.exit(f"catalog-api: no MUG-01 in {catalog['TABLE_NAME']}: {items[:3]}")
        # The same function behind `sam local start-api`: the public route reads the product.
        api_port = free_port("127.0.0.1")
        api_log = os.path.join(work, "start-api.log")
        api = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "sam"), "local", "start-api",
             "-t", os.path.join(work, "template.yaml"),
             "--config-file", os.path.join(ROOT, "samconfig.toml"), "--env-vars", env_file,
             "--host", "127.0.0.1", "--port", str(api_port)],
            cwd=work, stdout=open(api_log, "w"), stderr=subprocess.STDOUT,
            env=dict(os.environ, SAM_CLI_TELEMETRY="0"),
        )
        try:
            got = start_api_get(api, api_log, f"http://127.0.0.1:{api_port}/products/MUG-01")
        finally:
            api.terminate()
            try:
                api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                api.kill()
        status, body = got
        if status != 200 or json.loads(body).get("sku") != "MUG-01":
            sys.exit(f"sam local start-api: GET /products/MUG-01 answered {status} {body[:300]}")
        print("  CatalogApiFunction behind sam local start-api: GET /products/MUG-01 answered 200 with the product")
        print(f"  CatalogApiFunction: PUT /products/MUG-01 with a token answered {response['statusCode']} (401 with a spoiled signature); the product is in {catalog['TABLE_NAME']}")

        # An SQS function: the sample event archived.
        _, event = FUNCTIONS["EventArchiverFunction"]
        response, _ = invoke(work, env_file, "EventArchiverFunction", event)
        assert response == {"batchItemFailures": []}, response
        items = ddb.scan(TableName="bazaar-dev-ops")["Items"]
        # The archive keeps each envelope once, under its flow (CORR#<correlation id>).
        archived = [i for i in items if i["pk"]["S"].startswith("CORR#") and "envelope" in i]
        if not archived:
            sys.exit(f"event-archiver: nothing archived in bazaar-dev-ops: {items[:3]}")
        print(f"  EventArchiverFunction: archived on the endpoint ({len(items)} items in bazaar-dev-ops)")

        # The saga on an order it does not know: parked in its DLQ with the reason.
        response, out = invoke(work, env_file, "OrdersSagaFunction", FUNCTIONS["OrdersSagaFunction"][1])
        assert response == {"batchItemFailures": []}, response
        dlq = sqs.get_queue_url(QueueName="bazaar-dev-orders-saga-dlq")["QueueUrl"]
        parked = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0)
        messages = parked.get("Messages", [])
        if len(messages) != 1:
            sys.exit(f"orders-saga: {len(messages)} messages in its DLQ, not 1:\n{out[-2000:]}")
        print(f"  OrdersSagaFunction: parked in bazaar-dev-orders-saga-dlq ({json.dumps(messages[0].get('MessageAttributes', {}))[:120]})")

        # A scheduled function: reads that depth.
        response, out = invoke(work, env_file, "QueueMonitorFunction", FUNCTIONS["QueueMonitorFunction"][1])
        depths = [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"Bazaar/Queues"' in l]
        saga = [d for d in depths if d.get("queue") == "OrdersSagaDLQ"]
        if not saga or saga[0].get("visible", 0) + saga[0].get("in_flight", 0) < 1:
            sys.exit(f"queue-monitor: no depth of 1 for OrdersSagaDLQ:\n{out[-2000:]}")
        print(f"  QueueMonitorFunction: read {len(depths)} queue depths, OrdersSagaDLQ {saga[0].get('visible')} visible")
        print(f"sam local invoke and start-api: 4 functions (HTTP with a token, SQS, DLQ, schedule) ran in Docker ({'stand-in image' if image == 'stand-in' else IMAGE}) against moto; effects checked")
        if args.every_function:
            failed = every_function(work, env_file)
            n = len(template_functions())
            print(f"every function on its first sample event: {n - failed} of {n} started and answered")
            return 1 if failed else 0
        return 0
    finally:
        moto.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
