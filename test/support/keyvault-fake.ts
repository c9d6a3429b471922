import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Just enough of the Key Vault secrets REST API (2025-07-01) for @azure/keyvault-secrets to drive the
 * SecretStore port over plain HTTP: set, get (latest or a version), list versions (paged), update
 * properties, delete and the delete poller's read of /deletedsecrets/{name}.
 *
 * Behaviour copied from the service, because the adapter depends on it:
 *  - the auth challenge: a request without Authorization gets 401 + WWW-Authenticate; any bearer token then passes;
 *  - names are case-insensitive;
 *  - a read of a disabled version (or of a disabled latest) is 403 Forbidden / SecretDisabled;
 *  - versions are listed in version-id order, not by time, and timestamps have 1 s resolution;
 *  - setting a soft-deleted name is 409 Conflict / ObjectIsDeletedButRecoverable.
 * Timestamps come from `clock` so tests can keep versions a second apart without sleeping.
 */
export interface KeyVaultFakeRequest {
  method: string;
  path: string;
  authorized: boolean;
  status: number;
}

export interface KeyVaultFakeFault {
  status: number;
  /** Raw response body (default: a Key Vault error JSON). */
  body?: string;
  contentType?: string;
  retryAfterSeconds?: number;
}

export interface KeyVaultFake {
  url: string;
  requests: KeyVaultFakeRequest[];
  /** Answers the next authorized request(s) with this fault instead of serving them. */
  failNext(fault: KeyVaultFakeFault, times?: number): void;
  close(): Promise<void>;
}

interface FakeVersion {
  version: string;
  value: string;
  contentType?: string;
  tags?: Record<string, string>;
  enabled: boolean;
  exp?: number;
  nbf?: number;
  created: number;
  updated: number;
}

interface FakeSecret {
  name: string;
  versions: FakeVersion[];
  deleted?: { deletedDate: number; scheduledPurgeDate: number };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly inner?: string,
  ) {
    super(message);
  }
}

const RECOVERY = { recoveryLevel: "Recoverable+Purgeable", recoverableDays: 90 };
const PAGE_SIZE = 25;

