// Validates recorded webhook callbacks with twilio-node's validateRequest.
// stdin: {"auth_token", "requests": [{"url", "params", "signature"}]}; stdout: JSON list of booleans.
const twilio = require("twilio");
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const data = JSON.parse(input);
  const results = data.requests.map((r) => twilio.validateRequest(data.auth_token, r.signature, r.url, r.params));
  process.stdout.write(JSON.stringify(results));
});
