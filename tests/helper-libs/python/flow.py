"""End-to-end flow through the official twilio-python helper library.

Drives a running verify-push-emulator exactly as an unchanged backend would:
the real `twilio` package (pinned in requirements.txt), with only the Verify
domain's base URL pointed at the emulator
(docs/protocol/rest-api.md#pointing-the-helper-libraries-at-the-emulator).

Run:  tests/helper-libs/python/.venv/bin/python tests/helper-libs/python/flow.py

Environment (all required):
  VERIFY_PUSH_URL                       emulator base URL, e.g. http://127.0.0.1:43123
  TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN main account
  VERIFY_PUSH_API_KEY_SID, VERIFY_PUSH_API_KEY_SECRET   API key (SK…) of the main account
  VERIFY_PUSH_OTHER_ACCOUNT_SID, VERIFY_PUSH_OTHER_AUTH_TOKEN   a second account
  FIXTURE_SERVICE_SID, FIXTURE_IDENTITY, FIXTURE_FACTOR_SID     a VERIFIED push factor
  FIXTURE_PUBLIC_KEYS                   comma-separated P-256 public keys (base64 SPKI DER), >= 6

Prints one line per check and ends with `python flow: N passed, M failed`.
Exit status is 0 only when every check passed and nothing raised.
"""

import base64
import json
import os
import secrets
import sys
import traceback
from datetime import datetime, timedelta, timezone

try:
    from twilio.base.exceptions import TwilioException, TwilioRestException
    from twilio.rest import Client
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(
        f"python flow: cannot import twilio ({exc}); run scripts/setup-helper-libs.sh "
        "and use tests/helper-libs/python/.venv/bin/python"
    )

REQUIRED_ENV = (
    "VERIFY_PUSH_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "VERIFY_PUSH_API_KEY_SID",
    "VERIFY_PUSH_API_KEY_SECRET",
    "VERIFY_PUSH_OTHER_ACCOUNT_SID",
    "VERIFY_PUSH_OTHER_AUTH_TOKEN",
    "FIXTURE_SERVICE_SID",
    "FIXTURE_IDENTITY",
    "FIXTURE_FACTOR_SID",
    "FIXTURE_PUBLIC_KEYS",
)

SPKI_P256_PREFIX = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"


def fatal(message):
    print(f"python flow: {message}", file=sys.stderr)
    sys.exit(2)


def load_env():
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        fatal(f"missing environment variable(s): {', '.join(missing)}")
    env = {name: os.environ[name] for name in REQUIRED_ENV}
    env["VERIFY_PUSH_URL"] = env["VERIFY_PUSH_URL"].rstrip("/")
    keys = [k.strip() for k in env["FIXTURE_PUBLIC_KEYS"].split(",") if k.strip()]
    if len(keys) < 6 or len(set(keys)) != len(keys):
        fatal("FIXTURE_PUBLIC_KEYS must hold at least 6 distinct keys")
    bad = [k for k in keys if not k.startswith(SPKI_P256_PREFIX)]
    if bad:
        fatal(f"FIXTURE_PUBLIC_KEYS holds a non-P-256 SPKI key: {bad[0][:20]}…")
    env["KEYS"] = keys
    return env


