import { z } from "zod";
import { idSchema } from "../common.js";

export const RevisionId = idSchema("rev");

export const REVISION_STATUSES = ["pending", "published", "failed", "superseded"] as const;

export const ArtifactChange = z
  .object({
    ref: z.string().meta({ description: "Artifact reference, e.g. policy:api/aigov-prj_…, backend:b_…" }),
    change: z.enum(["added", "modified", "removed"]),
  })
  .meta({ id: "ArtifactChange" });
export type ArtifactChange = z.output<typeof ArtifactChange>;

/** At most this many changes are listed on a revision; the counts are always complete. */
export const MAX_LISTED_CHANGES = 500;

/** A project whose registry did not compile, and what the publish did instead (src/domain/policy/preview.ts). */
const IsolatedProject = z.object({ projectId: z.string(), name: z.string(), error: z.string(), outcome: z.enum(["keptPublished", "keptArtifacts", "leftOut"]) });

export const Revision = z
  .object({
    id: RevisionId,
    number: z.int().min(1).meta({ description: "1, 2, 3… per tenant" }),
    kind: z.enum(["publish", "rollback"]),
    rollbackOf: RevisionId.optional().meta({ description: "For a rollback: the revision whose artifacts it republishes" }),
    basedOn: RevisionId.optional().meta({ description: "The revision the gateway held when this one was made (changes are relative to it)" }),
    reason: z.string().optional(),
    origin: z.enum(["person", "system"]).meta({
      description: "person: a TenantAdmin's publish or rollback (the registry as it is); system: automation (keys, shares, exemptions) compiling what is already published plus its own change",
    }),
    registryFrom: RevisionId.optional().meta({ description: "For a system publish: the revision whose registry it compiled (the published one, a person's pending one, or a failed system revision carrying one)" }),
    registryLeftOut: RevisionId.optional().meta({
      description: "For a system publish: the revision (a person's, which reads superseded) whose registry failed system revisions carried and this one leaves out, so it waits for a person's publish",
    }),
    isolated: z
      .array(IsolatedProject)
      .optional()
      .meta({
        description:
          "Projects whose registry did not compile: their last published registry was compiled instead (keptPublished), the gateway kept what it held for them because that does not compile either (keptArtifacts), or they were left out (never published); every other project published",
      }),
    staged: z
      .object({ tenant: z.boolean(), projects: z.array(z.string()) })
      .optional()
      .meta({ description: "For a system publish: registry changes it did not ship (tenant settings, projects) — they wait for a person's publish" }),
    status: z.enum(REVISION_STATUSES).meta({
      description: "pending until applied; published once the gateway holds it; superseded when a newer revision was made before it was applied (a system revision carries the registry of the one it superseded); failed after the retries ran out",
    }),
    createdAt: z.iso.datetime(),
    createdBy: z.string(),
    publishedAt: z.iso.datetime().optional(),
    failedAt: z.iso.datetime().optional(),
    error: z.string().optional(),
    retry: z
      .object({ of: RevisionId, attempt: z.int().min(1) })
      .optional()
      .meta({ description: "For a system publish asked again by the publish sweep: the failed system revision it retries (the first of the run) and which attempt it is" }),
    artifactCount: z.int(),
    counts: z.object({ added: z.int(), modified: z.int(), removed: z.int() }),
    changes: z.array(ArtifactChange).meta({ description: `What changed against basedOn (at most ${MAX_LISTED_CHANGES} listed)` }),
    outcome: z
      .object({ sent: z.int(), unchanged: z.int(), deleted: z.int() })
      .optional()
      .meta({ description: "What the publisher actually sent and deleted, over every call the publish took (steps, retries); unchanged: artifacts already holding the same content when it began (not sent)" }),
    diff: z.string().optional().meta({ description: "Unified diff against basedOn (with ?diff=true)" }),
  })
  .meta({ id: "Revision" });
export type Revision = z.output<typeof Revision>;

export const RevisionList = z.object({ items: z.array(Revision), nextLink: z.string().optional() }).meta({ id: "RevisionList" });

export const PublishSpec = z
  .strictObject({
    reason: z.string().trim().min(1).max(500).optional().meta({ description: "Why; kept on the revision and in the audit record" }),
  })
  .meta({ id: "PublishSpec" });
export type PublishSpec = z.output<typeof PublishSpec>;

export const PublishResult = z
  .object({
    changed: z.boolean().meta({ description: "false when the compiled artifacts equal what the gateway holds: nothing is published" }),
    revision: Revision.optional().meta({ description: "The new revision (pending), or the current one when nothing changed" }),
    isolated: z
      .array(IsolatedProject)
      .optional()
      .meta({ description: "Projects of this publish whose registry did not compile (also when nothing changed): compiled as published, kept as the gateway holds them, or left out" }),
  })
  .meta({ id: "PublishResult" });
export type PublishResult = z.output<typeof PublishResult>;

export const RevisionQuery = z.strictObject({
  diff: z.enum(["true", "false"]).optional().meta({ description: "Include the unified diff against the revision it was based on" }),
});

export const GatewayDiff = z
  .object({
    basedOn: RevisionId.optional().meta({ description: "The published revision compared with" }),
    counts: z.object({ added: z.int(), modified: z.int(), removed: z.int() }),
    changes: z.array(ArtifactChange),
    diff: z.string().meta({ description: "Unified diff: published (a/) → compiled now (b/)" }),
  })
  .meta({ id: "GatewayDiff" });
export type GatewayDiff = z.output<typeof GatewayDiff>;

export const DriftItem = z
  .object({
    ref: z.string(),
    state: z.enum(["modified", "missing"]),
    diff: z.string().optional().meta({ description: "Unified diff: last published (a/) → what the gateway holds (b/)" }),
  })
  .meta({ id: "DriftItem" });
export type DriftItem = z.output<typeof DriftItem>;

export const DriftReport = z
  .object({
    status: z
      .enum(["inSync", "drifted", "neverPublished", "notChecked"])
      .meta({ description: "notChecked: a revision is published but no drift check has compared the gateway with it yet" }),
    revisionId: RevisionId.optional().meta({ description: "The last published revision the gateway was compared with" }),
    revisionNumber: z.int().optional(),
    checkedAt: z.iso.datetime().optional(),
    checkedArtifacts: z.int(),
    items: z.array(DriftItem),
  })
  .meta({ id: "DriftReport" });
export type DriftReport = z.output<typeof DriftReport>;
