"""Drives `secret-rotator serve` with the official Huawei Cloud Python SDK (huaweicloudsdkcsms), signing
with AK/SK: every operation serve offers, a database rotation on a real PostgreSQL through the targets file
(CSMS_DB_INSTANCE), scheduled deletion and restore, and the error answers (unknown secret type, missing
secret, pending deletion, a rotation on a server without a targets file: CSMS_ENDPOINT_NO_TARGETS). Prints
one line per step; exits non-zero on the first mismatch."""
import json
import os
import sys
import time

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

# Rotate a database secret on a real PostgreSQL through the targets file (InstanceId -> database): RotateSecret
# answers at once with the task, the task reaches SUCCESS, the new version is SYSCURRENT.
db_user = os.environ["CSMS_DB_USER"]
cred = json.dumps({"username": db_user, "password": os.environ["CSMS_DB_PASSWORD"]})
cfg = json.dumps({"InstanceId": os.environ["CSMS_DB_INSTANCE"], "SecretSubType": "SingleUser"})
client.create_secret(CreateSecretRequest(body=CreateSecretRequestBody(name="sdk-db", secret_type="RDS-FG", secret_string=cred, rotation_config=cfg)))
r = client.rotate_secret(RotateSecretRequest(secret_name="sdk-db"))
check(r.version_id == "v2" and r.secret_name == "sdk-db" and len(r.rotation_task_id) == 36, "rotate_secret answers with the task")
task_id = r.rotation_task_id


def wait_task(task_id):
    for _ in range(300):
        t = client.list_secret_task(ListSecretTaskRequest(task_id=task_id))
        if t.tasks and t.tasks[0].task_status != "PROCESSING":
            return t.tasks[0]
        time.sleep(0.1)
    check(False, f"task {task_id} still PROCESSING after 30 s")


t = wait_task(task_id)
check(t.task_status == "SUCCESS" and t.operate_type == "ROTATE" and t.secret_name == "sdk-db", f"the rotation task reaches SUCCESS ({t.task_status} {t.task_error_code})")
v = client.show_secret_version(ShowSecretVersionRequest(secret_name="sdk-db", version_id="v2"))
new = json.loads(v.version.secret_string)
check(new["username"] == db_user and new["password"] != os.environ["CSMS_DB_PASSWORD"] and v.version.version_metadata.version_stages == ["SYSCURRENT"], "show the rotated version")
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



def fails(call, status, code, what):
    try:
        call()
    except exceptions.ClientRequestException as e:
        check(e.status_code == status and e.error_code == code, f"{what} ({e.status_code} {e.error_code})")
        return e
    check(False, f"{what}: no error")


# The other calls: list, update, stages, passwords, tasks by status.
r = client.list_secrets(ListSecretsRequest(limit=10))
check([x.name for x in r.secrets] == ["sdk-common", "sdk-db"] and r.page_info.current_count == 2, "list_secrets")
r = client.update_secret(UpdateSecretRequest(secret_name="sdk-common", body=UpdateSecretRequestBody(description="updated by the SDK")))
check(r.secret.description == "updated by the SDK", "update_secret")
r = client.update_secret_stage(UpdateSecretStageRequest(secret_name="sdk-common", stage_name="canary", body=UpdateSecretStageRequestBody(version_id="v1")))
check(r.stage.name == "canary" and r.stage.version_id == "v1", "update_secret_stage")
client.delete_secret_stage(DeleteSecretStageRequest(secret_name="sdk-common", stage_name="canary"))
fails(lambda: client.show_secret_stage(ShowSecretStageRequest(secret_name="sdk-common", stage_name="canary")), 404, "CSMS.0005", "delete_secret_stage: the stage is gone")
fails(lambda: client.delete_secret_stage(DeleteSecretStageRequest(secret_name="sdk-common", stage_name="SYSCURRENT")), 400, "CSMS.0105", "a system stage cannot be deleted")
r = client.generate_random_password(GenerateRandomPasswordRequest(body=CreatePasswordRequestBody(length=24, exclude_punctuation=True)))
check(len(r.password) == 24 and r.password.isalnum(), "generate_random_password")
r = client.list_secret_task(ListSecretTaskRequest(status="SUCCESS"))
check(r.total == 1 and r.tasks[0].secret_name == "sdk-db", "list_secret_task by status")