# --------------------------------------------------------------------------- checks


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def eq(self, name, actual, expected):
        return self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")

    def sid(self, name, value, prefix):
        ok = (
            isinstance(value, str)
            and len(value) == 34
            and value.startswith(prefix)
            and all(c in "0123456789abcdefABCDEF" for c in value[2:])
        )
        return self.check(name, ok, f"expected {prefix} + 32 hex digits, got {value!r}")

    def date(self, name, value):
        # twilio-python returns the raw string when the value is not YYYY-MM-DDTHH:MM:SSZ
        return self.check(
            name, isinstance(value, datetime), f"expected a YYYY-MM-DDTHH:MM:SSZ date, got {value!r}"
        )

    def rest_error(self, name, status, code, fn):
        """fn() must raise TwilioRestException with exactly this HTTP status and Twilio code."""
        want = f"TwilioRestException HTTP {status} code {code}"
        try:
            fn()
        except TwilioRestException as e:
            return self.check(
                name,
                e.status == status and e.code == code,
                f"expected {want}, got HTTP {e.status} code {e.code} ({e.msg})",
            )
        except Exception as e:  # noqa: BLE001 - any other exception type is a failure
            return self.check(name, False, f"expected {want}, got {type(e).__name__}: {e}")
        return self.check(name, False, f"expected {want}, but the call succeeded")

    def section(self, title, fn, *args):
        print(f"--- {title}", flush=True)
        try:
            fn(self, *args)
        except Exception as e:  # noqa: BLE001 - report, count, and go on with the next section
            self.failed += 1
            print(f"FAIL {title}: raised {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stdout)


def explicit_pages(first_page, limit=1000):
    """Follow next_page() until None; returns a list of record lists, one per page."""
    pages = []
    page = first_page
    while page is not None:
        pages.append(list(page))
        if len(pages) >= limit:
            raise RuntimeError(f"more than {limit} pages: next_page_url never ends")
        page = page.next_page()
    return pages


def seen_once(sids_listed, wanted):
    """Names of wanted SIDs that are not listed exactly once."""
    return [s for s in wanted if sids_listed.count(s) != 1]


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --------------------------------------------------------------------------- setup

RUN = secrets.token_hex(4)


def make_client(env, username, password, account_sid=None):
    client = Client(username, password, account_sid) if account_sid else Client(username, password)
    client.verify.base_url = env["VERIFY_PUSH_URL"]
    return client


def new_service(client, label):
    return client.verify.v2.services.create(friendly_name=f"py {label} {RUN}")


# --------------------------------------------------------------------------- services


def services_flow(c, env, client):
    services = client.verify.v2.services
    name = f"py svc {RUN}"
    svc = services.create(
        friendly_name=name,
        push_include_date=False,
        totp_issuer="Flow Issuer",
        totp_time_step=30,
        totp_code_length=6,
        totp_skew=1,
    )
    c.sid("service create: sid is VA…", svc.sid, "VA")
    c.eq("service create: friendly_name", svc.friendly_name, name)
    c.eq("service create: account_sid", svc.account_sid, env["TWILIO_ACCOUNT_SID"])
    c.eq("service create: push.include_date is false", (svc.push or {}).get("include_date"), False)
    c.eq(
        "service create: totp object",
        {k: (svc.totp or {}).get(k) for k in ("issuer", "time_step", "code_length", "skew")},
        {"issuer": "Flow Issuer", "time_step": 30, "code_length": 6, "skew": 1},
    )
    c.date("service create: date_created parses", svc.date_created)

    fetched = services(svc.sid).fetch()
    c.eq("service fetch: sid", fetched.sid, svc.sid)
    c.eq("service fetch: friendly_name", fetched.friendly_name, name)
    c.eq("service fetch: totp.issuer", (fetched.totp or {}).get("issuer"), "Flow Issuer")

    new_name = f"py svc2 {RUN}"
    updated = services(svc.sid).update(friendly_name=new_name, push_include_date=True)
    c.eq("service update: friendly_name changed", updated.friendly_name, new_name)
    c.eq("service update: push.include_date is true", (updated.push or {}).get("include_date"), True)
    c.eq("service update: totp.issuer kept", (updated.totp or {}).get("issuer"), "Flow Issuer")
    c.check(
        "service update: date_updated >= date_created",
        isinstance(updated.date_updated, datetime)
        and isinstance(updated.date_created, datetime)
        and updated.date_updated >= updated.date_created,
        f"date_created={updated.date_created!r} date_updated={updated.date_updated!r}",
    )
    refetched = services(svc.sid).fetch()
    c.eq("service fetch after update: friendly_name", refetched.friendly_name, new_name)

    extra = [new_service(client, f"list{i}") for i in range(5)]
    created = [svc.sid] + [s.sid for s in extra]

    listed = [s.sid for s in services.list(page_size=2)]
    missing = seen_once(listed, created)
    c.check("service list(page_size=2): every created SID exactly once", not missing, f"not exactly once: {missing}")

    pages = explicit_pages(services.page(page_size=2))
    paged = [s.sid for page in pages for s in page]
    c.check(
        "service page(page_size=2): pages hold at most 2 and there are >= 3",
        len(pages) >= 3 and all(len(p) <= 2 for p in pages),
        f"page sizes {[len(p) for p in pages]}",
    )
    missing = seen_once(paged, created)
    c.check("service next_page(): every created SID exactly once", not missing, f"not exactly once: {missing}")

    c.eq("service delete: returns True", services(svc.sid).delete(), True)
    c.rest_error("service fetch after delete: 404 20404", 404, 20404, lambda: services(svc.sid).fetch())
    c.rest_error(
        "service create with 33-char friendly_name: 400 60200",
        400,
        60200,
        lambda: services.create(friendly_name="x" * 33),
    )
    for s in extra:
        c.eq(f"service cleanup: delete {s.sid}", services(s.sid).delete(), True)


# --------------------------------------------------------------------------- entities


def entities_flow(c, env, client):
    svc = new_service(client, "ent")
    entities = client.verify.v2.services(svc.sid).entities
    identity = f"py-ent-{RUN}-0"
    ent = entities.create(identity=identity)
    c.sid("entity create: sid is YE…", ent.sid, "YE")
    c.eq("entity create: identity", ent.identity, identity)
    c.eq("entity create: service_sid", ent.service_sid, svc.sid)
    c.date("entity create: date_created parses", ent.date_created)
    c.rest_error(
        "entity create duplicate: 409 60301", 409, 60301, lambda: entities.create(identity=identity)
    )
    fetched = entities(identity).fetch()
    c.eq("entity fetch: sid", fetched.sid, ent.sid)
    c.eq("entity fetch: identity", fetched.identity, identity)

    created = [ent.sid] + [entities.create(identity=f"py-ent-{RUN}-{i}").sid for i in range(1, 5)]
    pages = explicit_pages(entities.page(page_size=2))
    c.eq("entity page(page_size=2): page sizes for 5 entities", [len(p) for p in pages], [2, 2, 1])
    paged = [e.sid for page in pages for e in page]
    missing = seen_once(paged, created)
    c.check("entity pages: every created SID exactly once", not missing, f"not exactly once: {missing}")
    listed = [e.sid for e in entities.list(page_size=2)]
    c.eq("entity list(page_size=2): the 5 entities", sorted(listed), sorted(created))

    c.eq("entity delete: returns True", entities(identity).delete(), True)
    c.rest_error("entity fetch after delete: 404 20404", 404, 20404, lambda: entities(identity).fetch())
    c.rest_error(
        "entity create with identity 'bad id!': 400 60200",
        400,
        60200,
        lambda: entities.create(identity="bad id!"),
    )
    c.eq("entity cleanup: delete service", client.verify.v2.services(svc.sid).delete(), True)


# --------------------------------------------------------------------------- factors


def push_factor(entity, key, name, token=None):
    return entity.new_factors.create(
        friendly_name=name,
        factor_type="push",
        binding_alg="ES256",
        binding_public_key=key,
        config_app_id="com.example.app",
        config_notification_platform="fcm",
        config_notification_token=token or ("t" * 40),
        config_sdk_version="0.9.0",
        metadata={"os": "Android"},
    )


def factors_flow(c, env, client):
    keys = env["KEYS"][:3]  # node uses KEYS[3:6]; distinct bindings never collide
    svc = new_service(client, "fac")
    service = client.verify.v2.services(svc.sid)
    identity = f"py-fac-{RUN}"
    entity = service.entities(identity)
    c.rest_error(
        "factor entity does not exist yet: 404 20404", 404, 20404, lambda: entity.fetch()
    )

    token = "a" * 40
    f = push_factor(entity, keys[0], "Pixel 8", token)
    c.sid("factor create: sid is YF…", f.sid, "YF")
    c.eq("factor create: status unverified", f.status, "unverified")
    c.eq("factor create: factor_type push", f.factor_type, "push")
    c.eq("factor create: friendly_name", f.friendly_name, "Pixel 8")
    c.eq("factor create: identity", f.identity, identity)
    c.eq("factor create: binding.alg", (f.binding or {}).get("alg"), "ES256")
    c.eq("factor create: binding.public_key", (f.binding or {}).get("public_key"), keys[0])
    config = f.config or {}
    c.eq("factor create: config.notification_platform", config.get("notification_platform"), "fcm")
    c.eq("factor create: config.notification_token", config.get("notification_token"), token)
    c.eq("factor create: config.app_id", config.get("app_id"), "com.example.app")
    c.eq("factor create: config.sdk_version", config.get("sdk_version"), "0.9.0")
    c.eq("factor create: metadata", f.metadata, {"os": "Android"})
    c.date("factor create: date_created parses", f.date_created)

    ent = entity.fetch()
    c.eq("factor create made the entity: identity", ent.identity, identity)
    c.eq("factor create made the entity: sid matches factor.entity_sid", ent.sid, f.entity_sid)

    fetched = entity.factors(f.sid).fetch()
    c.eq("factor fetch: sid", fetched.sid, f.sid)
    c.eq("factor fetch: status unverified", fetched.status, "unverified")
    c.eq("factor fetch: config.notification_platform", (fetched.config or {}).get("notification_platform"), "fcm")
    c.eq("factor fetch: metadata", fetched.metadata, {"os": "Android"})

    created = [f.sid] + [push_factor(entity, keys[i], f"Device {i}").sid for i in (1, 2)]
    pages = explicit_pages(entity.factors.page(page_size=2))
    c.eq("factor page(page_size=2): page sizes for 3 factors", [len(p) for p in pages], [2, 1])
    paged = [x.sid for page in pages for x in page]
    missing = seen_once(paged, created)
    c.check("factor pages: every created SID exactly once", not missing, f"not exactly once: {missing}")
    listed = [x.sid for x in entity.factors.list(page_size=2)]
    c.eq("factor list(page_size=2): the 3 factors", sorted(listed), sorted(created))

    new_token = "b" * 48
    updated = entity.factors(f.sid).update(friendly_name="Pixel 9", config_notification_token=new_token)
    c.eq("factor update: friendly_name changed", updated.friendly_name, "Pixel 9")
    c.eq("factor update: config.notification_token changed", (updated.config or {}).get("notification_token"), new_token)
    c.eq("factor update: still unverified", updated.status, "unverified")
    refetched = entity.factors(f.sid).fetch()
    c.eq("factor fetch after update: friendly_name", refetched.friendly_name, "Pixel 9")

    c.rest_error(
        "challenge on unverified factor: 403 60318",
        403,
        60318,
        lambda: entity.challenges.create(factor_sid=created[1], details_message="Sign in?"),
    )

    c.eq("factor delete: returns True", entity.factors(f.sid).delete(), True)
    c.rest_error("factor fetch after delete: 404 20404", 404, 20404, lambda: entity.factors(f.sid).fetch())

    c.rest_error(
        "factor create with Binding.PublicKey=dGVzdF9rZXk=: 400 60314",
        400,
        60314,
        lambda: push_factor(service.entities(f"py-badkey-{RUN}"), "dGVzdF9rZXk=", "Bad key"),
    )
    c.eq("factor cleanup: delete service", service.delete(), True)


# --------------------------------------------------------------------------- challenges


def challenges_flow(c, env, client):
    entity = client.verify.v2.services(env["FIXTURE_SERVICE_SID"]).entities(env["FIXTURE_IDENTITY"])
    factor_sid = env["FIXTURE_FACTOR_SID"]
    fields = [{"label": "Action", "value": "Sign in"}, {"label": "Location", "value": "Berlin"}]
    hidden = {"ip": "10.0.0.1"}
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=10)
    message = f"Approve sign in {RUN}?"

    ch = entity.challenges.create(
        factor_sid=factor_sid,
        details_message=message,
        details_fields=fields,
        hidden_details=hidden,
        expiration_date=expires,
    )
    c.sid("challenge create: sid is YC…", ch.sid, "YC")
    c.eq("challenge create: status pending", ch.status, "pending")
    c.eq("challenge create: factor_sid", ch.factor_sid, factor_sid)
    c.eq("challenge create: identity", ch.identity, env["FIXTURE_IDENTITY"])
    c.eq("challenge create: factor_type push", ch.factor_type, "push")
    details = ch.details or {}
    c.eq("challenge create: details.message", details.get("message"), message)
    c.eq("challenge create: details.fields", details.get("fields"), fields)
    c.eq("challenge create: hidden_details", ch.hidden_details, hidden)
    c.eq("challenge create: expiration_date", ch.expiration_date, expires)
    c.date("challenge create: date_created parses", ch.date_created)

    fetched = entity.challenges(ch.sid).fetch()
    c.eq("challenge fetch: sid", fetched.sid, ch.sid)
    c.eq("challenge fetch: status pending", fetched.status, "pending")
    c.eq("challenge fetch: details", fetched.details, ch.details)
    c.eq("challenge fetch: hidden_details", fetched.hidden_details, hidden)

    created = [ch.sid]
    for i in range(1, 5):
        created.append(
            entity.challenges.create(factor_sid=factor_sid, details_message=f"{message} #{i}").sid
        )

    pages = explicit_pages(
        entity.challenges.page(factor_sid=factor_sid, status="pending", order="desc", page_size=2)
    )
    c.check(
        "challenge page(desc, page_size=2): pages hold at most 2 and there are >= 3",
        len(pages) >= 3 and all(len(p) <= 2 for p in pages),
        f"page sizes {[len(p) for p in pages]}",
    )
    records = [x for page in pages for x in page]
    desc = [x.sid for x in records]
    missing = seen_once(desc, created)
    c.check("challenge pages desc: all 5 created exactly once", not missing, f"not exactly once: {missing}")
    ours = [s for s in desc if s in created]
    c.eq("challenge pages desc: newest first", ours, list(reversed(created)))
    c.check(
        "challenge pages desc: only pending challenges of the factor",
        all(x.status == "pending" and x.factor_sid == factor_sid for x in records),
        f"got {[(x.sid, x.status, x.factor_sid) for x in records if x.status != 'pending' or x.factor_sid != factor_sid]}",
    )

    asc = [
        x.sid
        for x in entity.challenges.list(factor_sid=factor_sid, status="pending", order="asc", page_size=2)
    ]
    ours_asc = [s for s in asc if s in created]
    c.eq("challenge list asc: oldest first (the reverse of desc)", ours_asc, created)
    missing = seen_once(asc, created)
    c.check("challenge list asc: all 5 created exactly once", not missing, f"not exactly once: {missing}")

    c.rest_error(
        "challenge expiration_date 2 h ahead: 400 60200",
        400,
        60200,
        lambda: entity.challenges.create(
            factor_sid=factor_sid,
            details_message="Too late",
            expiration_date=datetime.now(timezone.utc) + timedelta(hours=2),
        ),
    )
    c.rest_error(
        "challenge details_message of 257 chars: 400 60200",
        400,
        60200,
        lambda: entity.challenges.create(factor_sid=factor_sid, details_message="m" * 257),
    )
    c.rest_error(
        "challenge without details_message on a push factor: 400 60200",
        400,
        60200,
        lambda: entity.challenges.create(factor_sid=factor_sid),
    )


