// A small client for verify-push-emulator's test controls (`/_emulator/…`, README "Test
// controls"): plain HTTP with the account's Basic auth. Copy it into your own tests.
"use strict";

class EmulatorError extends Error {
  constructor(body) {
    super(`${body.status} ${body.code}: ${body.message}`);
    this.status = body.status;
    this.code = body.code;
  }
}

class Emulator {
  constructor(url, accountSid, authToken) {
    this.url = url.replace(/\/$/, "");
    this.auth = "Basic " + Buffer.from(`${accountSid}:${authToken}`).toString("base64");
  }

  async call(method, path, form) {
    const response = await fetch(`${this.url}/_emulator/${path}`, {
      method,
      headers: { Authorization: this.auth, "Content-Type": "application/x-www-form-urlencoded" },
      body: form ? new URLSearchParams(form).toString() : undefined,
    });
    const text = await response.text();
    const body = text ? JSON.parse(text) : null;
    if (response.status >= 400) throw new EmulatorError(body);
    return body;
  }

  reset() {
    return this.call("POST", "Reset");
  }

  setClock(change) {
    // One of { Advance: seconds }, { Set: ISO 8601 }, { Freeze: true|false }, { Reset: true }.
    return this.call("POST", "Clock", Object.fromEntries(Object.entries(change).map(([k, v]) => [k, String(v)])));
  }

  createDevice(serviceSid, identity, options = {}) {
    return this.call("POST", "Devices", { ServiceSid: serviceSid, Identity: identity, ...options });
  }

  answer(factorSid, challengeSid = "latest", status = "approved") {
    return this.call("POST", `Devices/${factorSid}/Challenges/${challengeSid}`, { Status: status });
  }

  // Opens the live event stream (Server-Sent Events). `next(type, ms)` resolves with the next
  // event of that type; `close()` ends the stream.
  async events(filters = {}) {
    const controller = new AbortController();
    const response = await fetch(`${this.url}/_emulator/Events?${new URLSearchParams(filters)}`, {
      headers: { Authorization: this.auth },
      signal: controller.signal,
    });
    if (response.status !== 200) throw new EmulatorError(await response.json());
    const received = [];
    let wake = null;
    (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for await (const chunk of response.body) {
          buffer += decoder.decode(chunk, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type = null;
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) type = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).trim());
            }
            if (data.length) received.push({ type, event: JSON.parse(data.join("\n")) });
            if (wake) wake();
          }
        }
      } catch (_) {
        // aborted by close()
      }
    })();
    return {
      async next(type, ms = 5000) {
        const deadline = Date.now() + ms;
        for (;;) {
          const at = received.findIndex((e) => !type || e.type === type);
          if (at >= 0) return received.splice(0, at + 1).pop().event;
          const left = deadline - Date.now();
          if (left <= 0) throw new Error(`no ${type || "event"} within ${ms} ms`);
          await new Promise((resolve) => {
            wake = resolve;
            setTimeout(resolve, left);
          });
        }
      },
      close() {
        controller.abort();
      },
    };
  }
}

module.exports = { Emulator, EmulatorError };
