import { createHmac, randomBytes } from "node:crypto";
import type { SecretRef } from "../../ports/gateway.js";
import type { SecretStore } from "../../ports/secrets.js";
import { TENANT_SCOPE, type Store, type StoredDoc } from "../../ports/store.js";
import type { SlotName } from "./documents.js";
import { keyDigest } from "./format.js";

/** Index from a secret's digest to its key (tenant partition): lookups of leaked keys, never the secret itself. */
export interface DigestDoc extends StoredDoc {
  docType: "keyDigest";
  projectId: string;
  keyId: string;
  slot: SlotName;
  version: string;
}

/** Key Vault names allow letters, digits and '-'. */
export const secretName = (keyId: string, slot: SlotName) => `vkey-${keyId.replace("_", "-")}-${slot}`;
export const fillerName = (keyId: string, slot: SlotName) => `vkfill-${keyId.replace("_", "-")}-${slot}`;
const PEPPER_NAME = "vkey-pepper";
const digestId = (digest: string) => `keydigest.${digest}`;

/** Resolves the secret references of subscriptions when the gateway's body is built (the publishers get this). */
export type SecretResolver = (ref: SecretRef) => Promise<string>;

/**
 * The key material: each slot's secret versions in the secret store, the pepper (in the secret store
 * only) behind the digest index and the fillers, and the digest index itself (ADR 008). Cosmos never
 * holds a secret; the gateway's publishers resolve references through `resolveSecret`.
 */
export class KeySecrets {
  private pepper: Promise<string> | undefined;

  constructor(
    private readonly store: Store,
    private readonly secrets: SecretStore,
  ) {}

  /** A new secret version for a key's slot; its version. */
  async write(keyId: string, projectId: string, slot: SlotName, plaintext: string): Promise<string> {
    return (await this.secrets.set(secretName(keyId, slot), plaintext, { contentType: "aigov-virtual-key", tags: { keyId, projectId } })).version;
  }

  /** A secret version's value, if it is still readable. */
  async read(keyId: string, slot: SlotName, version: string): Promise<string | undefined> {
    return (await this.secrets.get(secretName(keyId, slot), version))?.value;
  }

  /** Records the secret's digest (tenant partition) so a leaked secret can be traced to its key. */
  async index(tenantId: string, projectId: string, keyId: string, slot: SlotName, version: string, plaintext: string): Promise<void> {
    const digest = keyDigest(await this.pepperValue(), plaintext);
    const doc: DigestDoc = { id: digestId(digest), tenantId, scopeId: TENANT_SCOPE, docType: "keyDigest", projectId, keyId, slot, version };
    const r = await this.store.batch({ tenantId, scopeId: TENANT_SCOPE }, [{ kind: "create", doc }]);
    if (!r.ok) throw new Error(`key digest index write failed (${r.status})`);
  }

  /** The digest entry of a secret, if it was ever a key's. */
  async lookup(tenantId: string, plaintext: string): Promise<DigestDoc | undefined> {
    return this.store.read<DigestDoc>({ tenantId, scopeId: TENANT_SCOPE }, digestId(keyDigest(await this.pepperValue(), plaintext)));
  }

  /**
   * A secret version made for a rotation that was not recorded: disabled (never readable again, so
   * never publishable) and its digest entry removed. Best effort: a failure is logged (never the value).
   */
  async discardUnused(tenantId: string, keyId: string, slot: SlotName, version: string, plaintext: string): Promise<void> {
    try {
      await this.secrets.disableVersion(secretName(keyId, slot), version);
    } catch (err) {
      console.warn(`key ${keyId}: could not disable the unused secret version ${version} of an unrecorded rotation: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      await this.store.batch({ tenantId, scopeId: TENANT_SCOPE }, [{ kind: "delete", id: digestId(keyDigest(await this.pepperValue(), plaintext)) }]);
    } catch {
      // A stale digest entry of a secret nobody ever saw only makes a lookup of it answer "retired".
    }
  }

  /** Disables a retired secret version (every enabled one of the slot when `version` is undefined). Best effort. */
  async disableRetired(keyId: string, slot: SlotName, version?: string): Promise<void> {
    try {
      const versions = await this.secrets.listVersions(secretName(keyId, slot));
      for (const v of versions) if (v.enabled && (version === undefined || v.version === version)) await this.secrets.disableVersion(secretName(keyId, slot), v.version);
    } catch (err) {
      console.warn(`key ${keyId}: could not disable a retired secret version: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Resolves the secret references of subscriptions for the publisher: real secrets from the store, fillers derived. */
  readonly resolveSecret: SecretResolver = async (ref) => {
    if (ref.name.startsWith("vkfill-")) {
      // Derived, never stored: unknowable without the pepper, different for every slot and generation.
      return `unused-${createHmac("sha256", await this.pepperValue()).update(`${ref.name}/${ref.version}`).digest("base64url")}`;
    }
    const value = await this.secrets.get(ref.name, ref.version);
    if (!value) throw new Error(`secret ${ref.name} (version ${ref.version}) is not available`);
    return value.value;
  };

  private pepperValue(): Promise<string> {
    this.pepper ??= (async () => {
      if (!(await this.secrets.get(PEPPER_NAME))) await this.secrets.set(PEPPER_NAME, randomBytes(32).toString("base64url"), { contentType: "aigov-pepper" });
      // Instances racing on first use may each write a version: all of them use the OLDEST enabled
      // one, which they agree on (the newest would differ until every write has landed).
      // Listed newest first: reversed, so a stable sort keeps creation order among equal times.
      const versions = (await this.secrets.listVersions(PEPPER_NAME)).filter((v) => v.enabled).reverse();
      const oldest = versions.sort((a, b) => (a.createdOn?.getTime() ?? 0) - (b.createdOn?.getTime() ?? 0))[0];
      const value = oldest ? await this.secrets.get(PEPPER_NAME, oldest.version) : undefined;
      if (!value) throw new Error("the key pepper is not readable");
      return value.value;
    })().catch((err: unknown) => {
      this.pepper = undefined;
      throw err;
    });
    return this.pepper;
  }
}
