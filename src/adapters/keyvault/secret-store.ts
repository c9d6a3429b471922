import type { TokenCredential } from "@azure/identity";
import type { KeyVaultSecret, SecretClient, SecretClientOptions, SecretProperties } from "@azure/keyvault-secrets";
import {
  assertValidSecretName,
  assertValidSecretVersion,
  assertValidSetInput,
  type SecretStore,
  type SecretValue,
  type SetSecretOptions,
} from "../../ports/secrets.js";

export interface KeyVaultSecretStoreOptions {
  /** Default: DefaultAzureCredential (managed identity in Azure). */
  credential?: TokenCredential;
  /** Passed to SecretClient as is (retry options, serviceVersion, or allowInsecureConnection for a local fake). */
  clientOptions?: SecretClientOptions;
}

/** The fields of an SDK error worth keeping; the error object itself never leaves this file (see sanitized()). */
interface KeyVaultErrorShape {
  statusCode?: number;
  code?: string;
  message?: string;
  details?: { error?: { code?: string; message?: string; innerError?: { code?: string } } };
}

const shapeOf = (e: unknown): KeyVaultErrorShape => (typeof e === "object" && e !== null ? (e as KeyVaultErrorShape) : {});
const innerCode = (e: unknown): string | undefined => shapeOf(e).details?.error?.innerError?.code;
const isNotFound = (e: unknown): boolean => shapeOf(e).statusCode === 404;
// Only this 403 means "disabled"; any other 403 (RBAC, firewall) must surface, not read as "missing".
const isDisabled = (e: unknown): boolean =>
  shapeOf(e).statusCode === 403 && (innerCode(e) === "SecretDisabled" || /disabled secret/i.test(shapeOf(e).details?.error?.message ?? ""));

/**
 * SDK errors can carry a secret value: RestError.request.body holds the value of a failed set(), and a
 * PARSE_ERROR's message embeds the response body of a get(). So callers get a new Error built only from
 * the status, the service's error code and the service's own message (Key Vault error messages never
 * contain values), with no cause attached.
 */
function sanitized(op: string, name: string, e: unknown): Error {
  const s = shapeOf(e);
  const service = s.details?.error;
  const code = innerCode(e) ?? service?.code ?? s.code;
  let detail: string | undefined;
  if (service?.message) detail = service.message;
  else if (s.code !== "PARSE_ERROR" && s.statusCode === undefined && typeof s.message === "string") detail = s.message;
  const parts = [s.statusCode !== undefined ? `HTTP ${s.statusCode}` : undefined, code].filter((p) => p !== undefined);
  const err = new Error(
    `Key Vault ${op} of secret "${name}" failed${parts.length ? ` (${parts.join(", ")})` : ""}${detail ? `: ${detail}` : ""}`,
  );
  err.name = "SecretStoreError";
  return err;
}

function propsOf(p: SecretProperties): Omit<SecretValue, "value"> {
  if (!p.version) throw new Error(`Key Vault returned secret "${p.name}" without a version`);
  const out: Omit<SecretValue, "value"> = {
    name: p.name,
    version: p.version,
    // Key Vault always sends both; the fallbacks only keep the type honest.
    updatedOn: p.updatedOn ?? p.createdOn ?? new Date(0),
    enabled: p.enabled ?? true,
    tags: { ...(p.tags ?? {}) },
  };
  if (p.createdOn) out.createdOn = p.createdOn;
  if (p.expiresOn) out.expiresOn = p.expiresOn;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  return out;
}

function valueOf(s: KeyVaultSecret): SecretValue {
  if (s.value === undefined) throw new Error(`Key Vault returned secret "${s.name}" without a value`);
  return { ...propsOf(s.properties), value: s.value };
}

/**
 * Newest first by creation time. Key Vault lists versions in no time order (by version id, in practice)
 * and its timestamps have one-second resolution, so two versions created within the same second keep
 * the service's relative order: an unavoidable ambiguity, harmless for rotations that are days apart.
 */
const newestFirst = (a: Omit<SecretValue, "value">, b: Omit<SecretValue, "value">): number =>
  (b.createdOn?.getTime() ?? 0) - (a.createdOn?.getTime() ?? 0);