export async function startKeyVaultFake(opts: { clock?: () => Date } = {}): Promise<KeyVaultFake> {
  const clock = opts.clock ?? (() => new Date());
  const nowSeconds = () => Math.floor(clock().getTime() / 1000);
  const secrets = new Map<string, FakeSecret>();
  const requests: KeyVaultFakeRequest[] = [];
  const faults: KeyVaultFakeFault[] = [];
  let base = "";

  const attributes = (v: FakeVersion) => ({
    enabled: v.enabled,
    ...(v.nbf !== undefined ? { nbf: v.nbf } : {}),
    ...(v.exp !== undefined ? { exp: v.exp } : {}),
    created: v.created,
    updated: v.updated,
    ...RECOVERY,
  });
  const item = (s: FakeSecret, v: FakeVersion) => ({
    id: `${base}/secrets/${s.name}/${v.version}`,
    attributes: attributes(v),
    ...(v.tags ? { tags: v.tags } : {}),
    ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
  });
  const bundle = (s: FakeSecret, v: FakeVersion) => ({ value: v.value, ...item(s, v) });
  const deletedBundle = (s: FakeSecret) => {
    const latest = s.versions.at(-1);
    if (!latest || !s.deleted) throw new Error("fake: deleted secret without versions");
    return {
      recoveryId: `${base}/deletedsecrets/${s.name}`,
      deletedDate: s.deleted.deletedDate,
      scheduledPurgeDate: s.deleted.scheduledPurgeDate,
      ...item(s, latest),
    };
  };

  const live = (name: string): FakeSecret => {
    const s = secrets.get(name.toLowerCase());
    if (!s || s.deleted) throw new HttpError(404, "SecretNotFound", `A secret with (name/id) ${name} was not found in this key vault.`);
    return s;
  };
  const versionOf = (s: FakeSecret, version: string): FakeVersion => {
    // An empty version segment means "latest", as in the service.
    const v = version === "" ? s.versions.at(-1) : s.versions.find((x) => x.version === version);
    if (!v) throw new HttpError(404, "SecretNotFound", `A secret with (name/id) ${s.name}/${version} was not found in this key vault.`);
    return v;
  };
  const validName = (name: string) => {
    if (!/^[0-9a-zA-Z-]{1,127}$/.test(name)) {
      throw new HttpError(400, "BadParameter", "The request URI contains an invalid name: " + name);
    }
  };
  const applyAttributes = (v: FakeVersion, a: { enabled?: boolean; exp?: number | null; nbf?: number | null } | undefined) => {
    if (!a) return;
    if (typeof a.enabled === "boolean") v.enabled = a.enabled;
    if (typeof a.exp === "number") v.exp = a.exp;
    if (typeof a.nbf === "number") v.nbf = a.nbf;
  };

  type Body = {
    value?: unknown;
    tags?: Record<string, string>;
    contentType?: string;
    attributes?: { enabled?: boolean; exp?: number | null; nbf?: number | null };
  };

  function route(method: string, segments: string[], url: URL, body: Body): unknown {
    const [collection, rawName, rawVersion, ...rest] = segments;
    const name = rawName ?? "";
    if (collection === "secrets" && name !== "" && rest.length === 0) {
      validName(name);
      if (method === "PUT" && rawVersion === undefined) {
        const existing = secrets.get(name.toLowerCase());
        if (existing?.deleted) {
          throw new HttpError(409, "Conflict", `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`, "ObjectIsDeletedButRecoverable");
        }
        if (typeof body.value !== "string") throw new HttpError(400, "BadParameter", "Property value is required.");
        const s = existing ?? { name, versions: [] };
        secrets.set(name.toLowerCase(), s);
        const now = nowSeconds();
        const v: FakeVersion = { version: randomBytes(16).toString("hex"), value: body.value, enabled: true, created: now, updated: now };
        if (body.tags) v.tags = body.tags;
        if (body.contentType !== undefined) v.contentType = body.contentType;
        applyAttributes(v, body.attributes);
        s.versions.push(v);
        return bundle(s, v);
      }
      if (method === "GET" && rawVersion === "versions") {
        const s = secrets.get(name.toLowerCase());
        const all = s && !s.deleted ? [...s.versions].sort((a, b) => a.version.localeCompare(b.version)) : [];
        const size = Math.min(Number(url.searchParams.get("maxresults") ?? PAGE_SIZE) || PAGE_SIZE, PAGE_SIZE);
        const skip = Number(url.searchParams.get("$skiptoken") ?? 0) || 0;
        const page = all.slice(skip, skip + size);
        const next = skip + size < all.length ? new URL(`${base}/secrets/${name}/versions`) : undefined;
        if (next) {
          next.searchParams.set("api-version", url.searchParams.get("api-version") ?? "");
          next.searchParams.set("$skiptoken", String(skip + size));
          next.searchParams.set("maxresults", String(size));
        }
        return { value: s ? page.map((v) => item(s, v)) : [], nextLink: next ? next.toString() : null };
      }
      if (method === "GET") {
        const s = live(name);
        const v = versionOf(s, rawVersion ?? "");
        if (!v.enabled) throw new HttpError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled");
        return bundle(s, v);
      }
      if (method === "PATCH") {
        const s = live(name);
        const v = versionOf(s, rawVersion ?? "");
        if (body.tags) v.tags = body.tags;
        if (body.contentType !== undefined) v.contentType = body.contentType;
        applyAttributes(v, body.attributes);
        v.updated = nowSeconds();
        // The service does not return the value from an update.
        return item(s, v);
      }
      if (method === "DELETE" && rawVersion === undefined) {
        const s = live(name);
        const now = nowSeconds();
        s.deleted = { deletedDate: now, scheduledPurgeDate: now + 90 * 86_400 };
        return deletedBundle(s);
      }
    }
    if (collection === "deletedsecrets" && name !== "" && rawVersion === undefined && method === "GET") {
      const s = secrets.get(name.toLowerCase());
      if (!s?.deleted) throw new HttpError(404, "SecretNotFound", `Deleted Secret not found: ${name}`);
      return deletedBundle(s);
    }
    throw new HttpError(501, "NotImplemented", `the Key Vault fake does not implement ${method} ${url.pathname}`);
  }

  const send = (res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
    res.end(typeof payload === "string" ? payload : JSON.stringify(payload));
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", base);
    const method = req.method ?? "GET";
    const authorized = /^Bearer \S+/i.test(req.headers.authorization ?? "");
    const log = (status: number) => requests.push({ method, path: url.pathname, authorized, status });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (!authorized) {
      log(401);
      send(
        res,
        401,
        { error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token." } },
        {
          "www-authenticate":
            'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"',
        },
      );
      return;
    }
    const fault = faults.shift();
    if (fault) {
      log(fault.status);
      res.writeHead(fault.status, {
        "content-type": fault.contentType ?? "application/json; charset=utf-8",
        ...(fault.retryAfterSeconds !== undefined ? { "retry-after": String(fault.retryAfterSeconds) } : {}),
      });
      res.end(fault.body ?? JSON.stringify({ error: { code: "ServiceUnavailable", message: "injected fault" } }));
      return;
    }
    try {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: Body = {};
      if (text) {
        try {
          body = JSON.parse(text) as Body;
        } catch {
          throw new HttpError(400, "BadParameter", "The request body is not valid JSON.");
        }
      }
      const segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
      // "/secrets/name/" (the SDK's "latest") and "/secrets/name" are the same resource.
      if (segments.length === 3 && segments[2] === "") segments.pop();
      const result = route(method, segments, url, body);
      log(200);
      send(res, 200, result);
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      log(e.status);
      send(res, e.status, { error: { code: e.code, message: e.message, ...(e.inner ? { innererror: { code: e.inner } } : {}) } });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { code: "InternalError", message: String(e) } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    requests,
    failNext(fault, times = 1) {
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