# Scheduled deletion (DeleteSecretForSchedule) and RestoreSecret.
before_ms = int(time.time() * 1000)
r = client.delete_secret_for_schedule(DeleteSecretForScheduleRequest(secret_name="sdk-db", body=DeleteSecretForScheduleRequestBody(recovery_window_in_days=7)))
week = 7 * 86400 * 1000
check(r.secret.state == "PENDING_DELETE" and before_ms + week <= r.secret.scheduled_delete_time < before_ms + week + 60000, "delete_secret_for_schedule (7 days)")
s = client.show_secret(ShowSecretRequest(secret_name="sdk-db"))
check(s.secret.state == "PENDING_DELETE" and s.secret.scheduled_delete_time == r.secret.scheduled_delete_time, "show_secret of a secret pending deletion")
fails(lambda: client.show_secret_version(ShowSecretVersionRequest(secret_name="sdk-db", version_id="latest")), 400, "CSMS.0103", "its value cannot be read")
fails(lambda: client.list_secret_versions(ListSecretVersionsRequest(secret_name="sdk-db")), 400, "CSMS.0103", "its versions cannot be listed")
fails(lambda: client.rotate_secret(RotateSecretRequest(secret_name="sdk-db")), 400, "CSMS.0103", "it cannot be rotated")
fails(lambda: client.delete_secret_for_schedule(DeleteSecretForScheduleRequest(secret_name="sdk-db", body=DeleteSecretForScheduleRequestBody(recovery_window_in_days=7))), 400, "CSMS.0107", "a second schedule")
r = client.restore_secret(RestoreSecretRequest(secret_name="sdk-db"))
check(r.secret.state == "ENABLED" and not r.secret.scheduled_delete_time, "restore_secret")
v = client.show_secret_version(ShowSecretVersionRequest(secret_name="sdk-db", version_id="latest"))
check(v.version.version_metadata.id == "v2", "the restored secret is readable")
fails(lambda: client.restore_secret(RestoreSecretRequest(secret_name="sdk-db")), 400, "CSMS.0108", "restoring a secret not pending deletion")
r = client.delete_secret_for_schedule(DeleteSecretForScheduleRequest(secret_name="sdk-common", body=DeleteSecretForScheduleRequestBody()))
check(r.secret.scheduled_delete_time >= before_ms + 30 * 86400 * 1000, "the default window is 30 days")
client.restore_secret(RestoreSecretRequest(secret_name="sdk-common"))
fails(lambda: client.delete_secret_for_schedule(DeleteSecretForScheduleRequest(secret_name="sdk-common", body=DeleteSecretForScheduleRequestBody(recovery_window_in_days=31))), 400, "CSMS.0002", "a window over 30 days")

# More refusals: an unknown secret type; a database secret naming an instance the targets file lacks; a
# database rotation on a server without a targets file.
fails(lambda: client.create_secret(CreateSecretRequest(body=CreateSecretRequestBody(name="sdk-bad", secret_type="ORACLE", secret_string="x"))), 400, "CSMS.0002", "an unknown secret type")
cfg_unknown = json.dumps({"InstanceId": "no-such-instance", "SecretSubType": "SingleUser"})
client.create_secret(CreateSecretRequest(body=CreateSecretRequestBody(name="sdk-db-unknown", secret_type="RDS-FG", secret_string=cred, rotation_config=cfg_unknown)))
e = fails(lambda: client.rotate_secret(RotateSecretRequest(secret_name="sdk-db-unknown")), 400, "CSMS.0906", "rotation for an instance the targets file lacks")
check("no-such-instance" in e.error_msg, "the error names the instance")
bare = CsmsClient.new_builder().with_http_config(config).with_credentials(creds).with_endpoints([os.environ["CSMS_ENDPOINT_NO_TARGETS"]]).build()
bare.create_secret(CreateSecretRequest(body=CreateSecretRequestBody(name="sdk-db", secret_type="RDS-FG", secret_string=cred, rotation_config=cfg)))
try:
    bare.rotate_secret(RotateSecretRequest(secret_name="sdk-db"))
    check(False, "a rotation without a targets file must fail")
except exceptions.ClientRequestException as e:
    check(e.status_code == 400 and e.error_code == "CSMS.0905" and "--targets-file" in e.error_msg, f"a rotation without a targets file names the flag ({e.status_code} {e.error_code})")

# DeleteSecret: at once.
client.delete_secret(DeleteSecretRequest(secret_name="sdk-db-unknown"))
fails(lambda: client.show_secret(ShowSecretRequest(secret_name="sdk-db-unknown")), 404, "CSMS.0005", "delete_secret")

print("sdk interop: all steps passed", flush=True)
