"use strict";
/*
 * End-to-end flow through the official twilio-node helper library.
 *
 * Drives a running verify-push-emulator exactly as an unchanged backend would: the real `twilio`
 * package (package-lock.json), with only the Verify domain's base URL pointed at the emulator
 * (docs/protocol/rest-api.md#pointing-the-helper-libraries-at-the-emulator).
 *
 * Run:  node tests/helper-libs/node/flow.js
 *
 * Environment (all required):
 *   VERIFY_PUSH_URL                       emulator base URL, e.g. http://127.0.0.1:43123
 *   TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN main account
 *   VERIFY_PUSH_API_KEY_SID, VERIFY_PUSH_API_KEY_SECRET   API key (SK…) of the main account
 *   VERIFY_PUSH_OTHER_ACCOUNT_SID, VERIFY_PUSH_OTHER_AUTH_TOKEN   a second account
 *   FIXTURE_SERVICE_SID, FIXTURE_IDENTITY, FIXTURE_FACTOR_SID     a VERIFIED push factor
 *   FIXTURE_PUBLIC_KEYS                   comma-separated P-256 public keys (base64 SPKI DER), >= 6
 *
 * Prints one line per check and ends with `node flow: N passed, M failed`.
 * Exit status is 0 only when every check passed and nothing threw.
 */

const crypto = require("node:crypto");
const util = require("node:util");

let twilio;
try {
  twilio = require("twilio");
} catch (err) {
  console.error(
    `node flow: cannot load twilio (${err.message}); run scripts/setup-helper-libs.sh`
  );
  process.exit(2);
}
const { RestException } = twilio;

const REQUIRED_ENV = [
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
];

const SPKI_P256_PREFIX = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE";

function fatal(message) {
  console.error(`node flow: ${message}`);
  process.exit(2);
}

function loadEnv() {
  const missing = REQUIRED_ENV.filter((name) => !process.env[name]);
  if (missing.length) fatal(`missing environment variable(s): ${missing.join(", ")}`);
  const env = Object.fromEntries(REQUIRED_ENV.map((name) => [name, process.env[name]]));
  env.VERIFY_PUSH_URL = env.VERIFY_PUSH_URL.replace(/\/+$/, "");
  const keys = env.FIXTURE_PUBLIC_KEYS.split(",").map((k) => k.trim()).filter(Boolean);
  if (keys.length < 6 || new Set(keys).size !== keys.length) {
    fatal("FIXTURE_PUBLIC_KEYS must hold at least 6 distinct keys");
  }
  const bad = keys.find((k) => !k.startsWith(SPKI_P256_PREFIX));
  if (bad) fatal(`FIXTURE_PUBLIC_KEYS holds a non-P-256 SPKI key: ${bad.slice(0, 20)}…`);
  env.KEYS = keys;
  return env;
}

// ---------------------------------------------------------------------------- checks

const fmt = (v) => util.inspect(v, { depth: 6, breakLength: Infinity });

class Checks {
  constructor() {
    this.passed = 0;
    this.failed = 0;
  }

  check(name, ok, detail = "") {
    if (ok) {
      this.passed += 1;
      console.log(`ok   ${name}`);
    } else {
      this.failed += 1;
      console.log(`FAIL ${name}${detail ? `: ${detail}` : ""}`);
    }
    return ok;
  }

  eq(name, actual, expected) {
    return this.check(
      name,
      util.isDeepStrictEqual(actual, expected),
      `expected ${fmt(expected)}, got ${fmt(actual)}`
    );
  }

  sid(name, value, prefix) {
    const ok = typeof value === "string" && new RegExp(`^${prefix}[0-9a-fA-F]{32}$`).test(value);
    return this.check(name, ok, `expected ${prefix} + 32 hex digits, got ${fmt(value)}`);
  }

  date(name, value) {
    // twilio-node returns the raw string when the value is not YYYY-MM-DDTHH:mm:ssZ
    return this.check(
      name,
      value instanceof Date && !Number.isNaN(value.getTime()),
      `expected a YYYY-MM-DDTHH:MM:SSZ date, got ${fmt(value)}`
    );
  }

