#!/usr/bin/env bash
# Tests for scripts/gen-openapi.py. Run from anywhere: bash scripts/test-gen-openapi.sh
#
#  1. generates openapi.yaml, regenerates it and checks the output is byte-identical (idempotence);
#  2. `--check` passes on the fresh file and fails (exit 1) on a stale copy (done in a temp dir);
#  3. checks the contract: exact path/method set, every $ref resolves, Twilio components copied
#     unchanged, `default` error responses, /healthz unauthenticated;
#  4. validates the document as OpenAPI 3.0 with openapi-spec-validator when it is installed
#     (skipped with a notice otherwise; e.g. `pip install openapi-spec-validator` in a venv).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

echo "== generate (twice) =="
python3 scripts/gen-openapi.py
first="$(sha256sum openapi.yaml)"
python3 scripts/gen-openapi.py
second="$(sha256sum openapi.yaml)"
if [[ "$first" != "$second" ]]; then
  echo "FAIL: second run changed openapi.yaml" >&2
  exit 1
fi

echo "== --check on fresh output =="
python3 scripts/gen-openapi.py --check

echo "== --check on stale output (temp copy) =="
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/scripts" "$tmp/reference"
cp scripts/gen-openapi.py "$tmp/scripts/"
cp -r reference/twilio-oai "$tmp/reference/"
cp openapi.yaml "$tmp/openapi.yaml"
echo "# hand edit" >>"$tmp/openapi.yaml"
set +e
python3 "$tmp/scripts/gen-openapi.py" --check >/dev/null 2>"$tmp/check.err"
rc=$?
set -e
if [[ $rc -ne 1 ]] || ! grep -q "out of date" "$tmp/check.err"; then
  echo "FAIL: --check on a stale file exited $rc (want 1 with a message)" >&2
  cat "$tmp/check.err" >&2
  exit 1
fi
rm "$tmp/openapi.yaml"
set +e
python3 "$tmp/scripts/gen-openapi.py" --check >/dev/null 2>&1
rc=$?
set -e
if [[ $rc -ne 1 ]]; then
  echo "FAIL: --check with openapi.yaml missing exited $rc (want 1)" >&2
  exit 1
fi

echo "== contract checks =="
python3 - <<'PY'
import json
import yaml

doc = yaml.safe_load(open("openapi.yaml", encoding="utf-8"))
src = json.load(open("reference/twilio-oai/twilio_verify_v2.json", encoding="utf-8"))

expected = {
    "/v2/Services": {"get", "post"},
    "/v2/Services/{Sid}": {"get", "post", "delete"},
    "/v2/Services/{ServiceSid}/Entities": {"get", "post"},
    "/v2/Services/{ServiceSid}/Entities/{Identity}": {"get", "delete"},
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Factors": {"get", "post"},
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Factors/{Sid}": {"get", "post", "delete"},
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges": {"get", "post"},
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges/{Sid}": {"get", "post"},
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges/{ChallengeSid}/Notifications": {"post"},
    "/v2/Services/{ServiceSid}/AccessTokens": {"post"},
    "/v2/Services/{ServiceSid}/AccessTokens/{Sid}": {"get"},
    "/v2/Services/{ServiceSid}/Webhooks": {"get", "post"},
    "/v2/Services/{ServiceSid}/Webhooks/{Sid}": {"get", "post", "delete"},
    "/v2/Forms/{FormType}": {"get"},
    "/healthz": {"get"},
}
methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
errors = []

assert doc["openapi"] == "3.0.1"
assert doc["info"]["title"] == "verify-push-emulator" and doc["info"]["version"] == "0.1.0"
assert doc["info"]["license"]["name"] == "MIT OR Apache-2.0"
assert doc["servers"] == [{"url": "http://127.0.0.1:8080"}]
assert doc["security"] == [{"accountSid_authToken": []}]
assert doc["components"]["securitySchemes"] == {"accountSid_authToken": {"type": "http", "scheme": "basic"}}

got = {p: {k for k in item if k in methods} for p, item in doc["paths"].items()}
if got != expected:
    errors.append(f"path/method set differs: got {got}")

for path, item in doc["paths"].items():
    extra = set(item) - methods - {"description", "parameters"}
    if extra:
        errors.append(f"{path}: unexpected path-level keys {sorted(extra)}")
    for m in set(item) & methods:
        op = item[m]
        if path.startswith("/v2/"):
            twilio_op = dict(src["paths"][path][m])
            responses = dict(op["responses"])
            twilio_responses = twilio_op.pop("responses")
            if "default" not in twilio_responses:
                d = responses.pop("default", None)
                if d is None or d["content"]["application/json"]["schema"] != {"$ref": "#/components/schemas/emulator.error"}:
                    errors.append(f"{m.upper()} {path}: missing default emulator.error response")
            if responses != twilio_responses or {k: v for k, v in op.items() if k != "responses"} != twilio_op:
                errors.append(f"{m.upper()} {path}: operation differs from Twilio's")
        else:
            if op.get("tags") != ["emulator"]:
                errors.append(f"{m.upper()} {path}: emulator route without tags [emulator]")

health = doc["paths"]["/healthz"]["get"]
assert health["operationId"] == "FetchHealth" and health["security"] == []
assert set(health["responses"]) == {"200", "503"}

# Every $ref resolves inside the document.
def refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for v in node.values():
            yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)

for ref in set(refs(doc)):
    target = doc
    try:
        assert ref.startswith("#/")
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
    except (AssertionError, KeyError, TypeError):
        errors.append(f"unresolved $ref {ref}")

# Copied components are identical to Twilio's; the rest are emulator.* schemas.
for section, comps in doc["components"].items():
    for name, value in comps.items():
        if section == "schemas" and name.startswith("emulator."):
            continue
        if src["components"].get(section, {}).get(name) != value:
            errors.append(f"components.{section}.{name} differs from Twilio's")

err = doc["components"]["schemas"]["emulator.error"]
assert set(err["required"]) == {"code", "message", "more_info", "status"} and err["additionalProperties"] is False

if errors:
    raise SystemExit("FAIL:\n  " + "\n  ".join(errors))
print(f"ok: {sum(len(v) for v in got.values())} operations, {len(doc['components']['schemas'])} schemas")
PY

echo "== OpenAPI 3.0 validation =="
if python3 -c "import openapi_spec_validator" 2>/dev/null; then
  python3 -c '
import yaml
from openapi_spec_validator import OpenAPIV30SpecValidator, validate
validate(yaml.safe_load(open("openapi.yaml", encoding="utf-8")), cls=OpenAPIV30SpecValidator)
print("ok: openapi.yaml is a valid OpenAPI 3.0 document")
'
else
  echo "SKIP: openapi-spec-validator not installed (pip install openapi-spec-validator in a venv)"
fi

echo "ALL OK"
