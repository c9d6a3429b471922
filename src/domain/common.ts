import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";

export const ROLES = ["TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader"] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

/** Who is calling: always derived from a validated token, never from the request body. */
export interface Principal {
  tenantId: string;
  userId: string;
  name?: string;
  roles: ReadonlySet<Role>;
}

export interface RequestContext {
  principal: Principal;
  correlationId: string;
}

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

/** A URL-safe, unguessable id with a type prefix, e.g. prj_7x1k...; 20 chars = 100 random bits. */
export function newId(prefix: string): string {
  const bytes = randomBytes(20);
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 31];
  return `${prefix}_${out}`;
}

/** An id of the same shape as newId's, derived from `seed`: the same seed always gives the same id (idempotent creates). */
export function derivedId(prefix: string, seed: string): string {
  const bytes = createHash("sha256").update(seed).digest();
  let out = "";
  for (const b of bytes.subarray(0, 20)) out += ALPHABET[b & 31];
  return `${prefix}_${out}`;
}

export const idSchema = (prefix: string) =>
  z
    .string()
    .regex(new RegExp(`^${prefix}_[${ALPHABET}]{20}$`), `must be a ${prefix}_ id`)
    .meta({ description: `Server-generated id (${prefix}_ followed by 20 base32 characters)` });

/** Fields the server adds to every resource. */
export const serverFields = {
  tenantId: z.string(),
  createdAt: z.iso.datetime(),
  createdBy: z.string(),
  updatedAt: z.iso.datetime(),
  updatedBy: z.string(),
  etag: z.string().meta({ description: "Opaque version; send it back in If-Match" }),
};

/**
 * A whole number in a query string: decimal digits only. (z.coerce would take whatever Number() takes:
 * "0x10", "1e1", " 16", "".)
 */
export const queryInt = (min: number, max: number, fallback: number) =>
  z.preprocess((v) => (typeof v === "string" && /^[0-9]{1,15}$/.test(v) ? Number(v) : v), z.number().int().min(min).max(max).default(fallback));

export const PageQuery = z.strictObject({
  maxPageSize: queryInt(1, 100, 50),
  continuationToken: z.string().min(1).max(4096).optional(),
});

export interface Page<T> {
  items: T[];
  continuationToken?: string;
}

const unquote = (etag: string) => etag.replace(/^"(.*)"$/, "$1");

/**
 * If-Match per RFC 9110 §13.1.1: "*" (alone: the field is `"*" / #entity-tag`) matches any current
 * version; otherwise strong comparison against each listed tag, so a weak validator (W/"…") never
 * matches. Quotes are ignored (Cosmos quotes its _etag, the embedded server does not).
 */
export function etagMatches(current: string, ifMatch: string): boolean {
  const values = ifMatch.split(",").map((v) => v.trim());
  if (values.length === 1 && values[0] === "*") return true;
  return values.some((v) => v !== "*" && !v.startsWith("W/") && unquote(v) === unquote(current));
}
export const etagValue = unquote;