  /** fn() must reject with RestException carrying exactly this HTTP status and Twilio code. */
  async restError(name, status, code, fn) {
    const want = `RestException HTTP ${status} code ${code}`;
    try {
      await fn();
    } catch (e) {
      if (e instanceof RestException) {
        return this.check(
          name,
          e.status === status && e.code === code,
          `expected ${want}, got HTTP ${e.status} code ${e.code} (${e.message})`
        );
      }
      return this.check(name, false, `expected ${want}, got ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    }
    return this.check(name, false, `expected ${want}, but the call succeeded`);
  }

  async section(title, fn, ...args) {
    console.log(`--- ${title}`);
    try {
      await fn(this, ...args);
    } catch (e) {
      this.failed += 1;
      const extra = e instanceof RestException ? ` [HTTP ${e.status} code ${e.code}]` : "";
      console.log(`FAIL ${title}: threw ${e && e.constructor && e.constructor.name}${extra}: ${e && e.message}`);
      if (e && e.stack) console.log(e.stack);
    }
  }
}

/** Follow nextPage() until undefined; returns an array of instance arrays, one per page. */
async function explicitPages(firstPage, limit = 1000) {
  const pages = [];
  let page = await firstPage;
  while (page) {
    pages.push(page.instances);
    if (pages.length >= limit) throw new Error(`more than ${limit} pages: next_page_url never ends`);
    page = await page.nextPage();
  }
  return pages;
}

/** SIDs of `wanted` that are not listed exactly once. */
function seenOnce(listed, wanted) {
  return wanted.filter((s) => listed.filter((x) => x === s).length !== 1);
}

const b64url = (part) => Buffer.from(part, "base64url");

// ---------------------------------------------------------------------------- setup

const RUN = crypto.randomBytes(4).toString("hex");

function makeClient(env, username, password, accountSid) {
  const client = accountSid ? twilio(username, password, { accountSid }) : twilio(username, password);
  client.verify.baseUrl = env.VERIFY_PUSH_URL;
  return client;
}

function newService(client, label) {
  return client.verify.v2.services.create({ friendlyName: `js ${label} ${RUN}` });
}

// ---------------------------------------------------------------------------- services

async function servicesFlow(c, env, client) {
  const services = client.verify.v2.services;
  const name = `js svc ${RUN}`;
  const svc = await services.create({
    friendlyName: name,
    "push.includeDate": false,
    "totp.issuer": "Flow Issuer",
    "totp.timeStep": 30,
    "totp.codeLength": 6,
    "totp.skew": 1,
  });
  c.sid("service create: sid is VA…", svc.sid, "VA");
  c.eq("service create: friendlyName", svc.friendlyName, name);
  c.eq("service create: accountSid", svc.accountSid, env.TWILIO_ACCOUNT_SID);
  c.eq("service create: push.include_date is false", (svc.push || {}).include_date, false);
  const totp = svc.totp || {};
  c.eq(
    "service create: totp object",
    { issuer: totp.issuer, time_step: totp.time_step, code_length: totp.code_length, skew: totp.skew },
    { issuer: "Flow Issuer", time_step: 30, code_length: 6, skew: 1 }
  );
  c.date("service create: dateCreated parses", svc.dateCreated);

  const fetched = await services(svc.sid).fetch();
  c.eq("service fetch: sid", fetched.sid, svc.sid);
  c.eq("service fetch: friendlyName", fetched.friendlyName, name);
  c.eq("service fetch: totp.issuer", (fetched.totp || {}).issuer, "Flow Issuer");

  const newName = `js svc2 ${RUN}`;
  const updated = await services(svc.sid).update({ friendlyName: newName, "push.includeDate": true });
  c.eq("service update: friendlyName changed", updated.friendlyName, newName);
  c.eq("service update: push.include_date is true", (updated.push || {}).include_date, true);
  c.eq("service update: totp.issuer kept", (updated.totp || {}).issuer, "Flow Issuer");
  c.check(
    "service update: dateUpdated >= dateCreated",
    updated.dateUpdated instanceof Date &&
      updated.dateCreated instanceof Date &&
      updated.dateUpdated.getTime() >= updated.dateCreated.getTime(),
    `dateCreated=${fmt(updated.dateCreated)} dateUpdated=${fmt(updated.dateUpdated)}`
  );
  const refetched = await services(svc.sid).fetch();
  c.eq("service fetch after update: friendlyName", refetched.friendlyName, newName);

  const extra = [];
  for (let i = 0; i < 5; i++) extra.push(await newService(client, `list${i}`));
  const created = [svc.sid, ...extra.map((s) => s.sid)];

  const listed = (await services.list({ pageSize: 2 })).map((s) => s.sid);
  let missing = seenOnce(listed, created);
  c.check("service list({pageSize: 2}): every created SID exactly once", !missing.length, `not exactly once: ${missing}`);

  const pages = await explicitPages(services.page({ pageSize: 2 }));
  c.check(
    "service page({pageSize: 2}): pages hold at most 2 and there are >= 3",
    pages.length >= 3 && pages.every((p) => p.length <= 2),
    `page sizes ${fmt(pages.map((p) => p.length))}`
  );
  missing = seenOnce(pages.flat().map((s) => s.sid), created);
  c.check("service nextPage(): every created SID exactly once", !missing.length, `not exactly once: ${missing}`);

  c.eq("service remove: resolves true", await services(svc.sid).remove(), true);
  await c.restError("service fetch after remove: 404 20404", 404, 20404, () => services(svc.sid).fetch());
  await c.restError("service create with 33-char friendlyName: 400 60200", 400, 60200, () =>
    services.create({ friendlyName: "x".repeat(33) })
  );
  for (const s of extra) {
    c.eq(`service cleanup: remove ${s.sid}`, await services(s.sid).remove(), true);
  }
}

// ---------------------------------------------------------------------------- entities

async function entitiesFlow(c, env, client) {
  const svc = await newService(client, "ent");
  const entities = client.verify.v2.services(svc.sid).entities;
  const identity = `js-ent-${RUN}-0`;
  const ent = await entities.create({ identity });
  c.sid("entity create: sid is YE…", ent.sid, "YE");
  c.eq("entity create: identity", ent.identity, identity);
  c.eq("entity create: serviceSid", ent.serviceSid, svc.sid);
  c.date("entity create: dateCreated parses", ent.dateCreated);
  await c.restError("entity create duplicate: 409 60301", 409, 60301, () => entities.create({ identity }));
  const fetched = await entities(identity).fetch();
  c.eq("entity fetch: sid", fetched.sid, ent.sid);
  c.eq("entity fetch: identity", fetched.identity, identity);

  const created = [ent.sid];
  for (let i = 1; i < 5; i++) created.push((await entities.create({ identity: `js-ent-${RUN}-${i}` })).sid);
  const pages = await explicitPages(entities.page({ pageSize: 2 }));
  c.eq("entity page({pageSize: 2}): page sizes for 5 entities", pages.map((p) => p.length), [2, 2, 1]);
  const missing = seenOnce(pages.flat().map((e) => e.sid), created);
  c.check("entity pages: every created SID exactly once", !missing.length, `not exactly once: ${missing}`);
  const listed = (await entities.list({ pageSize: 2 })).map((e) => e.sid);
  c.eq("entity list({pageSize: 2}): the 5 entities", [...listed].sort(), [...created].sort());

  c.eq("entity remove: resolves true", await entities(identity).remove(), true);
  await c.restError("entity fetch after remove: 404 20404", 404, 20404, () => entities(identity).fetch());
  await c.restError("entity create with identity 'bad id!': 400 60200", 400, 60200, () =>
    entities.create({ identity: "bad id!" })
  );
  c.eq("entity cleanup: remove service", await client.verify.v2.services(svc.sid).remove(), true);
}

// ---------------------------------------------------------------------------- factors

function pushFactor(entity, key, name, token) {
  return entity.newFactors.create({
    friendlyName: name,
    factorType: "push",
    "binding.alg": "ES256",
    "binding.publicKey": key,
    "config.appId": "com.example.app",
    "config.notificationPlatform": "fcm",
    "config.notificationToken": token || "t".repeat(40),
    "config.sdkVersion": "0.9.0",
    metadata: { os: "Android" },
  });
}

async function factorsFlow(c, env, client) {
  const keys = env.KEYS.slice(3, 6); // python uses KEYS[0:3]; distinct bindings never collide
  const svc = await newService(client, "fac");
  const service = client.verify.v2.services(svc.sid);
  const identity = `js-fac-${RUN}`;
  const entity = service.entities(identity);
  await c.restError("factor entity does not exist yet: 404 20404", 404, 20404, () => entity.fetch());

  const token = "a".repeat(40);
  const f = await pushFactor(entity, keys[0], "Pixel 8", token);
  c.sid("factor create: sid is YF…", f.sid, "YF");
  c.eq("factor create: status unverified", f.status, "unverified");
  c.eq("factor create: factorType push", f.factorType, "push");
  c.eq("factor create: friendlyName", f.friendlyName, "Pixel 8");
  c.eq("factor create: identity", f.identity, identity);
  c.eq("factor create: binding.alg", (f.binding || {}).alg, "ES256");
  c.eq("factor create: binding.public_key", (f.binding || {}).public_key, keys[0]);
  const config = f.config || {};
  c.eq("factor create: config.notification_platform", config.notification_platform, "fcm");
  c.eq("factor create: config.notification_token", config.notification_token, token);
  c.eq("factor create: config.app_id", config.app_id, "com.example.app");
  c.eq("factor create: config.sdk_version", config.sdk_version, "0.9.0");
  c.eq("factor create: metadata", f.metadata, { os: "Android" });
  c.date("factor create: dateCreated parses", f.dateCreated);

  const ent = await entity.fetch();
  c.eq("factor create made the entity: identity", ent.identity, identity);
  c.eq("factor create made the entity: sid matches factor.entitySid", ent.sid, f.entitySid);

  const fetched = await entity.factors(f.sid).fetch();
  c.eq("factor fetch: sid", fetched.sid, f.sid);
  c.eq("factor fetch: status unverified", fetched.status, "unverified");
  c.eq("factor fetch: config.notification_platform", (fetched.config || {}).notification_platform, "fcm");
  c.eq("factor fetch: metadata", fetched.metadata, { os: "Android" });

  const created = [f.sid];
  for (const i of [1, 2]) created.push((await pushFactor(entity, keys[i], `Device ${i}`)).sid);
  const pages = await explicitPages(entity.factors.page({ pageSize: 2 }));
  c.eq("factor page({pageSize: 2}): page sizes for 3 factors", pages.map((p) => p.length), [2, 1]);
  const missing = seenOnce(pages.flat().map((x) => x.sid), created);
  c.check("factor pages: every created SID exactly once", !missing.length, `not exactly once: ${missing}`);
  const listed = (await entity.factors.list({ pageSize: 2 })).map((x) => x.sid);
  c.eq("factor list({pageSize: 2}): the 3 factors", [...listed].sort(), [...created].sort());

  const newToken = "b".repeat(48);
  const updated = await entity
    .factors(f.sid)
    .update({ friendlyName: "Pixel 9", "config.notificationToken": newToken });
  c.eq("factor update: friendlyName changed", updated.friendlyName, "Pixel 9");
  c.eq("factor update: config.notification_token changed", (updated.config || {}).notification_token, newToken);
  c.eq("factor update: still unverified", updated.status, "unverified");
  const refetched = await entity.factors(f.sid).fetch();
  c.eq("factor fetch after update: friendlyName", refetched.friendlyName, "Pixel 9");

  await c.restError("challenge on unverified factor: 403 60318", 403, 60318, () =>
    entity.challenges.create({ factorSid: created[1], "details.message": "Sign in?" })
  );

  c.eq("factor remove: resolves true", await entity.factors(f.sid).remove(), true);
  await c.restError("factor fetch after remove: 404 20404", 404, 20404, () => entity.factors(f.sid).fetch());

  await c.restError("factor create with Binding.PublicKey=dGVzdF9rZXk=: 400 60314", 400, 60314, () =>
    pushFactor(service.entities(`js-badkey-${RUN}`), "dGVzdF9rZXk=", "Bad key")
  );
  c.eq("factor cleanup: remove service", await service.remove(), true);
}

// ---------------------------------------------------------------------------- challenges

async function challengesFlow(c, env, client) {
  const entity = client.verify.v2.services(env.FIXTURE_SERVICE_SID).entities(env.FIXTURE_IDENTITY);
  const factorSid = env.FIXTURE_FACTOR_SID;
  const fields = [
    { label: "Action", value: "Sign in" },
    { label: "Location", value: "Berlin" },
  ];
  const hidden = { ip: "10.0.0.1" };
  const now = new Date();
  now.setUTCMilliseconds(0);
  const expires = new Date(now.getTime() + 10 * 60 * 1000);
  const message = `Approve sign in ${RUN}?`;

  const ch = await entity.challenges.create({
    factorSid,
    "details.message": message,
    "details.fields": fields,
    hiddenDetails: hidden,
    expirationDate: expires,
  });
  c.sid("challenge create: sid is YC…", ch.sid, "YC");
  c.eq("challenge create: status pending", ch.status, "pending");
  c.eq("challenge create: factorSid", ch.factorSid, factorSid);
  c.eq("challenge create: identity", ch.identity, env.FIXTURE_IDENTITY);
  c.eq("challenge create: factorType push", ch.factorType, "push");
  const details = ch.details || {};
  c.eq("challenge create: details.message", details.message, message);
  c.eq("challenge create: details.fields", details.fields, fields);
  c.eq("challenge create: hiddenDetails", ch.hiddenDetails, hidden);
  c.check(
    "challenge create: expirationDate",
    ch.expirationDate instanceof Date && ch.expirationDate.getTime() === expires.getTime(),
    `expected ${expires.toISOString()}, got ${fmt(ch.expirationDate)}`
  );
  c.date("challenge create: dateCreated parses", ch.dateCreated);

  const fetched = await entity.challenges(ch.sid).fetch();
  c.eq("challenge fetch: sid", fetched.sid, ch.sid);
  c.eq("challenge fetch: status pending", fetched.status, "pending");
  c.eq("challenge fetch: details", fetched.details, ch.details);
  c.eq("challenge fetch: hiddenDetails", fetched.hiddenDetails, hidden);

  const created = [ch.sid];
  for (let i = 1; i < 5; i++) {
    created.push((await entity.challenges.create({ factorSid, "details.message": `${message} #${i}` })).sid);
  }

  const pages = await explicitPages(
    entity.challenges.page({ factorSid, status: "pending", order: "desc", pageSize: 2 })
  );
  c.check(
    "challenge page(desc, pageSize 2): pages hold at most 2 and there are >= 3",
    pages.length >= 3 && pages.every((p) => p.length <= 2),
    `page sizes ${fmt(pages.map((p) => p.length))}`
  );
  const records = pages.flat();
  const desc = records.map((x) => x.sid);
  let missing = seenOnce(desc, created);
  c.check("challenge pages desc: all 5 created exactly once", !missing.length, `not exactly once: ${missing}`);
  c.eq(
    "challenge pages desc: newest first",
    desc.filter((s) => created.includes(s)),
    [...created].reverse()
  );
  const stray = records.filter((x) => x.status !== "pending" || x.factorSid !== factorSid);
  c.check(
    "challenge pages desc: only pending challenges of the factor",
    !stray.length,
    `got ${fmt(stray.map((x) => [x.sid, x.status, x.factorSid]))}`
  );

  const asc = (await entity.challenges.list({ factorSid, status: "pending", order: "asc", pageSize: 2 })).map(
    (x) => x.sid
  );
  c.eq(
    "challenge list asc: oldest first (the reverse of desc)",
    asc.filter((s) => created.includes(s)),
    created
  );
  missing = seenOnce(asc, created);
  c.check("challenge list asc: all 5 created exactly once", !missing.length, `not exactly once: ${missing}`);

  await c.restError("challenge expirationDate 2 h ahead: 400 60200", 400, 60200, () =>
    entity.challenges.create({
      factorSid,
      "details.message": "Too late",
      expirationDate: new Date(Date.now() + 2 * 60 * 60 * 1000),
    })
  );
  await c.restError("challenge details.message of 257 chars: 400 60200", 400, 60200, () =>
    entity.challenges.create({ factorSid, "details.message": "m".repeat(257) })
  );
  await c.restError("challenge without details.message on a push factor: 400 60200", 400, 60200, () =>
    entity.challenges.create({ factorSid })
  );
}

// ---------------------------------------------------------------------------- access tokens

async function accessTokensFlow(c, env, client) {
  const tokens = client.verify.v2.services(env.FIXTURE_SERVICE_SID).accessTokens;
  const identity = `js-enroll-${RUN}`;
  const at = await tokens.create({ identity, factorType: "push", factorFriendlyName: "Pixel", ttl: 120 });
  c.sid("access token create: sid is YK…", at.sid, "YK");
  c.eq("access token create: ttl", at.ttl, 120);
  c.eq("access token create: entityIdentity", at.entityIdentity, identity);
  c.eq("access token create: factorFriendlyName", at.factorFriendlyName, "Pixel");
  c.eq("access token create: factorType", at.factorType, "push");
  c.eq("access token create: serviceSid", at.serviceSid, env.FIXTURE_SERVICE_SID);
  c.date("access token create: dateCreated parses", at.dateCreated);

  const parts = (at.token || "").split(".");
  c.eq("access token: compact JWE has 5 parts", parts.length, 5);
  let header = {};
  try {
    header = JSON.parse(b64url(parts[0]).toString("utf8"));
  } catch (e) {
    c.check("access token: JWE header is base64url JSON", false, `${e.constructor.name}: ${e.message}`);
  }
  c.eq("access token: JWE header alg", header.alg, "dir");
  c.eq("access token: JWE header enc", header.enc, "A256GCM");
  if (parts.length === 5) {
    c.eq("access token: JWE encrypted key empty (alg dir)", parts[1], "");
    c.eq("access token: JWE IV is 96 bits", b64url(parts[2]).length, 12);
    c.check("access token: JWE ciphertext non-empty", parts[3].length > 0, "empty ciphertext");
    c.eq("access token: JWE tag is 128 bits", b64url(parts[4]).length, 16);
  }

  const fetched = await tokens(at.sid).fetch();
  c.eq("access token fetch: sid", fetched.sid, at.sid);
  c.eq("access token fetch: same token", fetched.token, at.token);
  c.eq("access token fetch: ttl", fetched.ttl, 120);
  c.eq("access token fetch: entityIdentity", fetched.entityIdentity, identity);

  await c.restError("access token ttl=10: 400 60305", 400, 60305, () =>
    tokens.create({ identity, factorType: "push", ttl: 10 })
  );
}

// ---------------------------------------------------------------------------- webhooks

async function webhooksFlow(c, env, client) {
  const svc = await newService(client, "hook");
  const service = client.verify.v2.services(svc.sid);
  const hooks = service.webhooks;
  const hook = await hooks.create({
    friendlyName: `js hook ${RUN}`,
    eventTypes: ["factor.verified", "challenge.approved"],
    webhookUrl: "https://example.com/hook",
    status: "enabled",
    versionParam: "v2",
  });
  c.sid("webhook create: sid is YW…", hook.sid, "YW");
  c.eq("webhook create: eventTypes", hook.eventTypes, ["factor.verified", "challenge.approved"]);
  c.eq("webhook create: webhookMethod", hook.webhookMethod, "POST");
  c.eq("webhook create: version", hook.version, "v2");
  c.eq("webhook create: status", hook.status, "enabled");
  c.eq("webhook create: webhookUrl", hook.webhookUrl, "https://example.com/hook");
  c.eq("webhook create: serviceSid", hook.serviceSid, svc.sid);

  const fetched = await hooks(hook.sid).fetch();
  c.eq("webhook fetch: sid", fetched.sid, hook.sid);
  c.eq("webhook fetch: eventTypes", fetched.eventTypes, ["factor.verified", "challenge.approved"]);

  const updated = await hooks(hook.sid).update({ status: "disabled", eventTypes: ["*"] });
  c.eq("webhook update: status disabled", updated.status, "disabled");
  c.eq("webhook update: eventTypes ['*']", updated.eventTypes, ["*"]);
  c.eq("webhook update: webhookUrl kept", updated.webhookUrl, "https://example.com/hook");

  const created = [hook.sid];
  for (const i of [1, 2]) {
    created.push(
      (
        await hooks.create({
          friendlyName: `js hook ${RUN} ${i}`,
          eventTypes: ["*"],
          webhookUrl: `https://example.com/hook/${i}`,
        })
      ).sid
    );
  }
  const pages = await explicitPages(hooks.page({ pageSize: 2 }));
  c.eq("webhook page({pageSize: 2}): page sizes for 3 webhooks", pages.map((p) => p.length), [2, 1]);
  const missing = seenOnce(pages.flat().map((x) => x.sid), created);
  c.check("webhook pages: every created SID exactly once", !missing.length, `not exactly once: ${missing}`);

  c.eq("webhook remove: resolves true", await hooks(hook.sid).remove(), true);
  await c.restError("webhook fetch after remove: 404 20404", 404, 20404, () => hooks(hook.sid).fetch());
  await c.restError("webhook eventTypes ['nope']: 400 60306", 400, 60306, () =>
    hooks.create({
      friendlyName: `js bad hook ${RUN}`,
      eventTypes: ["nope"],
      webhookUrl: "https://example.com/hook",
    })
  );
  c.eq("webhook cleanup: remove service", await service.remove(), true);
}

// ---------------------------------------------------------------------------- forms

async function formsFlow(c, env, client) {
  const form = await client.verify.v2.forms("form-push").fetch();
  c.eq("form fetch: formType", form.formType, "form-push");
  c.check(
    "form fetch: forms is an object with create_factor",
    form.forms !== null && typeof form.forms === "object" && !Array.isArray(form.forms) && "create_factor" in form.forms,
    `got ${fmt(form.forms)}`
  );
}

// ---------------------------------------------------------------------------- auth

async function wrongTokenFlow(c, env) {
  const bad = makeClient(env, env.TWILIO_ACCOUNT_SID, "0".repeat(32));
  await c.restError("wrong auth token: services.list 401 20003", 401, 20003, () => bad.verify.v2.services.list());
  await c.restError("wrong auth token: service fetch 401 20003", 401, 20003, () =>
    bad.verify.v2.services(env.FIXTURE_SERVICE_SID).fetch()
  );
}

async function apiKeyFlow(c, env) {
  const keyed = makeClient(env, env.VERIFY_PUSH_API_KEY_SID, env.VERIFY_PUSH_API_KEY_SECRET, env.TWILIO_ACCOUNT_SID);
  const svc = await keyed.verify.v2.services(env.FIXTURE_SERVICE_SID).fetch();
  c.eq("API key client: fetches the main account's service", svc.sid, env.FIXTURE_SERVICE_SID);
  c.eq("API key client: service accountSid", svc.accountSid, env.TWILIO_ACCOUNT_SID);
  const listed = (await keyed.verify.v2.services.list({ pageSize: 50 })).map((s) => s.sid);
  c.check(
    "API key client: services.list contains the fixture service",
    listed.includes(env.FIXTURE_SERVICE_SID),
    `listed ${listed.length} services without it`
  );
}

async function otherAccountFlow(c, env) {
  const other = makeClient(env, env.VERIFY_PUSH_OTHER_ACCOUNT_SID, env.VERIFY_PUSH_OTHER_AUTH_TOKEN);
  await c.restError("other account: fetch main account's service 404 20404", 404, 20404, () =>
    other.verify.v2.services(env.FIXTURE_SERVICE_SID).fetch()
  );
  const listed = (await other.verify.v2.services.list({ pageSize: 50 })).map((s) => s.sid);
  c.check(
    "other account: services.list does not contain the main account's service",
    !listed.includes(env.FIXTURE_SERVICE_SID),
    `listed ${fmt(listed)}`
  );
  await c.restError("other account: create challenge on main account's factor 404 20404", 404, 20404, () =>
    other.verify.v2
      .services(env.FIXTURE_SERVICE_SID)
      .entities(env.FIXTURE_IDENTITY)
      .challenges.create({ factorSid: env.FIXTURE_FACTOR_SID, "details.message": "Hijack?" })
  );
}

// ---------------------------------------------------------------------------- main

async function main() {
  const env = loadEnv();
  // Region/edge settings would rewrite the emulator's host name
  // (docs/protocol/rest-api.md#pointing-the-helper-libraries-at-the-emulator).
  delete process.env.TWILIO_REGION;
  delete process.env.TWILIO_EDGE;
  const client = makeClient(env, env.TWILIO_ACCOUNT_SID, env.TWILIO_AUTH_TOKEN);
  console.log(`node flow: run ${RUN} against ${env.VERIFY_PUSH_URL}`);

  const c = new Checks();
  await c.section("services", servicesFlow, env, client);
  await c.section("entities", entitiesFlow, env, client);
  await c.section("factors", factorsFlow, env, client);
  await c.section("challenges", challengesFlow, env, client);
  await c.section("access tokens", accessTokensFlow, env, client);
  await c.section("webhooks", webhooksFlow, env, client);
  await c.section("forms", formsFlow, env, client);
  await c.section("auth: wrong token", wrongTokenFlow, env);
  await c.section("auth: API key", apiKeyFlow, env);
  await c.section("auth: other account", otherAccountFlow, env);

  console.log(`node flow: ${c.passed} passed, ${c.failed} failed`);
  return c.failed === 0 && c.passed > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.log(`node flow: aborted: ${err && err.stack ? err.stack : err}`);
    console.log("node flow: 0 passed, 1 failed");
    process.exit(1);
  }
);
