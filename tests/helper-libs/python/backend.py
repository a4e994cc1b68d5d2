"""A customer backend built on twilio-python, one step per invocation, for the e2e tests that
drive a device (verify-push-client) against it. Prints one JSON object per call.

    backend.py setup IDENTITY                       -> {"service_sid", "token"}
    backend.py challenge SERVICE IDENTITY FACTOR M  -> {"sid", "status"}
    backend.py challenges SERVICE IDENTITY FACTOR   -> {"pending": [...], "approved": [...], "denied": [...]}
    backend.py challenge-status SERVICE IDENTITY S  -> {"status", "date_responded"}
    backend.py factor SERVICE IDENTITY FACTOR       -> {"status", "notification_platform"}
    backend.py credential apn CERT_FILE KEY_FILE    -> {"sid", "type", "sandbox"}   (Notify v1)
    backend.py credential fcm SERVICE_ACCOUNT_FILE  -> {"sid", "type", "sandbox"}
    backend.py use-credential SERVICE apn|fcm CR    -> {"push"}

Environment: VERIFY_PUSH_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN.
"""
import json
import os
import sys

from twilio.rest import Client


def client():
    c = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
    c.verify.base_url = os.environ["VERIFY_PUSH_URL"]
    c.notify.base_url = os.environ["VERIFY_PUSH_URL"]
    return c


def main(argv):
    twilio = client()
    verify = twilio.verify.v2
    command, args = argv[0], argv[1:]
    if command == "setup":
        (identity,) = args
        service = verify.services.create(friendly_name="Python backend")
        token = verify.services(service.sid).access_tokens.create(
            identity=identity, factor_type="push", factor_friendly_name="Test phone", ttl=300)
        out = {"service_sid": service.sid, "token": token.token}
    elif command == "challenge":
        service, identity, factor, message = args
        c = verify.services(service).entities(identity).challenges.create(
            factor_sid=factor, details_message=message,
            details_fields=[{"label": "Action", "value": "Sign in"}, {"label": "IP", "value": "203.0.113.7"}],
            hidden_details={"ip": "203.0.113.7"})
        out = {"sid": c.sid, "status": c.status}
    elif command == "challenges":
        service, identity, factor = args
        entity = verify.services(service).entities(identity)
        out = {status: [c.sid for c in entity.challenges.list(factor_sid=factor, status=status, page_size=2)]
               for status in ("pending", "approved", "denied")}
    elif command == "challenge-status":
        service, identity, sid = args
        c = verify.services(service).entities(identity).challenges(sid).fetch()
        out = {"status": c.status, "date_responded": c.date_responded and c.date_responded.isoformat()}
    elif command == "factor":
        service, identity, factor = args
        f = verify.services(service).entities(identity).factors(factor).fetch()
        out = {"status": f.status, "notification_platform": f.config.get("notification_platform")}
    elif command == "credential":
        kind, *files = args
        texts = [open(f, encoding="utf-8").read() for f in files]
        if kind == "apn":
            cred = twilio.notify.v1.credentials.create(type="apn", certificate=texts[0], private_key=texts[1], sandbox=False)
        else:
            cred = twilio.notify.v1.credentials.create(type="fcm", secret=texts[0])
        out = {"sid": cred.sid, "type": cred.type, "sandbox": cred.sandbox}
    elif command == "use-credential":
        service, kind, sid = args
        options = {"push_apn_credential_sid": sid} if kind == "apn" else {"push_fcm_credential_sid": sid}
        out = {"push": verify.services(service).update(**options).push}
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