# --------------------------------------------------------------------------- access tokens


def access_tokens_flow(c, env, client):
    tokens = client.verify.v2.services(env["FIXTURE_SERVICE_SID"]).access_tokens
    identity = f"py-enroll-{RUN}"
    at = tokens.create(identity=identity, factor_type="push", factor_friendly_name="Pixel", ttl=120)
    c.sid("access token create: sid is YK…", at.sid, "YK")
    c.eq("access token create: ttl", at.ttl, 120)
    c.eq("access token create: entity_identity", at.entity_identity, identity)
    c.eq("access token create: factor_friendly_name", at.factor_friendly_name, "Pixel")
    c.eq("access token create: factor_type", at.factor_type, "push")
    c.eq("access token create: service_sid", at.service_sid, env["FIXTURE_SERVICE_SID"])
    c.date("access token create: date_created parses", at.date_created)

    parts = (at.token or "").split(".")
    c.eq("access token: compact JWE has 5 parts", len(parts), 5)
    header = {}
    try:
        header = json.loads(b64url_decode(parts[0]))
    except Exception as e:  # noqa: BLE001
        c.check("access token: JWE header is base64url JSON", False, f"{type(e).__name__}: {e}")
    c.eq("access token: JWE header alg", header.get("alg"), "dir")
    c.eq("access token: JWE header enc", header.get("enc"), "A256GCM")
    if len(parts) == 5:
        c.eq("access token: JWE encrypted key empty (alg dir)", parts[1], "")
        c.eq("access token: JWE IV is 96 bits", len(b64url_decode(parts[2])), 12)
        c.check("access token: JWE ciphertext non-empty", len(parts[3]) > 0, "empty ciphertext")
        c.eq("access token: JWE tag is 128 bits", len(b64url_decode(parts[4])), 16)

    fetched = tokens(at.sid).fetch()
    c.eq("access token fetch: sid", fetched.sid, at.sid)
    c.eq("access token fetch: same token", fetched.token, at.token)
    c.eq("access token fetch: ttl", fetched.ttl, 120)
    c.eq("access token fetch: entity_identity", fetched.entity_identity, identity)

    c.rest_error(
        "access token ttl=10: 400 60305",
        400,
        60305,
        lambda: tokens.create(identity=identity, factor_type="push", ttl=10),
    )