/**
 * SecretStore over Azure Key Vault. Retries (429/5xx, Retry-After) are the SDK's own policy; nothing
 * here retries. Cost per call: get = 1 request (plus a version listing only when the latest version is
 * disabled), set = 1, listVersions = 1 per page of 25, disableVersion = 1, delete = 2 (the delete and
 * the poller's first status read; we do not wait for the deletion to finish or for a purge).
 */
export class KeyVaultSecretStore implements SecretStore {
  private client: SecretClient | undefined;

  constructor(
    private readonly vaultUrl: string,
    private readonly opts: KeyVaultSecretStoreOptions = {},
  ) {}

  private sdk(): SecretClient {
    if (!this.client) {
      // Loaded on first use: keeps cold start cheap and the CommonJS copy of the SDK the only one.
      /* eslint-disable @typescript-eslint/no-require-imports */
      const kv = require("@azure/keyvault-secrets") as typeof import("@azure/keyvault-secrets");
      const credential =
        this.opts.credential ?? new (require("@azure/identity") as typeof import("@azure/identity")).DefaultAzureCredential();
      /* eslint-enable @typescript-eslint/no-require-imports */
      this.client = new kv.SecretClient(this.vaultUrl, credential, this.opts.clientOptions);
    }
    return this.client;
  }

  async get(name: string, version?: string): Promise<SecretValue | undefined> {
    assertValidSecretName(name);
    if (version !== undefined) assertValidSecretVersion(version);
    try {
      return valueOf(await this.sdk().getSecret(name, version === undefined ? {} : { version }));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      if (isDisabled(e)) return version === undefined ? this.newestEnabled(name) : undefined;
      throw sanitized("get", name, e);
    }
  }

  /** Key Vault refuses to read a disabled latest version; the port promises the newest enabled one instead. */
  private async newestEnabled(name: string): Promise<SecretValue | undefined> {
    for (const v of await this.listVersions(name)) {
      if (!v.enabled) continue;
      try {
        return valueOf(await this.sdk().getSecret(name, { version: v.version }));
      } catch (e) {
        // Disabled or deleted since the listing: try the next one.
        if (isNotFound(e) || isDisabled(e)) continue;
        throw sanitized("get", name, e);
      }
    }
    return undefined;
  }

  async set(name: string, value: string, opts: SetSecretOptions = {}): Promise<SecretValue> {
    assertValidSecretName(name);
    assertValidSetInput(value, opts);
    try {
      const created = await this.sdk().setSecret(name, value, {
        ...(opts.expiresOn ? { expiresOn: opts.expiresOn } : {}),
        ...(opts.tags ? { tags: opts.tags } : {}),
        ...(opts.contentType !== undefined ? { contentType: opts.contentType } : {}),
      });
      return valueOf(created);
    } catch (e) {
      const code = innerCode(e);
      if (shapeOf(e).statusCode === 409 && (code === "ObjectIsDeletedButRecoverable" || code === "ObjectIsBeingDeleted")) {
        throw new Error(`secret "${name}" is soft-deleted in Key Vault: recover or purge it before setting it again`);
      }
      throw sanitized("set", name, e);
    }
  }

  async listVersions(name: string): Promise<Omit<SecretValue, "value">[]> {
    assertValidSecretName(name);
    const out: Omit<SecretValue, "value">[] = [];
    try {
      for await (const p of this.sdk().listPropertiesOfSecretVersions(name)) out.push(propsOf(p));
    } catch (e) {
      if (isNotFound(e)) return [];
      throw sanitized("listVersions", name, e);
    }
    return out.sort(newestFirst);
  }

  async disableVersion(name: string, version: string): Promise<void> {
    assertValidSecretName(name);
    assertValidSecretVersion(version);
    try {
      await this.sdk().updateSecretProperties(name, version, { enabled: false });
    } catch (e) {
      if (isNotFound(e)) throw new Error(`secret "${name}" has no version "${version}"`);
      throw sanitized("disableVersion", name, e);
    }
  }

  async delete(name: string): Promise<void> {
    assertValidSecretName(name);
    try {
      // The DELETE takes effect at once for reads; the deletion becoming visible under /deletedsecrets
      // (what the poller waits for) can take seconds, and nothing here depends on it.
      await this.sdk().beginDeleteSecret(name);
    } catch (e) {
      if (isNotFound(e)) return;
      throw sanitized("delete", name, e);
    }
  }
}
