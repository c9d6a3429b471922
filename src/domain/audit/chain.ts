import { createHash } from "node:crypto";

/** JSON with object keys sorted at every level, so equal values always hash equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

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
