"""Judges recorded exchanges with the Hallmark API against its own OpenAPI
document, with openapi-spec-validator and openapi-core (tools we did not
write). Usage: openapi_check.py SPEC.json EXCHANGES.json
EXCHANGES is a list of {method, path, query, request_body, status,
content_type, body}. Prints one line per problem; exits 1 if any."""
import json
import sys

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate

spec = json.load(open(sys.argv[1]))
validate(spec)
# RFC 9457 problem details are JSON (openapi-core knows application/json only).
api = OpenAPI.from_dict(
    spec, config=Config(extra_media_type_deserializers={"application/problem+json": json.loads})
)
bad = 0
for x in json.load(open(sys.argv[2])):
    req = MockRequest(
        "http://127.0.0.1",
        x["method"].lower(),
        "/api/v1" + x["path"],
        args=x.get("query") or {},
        data=(x.get("request_body") or "").encode(),
        content_type="application/json",
    )
    resp = MockResponse(x["body"].encode(), status_code=x["status"], content_type=x["content_type"])
    try:
        api.validate_response(req, resp)
    except Exception as e:  # noqa: BLE001 - report every kind of mismatch
        bad += 1
        detail = getattr(e, "__cause__", None) or e
        print(f"{x['method']} {x['path']} -> {x['status']} {x['content_type']}: {type(e).__name__}: {detail}")
print(f"{bad} of {len(json.load(open(sys.argv[2])))} exchanges do not match the document")
sys.exit(1 if bad else 0)
