// Verify the gateway's tokens with Node.js libraries: jose (panva) and jsonwebtoken (auth0).
// Usage: node verify.mjs cases.json   (one JSON line per case on stdout)
import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.NODE_LIBS + "/");
const jose = require("jose");
const jsonwebtoken = require("jsonwebtoken");
const cases = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

for (const c of cases) {
  const out = { alg: c.alg };
  try {
    const keys = jose.createLocalJWKSet(c.jwks);
    await jose.jwtVerify(c.token, keys, { issuer: c.issuer, audience: c.audience, typ: "at+jwt" });
    out.jose = "ok";
  } catch (e) {
    out.jose = "no: " + (e.code || e.message);
  }
  try {
    const header = JSON.parse(Buffer.from(c.token.split(".")[0], "base64url"));
    const jwk = c.jwks.keys.find((k) => k.kid === header.kid);
    const key = crypto.createPublicKey({ key: jwk, format: "jwk" });
    jsonwebtoken.verify(c.token, key, {
      algorithms: [header.alg], issuer: c.issuer, audience: c.audience,
    });
    out.jsonwebtoken = "ok";
  } catch (e) {
    out.jsonwebtoken = "no: " + e.message;
  }
  console.log(JSON.stringify(out));
}
