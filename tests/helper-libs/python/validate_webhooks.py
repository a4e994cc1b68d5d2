"""Validates recorded webhook callbacks with twilio-python's RequestValidator.

stdin: {"auth_token": "...", "requests": [{"url": "...", "params": {"k": "v"}, "signature": "..."}]}
stdout: a JSON list of booleans, one per request.
"""
import json
import sys

from twilio.request_validator import RequestValidator

data = json.load(sys.stdin)
validator = RequestValidator(data["auth_token"])
print(json.dumps([validator.validate(r["url"], r["params"], r["signature"]) for r in data["requests"]]))