# --------------------------------------------------------------------------- webhooks


def webhooks_flow(c, env, client):
    svc = new_service(client, "hook")
    service = client.verify.v2.services(svc.sid)
    hooks = service.webhooks
    hook = hooks.create(
        friendly_name=f"py hook {RUN}",
        event_types=["factor.verified", "challenge.approved"],
        webhook_url="https://example.com/hook",
        status="enabled",
        resource_version="v2",
    )
    c.sid("webhook create: sid is YW…", hook.sid, "YW")
    c.eq("webhook create: event_types", hook.event_types, ["factor.verified", "challenge.approved"])
    c.eq("webhook create: webhook_method", hook.webhook_method, "POST")
    c.eq("webhook create: version", hook.version, "v2")
    c.eq("webhook create: status", hook.status, "enabled")
    c.eq("webhook create: webhook_url", hook.webhook_url, "https://example.com/hook")
    c.eq("webhook create: service_sid", hook.service_sid, svc.sid)

    fetched = hooks(hook.sid).fetch()
    c.eq("webhook fetch: sid", fetched.sid, hook.sid)
    c.eq("webhook fetch: event_types", fetched.event_types, ["factor.verified", "challenge.approved"])

    updated = hooks(hook.sid).update(status="disabled", event_types=["*"])
    c.eq("webhook update: status disabled", updated.status, "disabled")
    c.eq("webhook update: event_types ['*']", updated.event_types, ["*"])
    c.eq("webhook update: webhook_url kept", updated.webhook_url, "https://example.com/hook")

    created = [hook.sid] + [
        hooks.create(
            friendly_name=f"py hook {RUN} {i}",
            event_types=["*"],
            webhook_url=f"https://example.com/hook/{i}",
        ).sid
        for i in (1, 2)
    ]
    pages = explicit_pages(hooks.page(page_size=2))
    c.eq("webhook page(page_size=2): page sizes for 3 webhooks", [len(p) for p in pages], [2, 1])
    paged = [x.sid for page in pages for x in page]
    missing = seen_once(paged, created)
    c.check("webhook pages: every created SID exactly once", not missing, f"not exactly once: {missing}")

    c.eq("webhook delete: returns True", hooks(hook.sid).delete(), True)
    c.rest_error("webhook fetch after delete: 404 20404", 404, 20404, lambda: hooks(hook.sid).fetch())
    c.rest_error(
        "webhook event_types ['nope']: 400 60306",
        400,
        60306,
        lambda: hooks.create(
            friendly_name=f"py bad hook {RUN}",
            event_types=["nope"],
            webhook_url="https://example.com/hook",
        ),
    )
    c.eq("webhook cleanup: delete service", service.delete(), True)


