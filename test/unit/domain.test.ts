import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { canonicalJson } from "../../src/util/canonical-json.js";
import { digestOf, recordHash } from "../../src/domain/audit/chain.js";
import { etagMatches, newId } from "../../src/domain/common.js";
import { chunkEvents } from "../../src/domain/outbox/relay.js";
import { listPage } from "../../src/domain/paging.js";
import { ContinuationTokenRefused, type QuerySpec, type Store } from "../../src/ports/store.js";
import type { DomainError } from "../../src/domain/errors.js";
import { mapError } from "../../src/http/problem.js";
import type { CloudEvent } from "../../src/ports/events.js";

const baseEnv = { KEYVAULT_URI: "https://kv.vault.azure.net/", APIM_SUBSCRIPTION_ID: "00000000-0000-0000-0000-000000000001", APIM_RESOURCE_GROUP: "rg-aigov", APIM_SERVICE_NAME: "apim-aigov", USAGE_LOG_WORKSPACE_ID: "11111111-2222-3333-4444-555555555555", COSMOS_ENDPOINT: "https://acct.documents.azure.com:443/", AUTH_ISSUER: "https://login.microsoftonline.com/{tenantid}/v2.0", AUTH_AUDIENCE: "api://aigov", AUTH_JWKS_URI: "https://login.microsoftonline.com/common/discovery/v2.0/keys" };

describe("config", () => {
  it("parses the Azure settings with defaults", () => {
    const c = parseConfig(baseEnv);
    expect(c).toMatchObject({ local: false, cosmos: { database: "aigov", container: "resources" }, auth: { mode: "entra", clockSkewSeconds: 120, tenantClaim: "tid" } });
    expect(c.cosmos.localKey).toBeUndefined();
  });

  it("refuses dev tokens and account keys in Azure, and reports every bad setting", () => {
    expect(() => parseConfig({ ...baseEnv, WEBSITE_SITE_NAME: "app", AUTH_MODE: "dev" })).toThrow(/AUTH_MODE: dev tokens are refused in Azure/);
    expect(() => parseConfig({ ...baseEnv, COSMOS_LOCAL_KEY: "k" })).toThrow(/COSMOS_LOCAL_KEY: only valid with AIGOV_LOCAL=true/);
    expect(() => parseConfig({})).toThrow(/COSMOS_ENDPOINT[\s\S]*AUTH_ISSUER[\s\S]*AUTH_AUDIENCE/);
  });
});

describe("audit chain primitives", () => {
  it("canonical JSON sorts keys at every level and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: undefined, x: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":2,"z":1}]},"b":1}');
    expect(digestOf({ a: 1, b: 2 })).toBe(digestOf({ b: 2, a: 1, etag: "ignored" }));
    expect(digestOf(undefined)).toBeNull();
  });

  it("a record's hash covers every field", () => {
    const r = { tenantId: "t", scopeId: "_tenant", seq: 1, actor: "a", action: "x.create", resource: "/x/1", correlationId: "c", at: "2026-01-01T00:00:00.000Z", beforeDigest: null, afterDigest: "d", prevHash: "0".repeat(64) };
    const h = recordHash(r);
    for (const [k, v] of Object.entries(r)) {
      const changed = { ...r, [k]: typeof v === "number" ? v + 1 : `${String(v)}!` };
      expect(recordHash(changed), k).not.toBe(h);
    }
  });
});

describe("events are chunked within Event Grid's limits", () => {
  const event = (i: number, size: number): CloudEvent => ({ specversion: "1.0", id: String(i), source: "/aigov", type: "t", subject: "s", time: "", datacontenttype: "application/json", data: "x".repeat(size) });
  it("by count and by bytes, in order", () => {
    const many = Array.from({ length: 12_001 }, (_, i) => event(i, 1));
    expect(chunkEvents(many).map((c) => c.length)).toEqual([5000, 5000, 2001]);
    const big = Array.from({ length: 5 }, (_, i) => event(i, 400_000));
    const chunks = chunkEvents(big);
    expect(chunks.map((c) => c.length)).toEqual([2, 2, 1]);
    for (const c of chunks) expect(Buffer.byteLength(JSON.stringify(c))).toBeLessThanOrEqual(1024 * 1024);
    expect(chunks.flat().map((e) => e.id)).toEqual(["0", "1", "2", "3", "4"]);
    expect(() => chunkEvents([event(0, 2_000_000)])).toThrow(/alone exceeds/);
  });
});

