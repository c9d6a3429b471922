import { z } from "zod";
import { PageQuery } from "../common.js";
import { ProjectId } from "../projects/schema.js";

export const AuditRecord = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    scope: z.string().meta({ description: "'tenant' or the project id whose chain holds the record" }),
    seq: z.number().int().min(1),
    actor: z.string(),
    action: z.string().meta({ description: "e.g. project.create" }),
    resource: z.string().meta({ description: "tenant-relative path, e.g. /projects/prj_..." }),
    correlationId: z.string(),
    at: z.iso.datetime(),
    beforeDigest: z.string().nullable(),
    afterDigest: z.string().nullable(),
    prevHash: z.string(),
    hash: z.string(),
  })
  .meta({ id: "AuditRecord" });
export type AuditRecord = z.output<typeof AuditRecord>;

export const AuditList = z
  .object({ items: z.array(AuditRecord), continuationToken: z.string().optional(), nextLink: z.string().optional() })
  .meta({ id: "AuditList" });

export const AuditScope = z.union([z.literal("tenant"), ProjectId]);

export const AuditQuery = PageQuery.extend({
  scope: AuditScope.default("tenant"),
  resource: z.string().min(1).max(512).optional(),
  actor: z.string().min(1).max(256).optional(),
  from: z.iso.datetime().optional(),
  to: z.iso.datetime().optional(),
});
export type AuditQuery = z.output<typeof AuditQuery>;

export const ChainBreak = z.object({
  scope: z.string(),
  seq: z.number().int(),
  recordId: z.string().optional(),
  reason: z.enum(["hashMismatch", "linkMismatch", "missingRecord", "headMismatch"]),
});

export const AuditVerification = z
  .object({
    ok: z.boolean(),
    scopes: z.array(z.object({ scope: z.string(), records: z.number().int(), ok: z.boolean() })),
    recordsChecked: z.number().int(),
    firstBreak: ChainBreak.optional(),
  })
  .meta({ id: "AuditVerification" });
export type AuditVerification = z.output<typeof AuditVerification>;