# --------------------------------------------------------------------------- forms


def forms_flow(c, env, client):
    form = client.verify.v2.forms("form-push").fetch()
    c.eq("form fetch: form_type", form.form_type, "form-push")
    c.check(
        "form fetch: forms is an object with create_factor",
        isinstance(form.forms, dict) and "create_factor" in form.forms,
        f"got {form.forms!r}",
    )


# --------------------------------------------------------------------------- auth


def wrong_token_flow(c, env):
    bad = make_client(env, env["TWILIO_ACCOUNT_SID"], "0" * 32)
    # twilio-python does not route list/page errors through TwilioRestException:
    # Page.process_response raises a plain TwilioException("Unable to fetch page", response).
    try:
        bad.verify.v2.services.list()
        c.check("wrong auth token: services.list fails with 401 20003", False, "the call succeeded")
    except TwilioRestException as e:
        c.check(
            "wrong auth token: services.list fails with 401 20003",
            e.status == 401 and e.code == 20003,
            f"got HTTP {e.status} code {e.code}",
        )
    except TwilioException as e:
        response = e.args[1] if len(e.args) > 1 else None
        status = getattr(response, "status_code", None)
        try:
            code = json.loads(response.text).get("code")
        except Exception:  # noqa: BLE001
            code = None
        c.check(
            "wrong auth token: services.list fails with 401 20003",
            status == 401 and code == 20003,
            f"got HTTP {status} code {code}: {getattr(response, 'text', e)!r}",
        )
    c.rest_error(
        "wrong auth token: service fetch 401 20003",
        401,
        20003,
        lambda: bad.verify.v2.services(env["FIXTURE_SERVICE_SID"]).fetch(),
    )


