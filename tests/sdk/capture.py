"""Two halves of a byte-for-byte comparison with the Rust `csms` client (tests/sdk_interop.rs):

1. sends four calls with the official Python SDK (huaweicloudsdkcsms, AK/SK signing) to a capturing
   listener, which records the request line and headers as they arrive;
2. signs each request the Rust client sent (read from RUST_REQUESTS: method, path, query, the headers it
   signed with their values, body) with the SDK's own signer, and prints the Authorization values as JSON.
"""
import json
import os
from urllib.parse import parse_qsl

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkcsms.v1 import *  # noqa: F401,F403 - the SDK's own layout

endpoint = os.environ["CSMS_ENDPOINT"]
project = os.environ["CSMS_PROJECT"]
name = os.environ["CSMS_SECRET"]
creds = BasicCredentials(os.environ["CSMS_AK"], os.environ["CSMS_SK"], project)
config = HttpConfig.get_default_config()
config.retry_times = 0
client = CsmsClient.new_builder().with_http_config(config).with_credentials(creds).with_endpoints([endpoint]).build()

client.rotate_secret(RotateSecretRequest(secret_name=name))
client.list_secret_task(ListSecretTaskRequest(secret_name=name, limit=10))
client.show_secret_version(ShowSecretVersionRequest(secret_name=name, version_id="v1"))
client.create_secret_version(CreateSecretVersionRequest(
    secret_name=name, body=CreateSecretVersionRequestBody(secret_string="sdk-capture-value")))

with open(os.environ["RUST_REQUESTS"]) as f:
    rust = json.load(f)
signed = []
for r in rust:
    req = SdkRequest(method=r["method"], schema="http", host=r["signed_headers"]["host"],
                     resource_path=r["path"], query_params=parse_qsl(r["query"], keep_blank_values=True),
                     header_params=dict(r["signed_headers"]), body=r["body"].encode())
    Signer(creds).sign(req)
    signed.append(req.header_params["Authorization"])
print(json.dumps({"rust_signed_by_sdk": signed}), flush=True)
