import type { PillarKeys } from "../../pillars/pillar.js";
import { AppError } from "../errors.js";
import type { KeyService, KeyToolScopes } from "./service.js";

/**
 * Keys as pillars see them: issued, rescoped and revoked through the key service with the caller's
 * rights (every rule of a key applies: lifetime, scopes, confirmation at the gateway).
 */
export function pillarKeys(keys: KeyService, models: { listAll(tenantId: string, projectId: string): Promise<{ id: string }[]> }, tools: KeyToolScopes | undefined): PillarKeys {
  return {
    async issue(ctx, projectId, spec) {
      // Pillars issue keys for project managers (an agent's key), whose keys never wait for an approval: no driver to start.
      const { drive: _none, ...key } = await keys.create(ctx, projectId, { name: spec.name, description: spec.description, owner: spec.owner, scopes: { models: spec.scopes.models, ...(spec.scopes.tools.length ? { tools: spec.scopes.tools } : {}) }, limits: spec.limits, ...(spec.expiresAt ? { expiresAt: spec.expiresAt } : {}) });
      return key;
    },
    async rescope(ctx, projectId, keyId, scopes, limits) {
      await keys.rescope(ctx, projectId, keyId, { models: scopes.models, ...(scopes.tools.length ? { tools: scopes.tools } : {}) }, limits);
    },
    async revoke(ctx, projectId, keyId, reason) {
      const key = await keys.get(ctx, projectId, keyId).catch(() => undefined);
      if (!key || key.status === "revoked" || key.status === "revocationPending") return;
      await keys.revoke(ctx, projectId, keyId, { reason });
    },
    async reassign(ctx, projectId, keyId, owner) {
      await keys.reassign(ctx, projectId, keyId, owner);
    },
    async live(ctx, projectId, keyId) {
      // Only a key that is gone counts as no key: a read that fails otherwise must not let a second key be issued.
      const key = await keys.get(ctx, projectId, keyId).catch((err: unknown) => {
        if (err instanceof AppError && err.error.kind === "notFound") return undefined;
        throw err;
      });
      return !!key && (key.status === "active" || key.status === "suspended");
    },
    hold(ctx, projectId, keyId, reason) {
      return keys.setActiveBySystem(ctx, projectId, keyId, "suspended", reason, "agentHold");
    },
    release(ctx, projectId, keyId, reason) {
      return keys.setActiveBySystem(ctx, projectId, keyId, "active", reason, "agentHold");
    },
    async *held() {
      for await (const k of keys.agentHeldKeys()) yield { tenantId: k.tenantId, projectId: k.projectId, keyId: k.id };
    },
    async unknownScopes(tenantId, projectId, scopes) {
      const known = new Set((await models.listAll(tenantId, projectId)).map((m) => m.id));
      return { models: scopes.models.filter((m) => !known.has(m)), tools: scopes.tools.length ? (tools ? await tools.unknownScopes(tenantId, projectId, scopes.tools) : scopes.tools) : [] };
    },
  };
}