def api_key_flow(c, env):
    keyed = make_client(
        env, env["VERIFY_PUSH_API_KEY_SID"], env["VERIFY_PUSH_API_KEY_SECRET"], env["TWILIO_ACCOUNT_SID"]
    )
    svc = keyed.verify.v2.services(env["FIXTURE_SERVICE_SID"]).fetch()
    c.eq("API key client: fetches the main account's service", svc.sid, env["FIXTURE_SERVICE_SID"])
    c.eq("API key client: service account_sid", svc.account_sid, env["TWILIO_ACCOUNT_SID"])
    listed = [s.sid for s in keyed.verify.v2.services.list(page_size=50)]
    c.check(
        "API key client: services.list contains the fixture service",
        env["FIXTURE_SERVICE_SID"] in listed,
        f"listed {len(listed)} services without it",
    )


def other_account_flow(c, env):
    other = make_client(env, env["VERIFY_PUSH_OTHER_ACCOUNT_SID"], env["VERIFY_PUSH_OTHER_AUTH_TOKEN"])
    c.rest_error(
        "other account: fetch main account's service 404 20404",
        404,
        20404,
        lambda: other.verify.v2.services(env["FIXTURE_SERVICE_SID"]).fetch(),
    )
    listed = [s.sid for s in other.verify.v2.services.list(page_size=50)]
    c.check(
        "other account: services.list does not contain the main account's service",
        env["FIXTURE_SERVICE_SID"] not in listed,
        f"listed {listed}",
    )
    c.rest_error(
        "other account: create challenge on main account's factor 404 20404",
        404,
        20404,
        lambda: other.verify.v2.services(env["FIXTURE_SERVICE_SID"])
        .entities(env["FIXTURE_IDENTITY"])
        .challenges.create(factor_sid=env["FIXTURE_FACTOR_SID"], details_message="Hijack?"),
    )


# --------------------------------------------------------------------------- main


def main():
    env = load_env()
    # Region/edge settings would rewrite the emulator's host name
    # (docs/protocol/rest-api.md#pointing-the-helper-libraries-at-the-emulator).
    for name in ("TWILIO_REGION", "TWILIO_EDGE"):
        os.environ.pop(name, None)
    client = make_client(env, env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])
    print(f"python flow: run {RUN} against {env['VERIFY_PUSH_URL']}", flush=True)

    c = Checks()
    c.section("services", services_flow, env, client)
    c.section("entities", entities_flow, env, client)
    c.section("factors", factors_flow, env, client)
    c.section("challenges", challenges_flow, env, client)
    c.section("access tokens", access_tokens_flow, env, client)
    c.section("webhooks", webhooks_flow, env, client)
    c.section("forms", forms_flow, env, client)
    c.section("auth: wrong token", wrong_token_flow, env)
    c.section("auth: API key", api_key_flow, env)
    c.section("auth: other account", other_account_flow, env)

    print(f"python flow: {c.passed} passed, {c.failed} failed", flush=True)
    return 0 if c.failed == 0 and c.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
