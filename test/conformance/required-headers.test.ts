/**
 * Conformance: `headers.required` with allowed values, checked by requests through the local gateway. A
 * request passes only with exactly one allowed value (case ignored): one carrying an allowed value next to
 * another (`prod, evil`, or the header twice, which `Headers.GetValueOrDefault` joins with a comma) is
 * refused whatever `check-header` does with several values (APIM documents it for one). Where the scopes'
 * allowed values have nothing in common, no value is allowed: every request is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-required-headers");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());

const REFUSED = { statusCode: 400, message: "A required header is missing or has a value that is not allowed" };

describe("conformance: required headers with allowed values", () => {
  it("exactly one allowed value passes; several values, one of them allowed, are refused", async () => {
    const p = await g.project("required-values", { settings: { headers: { required: [{ name: "X-Env", values: ["prod", "staging"] }, { name: "x-team" }] } } });
    await g.model(p.id, "gpt-4o");
    await g.publish("required headers");
    const key = (await g.key(dev, p.id, { name: "headers" })).key;
    const send = (headers: Record<string, string>) => g.chat(p.id, key, "gpt-4o", { headers });
    const answer = async (headers: Record<string, string>) => {
      const r = await send(headers);
      return r.status === 200 ? 200 : { status: r.status, body: r.json };
    };

    // One allowed value, as listed or in another case, with or without spaces around it.
    expect(await answer({ "x-env": "prod", "x-team": "a" })).toBe(200);
    expect(await answer({ "x-env": "STAGING", "x-team": "a, b" })).toBe(200);
    expect(await answer({ "x-env": " prod ", "x-team": "a" })).toBe(200);
    // Missing, or a value not listed.
    expect(await answer({ "x-team": "a" })).toEqual({ status: 400, body: REFUSED });
    expect(await answer({ "x-env": "dev", "x-team": "a" })).toEqual({ status: 400, body: REFUSED });
    expect(await answer({ "x-env": "prod" })).toEqual({ status: 400, body: REFUSED });
    // An allowed value next to another one: refused, whichever comes first.
    for (const env of ["prod, evil", "evil,prod", "prod,staging", "prod, prod"]) {
      expect(await answer({ "x-env": env, "x-team": "a" }), env).toEqual({ status: 400, body: REFUSED });
    }
    // The header twice: the gateway reads the lines joined with a comma, so the same refusal.
    const twice = new Headers({ "content-type": "application/json", "api-key": key, "x-team": "a" });
    twice.append("x-env", "prod");
    twice.append("x-env", "evil");
    const res = await fetch(`${g.base(p.id)}/v1/chat/completions`, { method: "POST", headers: twice, body: JSON.stringify({ model: "gpt-4o", max_tokens: 8, messages: [{ role: "user", content: "w0 w1" }] }) });
    expect([res.status, await res.json()]).toEqual([400, REFUSED]);
  });

  it("the tenant and the project allowing no value in common: no value passes", async () => {
    const s = await g.admin.settings.get();
    await g.admin.settings.put({ settings: { headers: { required: [{ name: "x-stage", values: ["prod"] }] } } }, s.etag);
    try {
      const p = await g.project("required-disjoint", { settings: { headers: { required: [{ name: "x-stage", values: ["dev"] }] } } });
      await g.model(p.id, "gpt-4o");
      await g.publish("disjoint values");
      const key = (await g.key(dev, p.id, { name: "disjoint" })).key;
      for (const stage of ["prod", "dev", "anything", "prod, dev"]) {
        const r = await g.chat(p.id, key, "gpt-4o", { headers: { "x-stage": stage } });
        expect({ stage, status: r.status, body: r.json }).toEqual({ stage, status: 400, body: REFUSED });
      }
    } finally {
      const now = await g.admin.settings.get();
      await g.admin.settings.put({ settings: {} }, now.etag);
    }
  });
});
