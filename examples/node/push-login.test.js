// The whole Verify Push login flow from a node:test test: the backend side through the official
// twilio-node library, the phone played by a virtual device, the result awaited on the live event
// stream, and a second challenge expired by moving the emulator's clock.
//
// Starts the server binary named by VERIFY_PUSH_SERVER (default `verify-push-server` on PATH)
// with ../quickstart-seed.yaml on VERIFY_PUSH_DATABASE_URL (default: a SQLite file in a temporary
// folder), or uses the server at VERIFY_PUSH_URL started with that seed.
"use strict";

const { test, before, after, beforeEach } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const twilio = require("twilio");
const { Emulator } = require("./emulator");

const ACCOUNT_SID = "AC00000000000000000000000000000e1a";
const AUTH_TOKEN = "example-auth-token-0001";
const SERVICE_SID = "VA00000000000000000000000000000e1a";

let server = null;
let url = process.env.VERIFY_PUSH_URL;
let emulator;
let verify;

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on("error", reject);
  });
}

before(async () => {
  if (!url) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "verify-push-"));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const log = fs.openSync(path.join(tmp, "server.log"), "w");
    server = spawn(
      process.env.VERIFY_PUSH_SERVER || "verify-push-server",
      [
        "--bind", `127.0.0.1:${port}`,
        "--database-url", process.env.VERIFY_PUSH_DATABASE_URL || `sqlite://${tmp}/verify-push.db`,
        "--keys-file", path.join(tmp, "verify-push.keys"),
        "--seed", path.join(__dirname, "..", "quickstart-seed.yaml"),
      ],
      { stdio: ["ignore", log, log] },
    );
    const deadline = Date.now() + 30000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(fs.readFileSync(path.join(tmp, "server.log"), "utf8"));
      try {
        if ((await fetch(`${url}/healthz`)).status === 200) break;
      } catch (_) {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error("the server did not answer /healthz within 30 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  emulator = new Emulator(url, ACCOUNT_SID, AUTH_TOKEN);
  const client = twilio(ACCOUNT_SID, AUTH_TOKEN);
  client.verify.baseUrl = url;
  verify = client.verify.v2.services(SERVICE_SID);
});

after(() => {
  if (server) server.kill("SIGTERM");
});

// Each test starts from the seeded state. The clock is left where a test moved it: it only goes
// forward while the database holds records made at the later time (README, "Clock").
beforeEach(async () => {
  await emulator.reset();
});

test("a login approved on the phone", async () => {
  const device = await emulator.createDevice(SERVICE_SID, "user-0001");
  assert.equal(device.status, "verified");
  const entity = verify.entities("user-0001");
  assert.equal((await entity.factors(device.factor_sid).fetch()).status, "verified");

  const events = await emulator.events({ ServiceSid: SERVICE_SID, Identity: "user-0001" });
  try {
    const challenge = await entity.challenges.create({
      factorSid: device.factor_sid,
      "details.message": "Log in to Owl Bank?",
      "details.fields": [{ label: "IP address", value: "10.0.0.1" }],
    });
    assert.equal(challenge.status, "pending");
    await emulator.answer(device.factor_sid, "latest", "approved");
    const approved = await events.next("challenge.approved");
    assert.equal(approved.challenge_sid, challenge.sid);
    assert.equal((await entity.challenges(challenge.sid).fetch()).status, "approved");
  } finally {
    events.close();
  }
});

test("a login that waits too long expires", async () => {
  const device = await emulator.createDevice(SERVICE_SID, "user-0002", { Style: "ios" });
  const entity = verify.entities("user-0002");
  const challenge = await entity.challenges.create({
    factorSid: device.factor_sid,
    "details.message": "Log in?",
  });
  await emulator.setClock({ Advance: 301 }); // challenges expire after 5 minutes by default
  assert.equal((await entity.challenges(challenge.sid).fetch()).status, "expired");
  await assert.rejects(emulator.answer(device.factor_sid, challenge.sid, "approved"), { code: 60323 });
});