describe("small contracts", () => {
  it("ids are prefixed, URL-safe and unique", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newId("prj")));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^prj_[0-9a-z]{20}$/);
  });

  it("If-Match: strong comparison, quotes optional, lists and * allowed", () => {
    expect(etagMatches('"abc"', '"abc"')).toBe(true);
    expect(etagMatches("abc", '"abc"')).toBe(true);
    expect(etagMatches("abc", 'W/"abc"')).toBe(false);
    expect(etagMatches("abc", '"x", "abc"')).toBe(true);
    expect(etagMatches("abc", "*")).toBe(true);
    // "*" is the whole field or nothing (RFC 9110: `"*" / #entity-tag`): in a list it matches nothing.
    expect(etagMatches("abc", '"nope", *')).toBe(false);
    expect(etagMatches("abc", '*, "abc"')).toBe(true);
    expect(etagMatches("abc", '"abd"')).toBe(false);
  });

  it("continuation tokens continue only the list that issued them; any other, or one the store refuses, is a 400", async () => {
    const seen: (string | undefined)[] = [];
    const store = {
      queryPage: async (_p: unknown, spec: QuerySpec) => {
        seen.push(spec.continuationToken);
        if (spec.continuationToken === "refused") throw new ContinuationTokenRefused();
        return { items: [], continuationToken: spec.continuationToken === undefined ? "store-token" : undefined };
      },
    } as unknown as Store;
    const partition = { tenantId: "t1", scopeId: "p1" };
    const query = { docType: "model", orderBy: { field: "name", direction: "ASC" as const } };
    const first = await listPage(store, partition, query, { maxPageSize: 2 });
    expect(first.continuationToken).toBeDefined();
    expect(first.continuationToken).not.toContain("store-token");
    // The next page, at another page size too, resumes from the store's token.
    expect(await listPage(store, partition, query, { maxPageSize: 5, continuationToken: first.continuationToken })).toEqual({ items: [] });
    expect(seen).toEqual([undefined, "store-token"]);

    const refusal = { kind: "validation", errors: [{ field: "query.continuationToken", message: "is not a token this API issued for this list" }] };
    const invalid = (token: string, p = partition, q: typeof query | { docType: string } = query) =>
      listPage(store, p, q, { maxPageSize: 2, continuationToken: token }).then(() => "served", (e: { error?: unknown }) => e.error);
    const forge = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    // Another tenant's, another project's, another query's token: never handed to the store.
    expect(await invalid(first.continuationToken!, { tenantId: "t2", scopeId: "p1" })).toMatchObject(refusal);
    expect(await invalid(first.continuationToken!, { tenantId: "t1", scopeId: "p2" })).toMatchObject(refusal);
    expect(await invalid(first.continuationToken!, partition, { docType: "model" })).toMatchObject(refusal);
    for (const forged of ["garbage", "", forge({ v: 1, c: "{}" }), forge({ v: 2, c: "" }), forge({ v: 2, c: 1 }), forge({ v: 2, c: "x", q: "other" }), forge([])]) {
      expect(await invalid(forged), forged).toMatchObject(refusal);
    }
    expect(seen).toEqual([undefined, "store-token"]);
    // A token of this list that the store cannot resume from (Cosmos DB's 400): the caller's 400 too.
    const binding = JSON.parse(Buffer.from(first.continuationToken!, "base64url").toString()).q as string;
    expect(await invalid(forge({ v: 2, c: "refused", q: binding }))).toMatchObject(refusal);
  });

  it("every domain error kind maps to a 4xx or 503", () => {
    const kinds = [
      { kind: "unauthenticated", detail: "" }, { kind: "forbidden", detail: "" }, { kind: "notFound", resource: "/x" },
      { kind: "validation", detail: "", errors: [] }, { kind: "malformedBody", detail: "" }, { kind: "unsupportedMediaType", detail: "" },
      { kind: "payloadTooLarge", limitBytes: 1 }, { kind: "conflict", detail: "", reason: "name_taken" }, { kind: "preconditionRequired" },
      { kind: "preconditionFailed" }, { kind: "unavailable", detail: "" },
    ] satisfies DomainError[];
    expect(kinds.map((k) => mapError(k).status)).toEqual([401, 403, 404, 400, 400, 415, 413, 409, 428, 412, 503]);
  });
});
