"""Drives `secret-rotator serve` with the official Huawei Cloud Python SDK (huaweicloudsdkcsms), signing
with AK/SK. Prints one line per step; exits non-zero on the first mismatch."""
import json
import os
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcsms.v1 import *  # noqa: F401,F403 - the SDK's own layout

endpoint = os.environ["CSMS_ENDPOINT"]
project = os.environ["CSMS_PROJECT"]
creds = BasicCredentials(os.environ["CSMS_AK"], os.environ["CSMS_SK"], project)
config = HttpConfig.get_default_config()
config.retry_times = 0
client = CsmsClient.new_builder().with_http_config(config).with_credentials(creds).with_endpoints([endpoint]).build()


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


# Create a COMMON secret and a second version.
r = client.create_secret(CreateSecretRequest(body=CreateSecretRequestBody(name="sdk-common", secret_string="first-value")))
check(r.secret.name == "sdk-common" and r.secret.secret_type == "COMMON", "create_secret")
r = client.create_secret_version(CreateSecretVersionRequest(secret_name="sdk-common", body=CreateSecretVersionRequestBody(secret_string="second-value")))
check(r.version_metadata.id == "v2" and r.version_metadata.version_stages == ["SYSCURRENT"], "create_secret_version")
r = client.show_secret_version(ShowSecretVersionRequest(secret_name="sdk-common", version_id="latest"))
check(r.version.secret_string == "second-value" and r.version.version_metadata.id == "v2", "show_secret_version latest")
r = client.show_secret_stage(ShowSecretStageRequest(secret_name="sdk-common", stage_name="SYSPREVIOUS"))
check(r.stage.version_id == "v1", "show_secret_stage SYSPREVIOUS")
r = client.list_secret_versions(ListSecretVersionsRequest(secret_name="sdk-common"))
check([v.id for v in r.version_metadatas] == ["v2", "v1"], "list_secret_versions")

# Rotate a database secret, show the new version, list the task.
cred = json.dumps({"username": "app", "password": "initial-pw"})
cfg = json.dumps({"InstanceId": "rds-1", "SecretSubType": "SingleUser"})
client.create_secret(CreateSecretRequest(body=CreateSecretRequestBody(name="sdk-db", secret_type="RDS-FG", secret_string=cred, rotation_config=cfg)))
r = client.rotate_secret(RotateSecretRequest(secret_name="sdk-db"))
check(r.version_id == "v2" and r.secret_name == "sdk-db" and len(r.rotation_task_id) == 36, "rotate_secret")
task_id = r.rotation_task_id
v = client.show_secret_version(ShowSecretVersionRequest(secret_name="sdk-db", version_id="v2"))
new = json.loads(v.version.secret_string)
check(new["username"] == "app" and new["password"] != "initial-pw" and v.version.version_metadata.version_stages == ["SYSCURRENT"], "show the rotated version")
t = client.list_secret_task(ListSecretTaskRequest(secret_name="sdk-db"))
check(t.total == 1 and t.tasks[0].task_id == task_id and t.tasks[0].task_status == "SUCCESS", "list_secret_task")
s = client.show_secret(ShowSecretRequest(secret_name="sdk-db"))
check(s.secret.secret_type == "RDS-FG" and s.secret.rotation_time is not None, "show_secret after rotation")

# RotateSecret refuses COMMON secrets with the SDK's error.
try:
    client.rotate_secret(RotateSecretRequest(secret_name="sdk-common"))
    check(False, "rotate of a COMMON secret must fail")
except exceptions.ClientRequestException as e:
    check(e.status_code == 400 and e.error_code == "CSMS.0002", f"rotate COMMON refused ({e.status_code} {e.error_code})")

# An unknown secret is the SDK's 404.
try:
    client.show_secret(ShowSecretRequest(secret_name="missing"))
    check(False, "show of a missing secret must fail")
except exceptions.ClientRequestException as e:
    check(e.status_code == 404 and e.error_code == "CSMS.0005", "missing secret is 404 CSMS.0005")

# The SDK's own signer on a raw write: sent as signed it is accepted; replayed with another body, claiming the
# first body's hash in an unsigned X-Sdk-Content-Sha256, it is refused; UNSIGNED-PAYLOAD on a write is refused.
import hashlib
import urllib.error
import urllib.request
from urllib.parse import urlparse

from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer


def signed_write(body, content_type="application/json;charset=UTF-8"):
    u = urlparse(endpoint)
    req = SdkRequest(method="POST", schema=u.scheme, host=u.netloc,
                     resource_path=f"/v1/{project}/secrets/sdk-common/versions",
                     query_params=[], header_params={"Content-Type": content_type, "X-Project-Id": project}, body=body)
    return Signer(creds).sign(req)


def send(req, body, extra=None):
    headers = dict(req.header_params)
    headers.update(extra or {})
    r = urllib.request.Request(endpoint + req.uri, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


first = json.dumps({"secret_string": "signed-value"}).encode()
req = signed_write(first)
status, _ = send(req, first)
check(status == 200, f"a write signed by the SDK's signer is accepted ({status})")
other = json.dumps({"secret_string": "forged-value"}).encode()
status, body = send(req, other, {"X-Sdk-Content-Sha256": hashlib.sha256(first).hexdigest()})
check(status == 401 and body.get("error", {}).get("error_code") == "CSMS.0401",
      f"the same signature with another body and an unsigned content hash is refused ({status})")
latest = client.show_secret_version(ShowSecretVersionRequest(secret_name="sdk-common", version_id="latest"))
check(latest.version.secret_string == "signed-value", "the forged body wrote nothing")
req = signed_write(first, content_type="text/plain")
status, _ = send(req, first)
check(status == 401 and req.header_params.get("X-Sdk-Content-Sha256") == "UNSIGNED-PAYLOAD",
      f"UNSIGNED-PAYLOAD on a write is refused ({status})")

print("sdk interop: all steps passed", flush=True)
