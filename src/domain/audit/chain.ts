import { createHash } from "node:crypto";
import { canonicalJson } from "../../util/canonical-json.js";

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** Digest of a resource's state as the audit log records it (server-only version fields excluded). */
export function digestOf(resource: Record<string, unknown> | undefined): string | null {
  if (!resource) return null;
  const { etag: _etag, _etag: _e, ...rest } = resource;
  return sha256(canonicalJson(rest));
}

export const GENESIS_HASH = "0".repeat(64);

/** The fields covered by a record's hash; `hash` itself is not. */
export interface ChainedFields {
  tenantId: string;
  scopeId: string;
  seq: number;
  actor: string;
  action: string;
  resource: string;
  correlationId: string;
  at: string;
  beforeDigest: string | null;
  afterDigest: string | null;
  prevHash: string;
}

export function recordHash(r: ChainedFields): string {
  const covered: ChainedFields = {
    tenantId: r.tenantId,
    scopeId: r.scopeId,
    seq: r.seq,
    actor: r.actor,
    action: r.action,
    resource: r.resource,
    correlationId: r.correlationId,
    at: r.at,
    beforeDigest: r.beforeDigest,
    afterDigest: r.afterDigest,
    prevHash: r.prevHash,
  };
  return sha256(canonicalJson(covered));
}
