import { z } from "zod";
import { QUOTA_PERIODS } from "../../policy/settings.js";
import { ApproverUserId } from "../approvals/schema.js";
import { idSchema } from "../common.js";
import { ModelId } from "../../pillars/models/schema.js";
import { ProjectId } from "../projects/schema.js";

export const KeyId = idSchema("key");
export const KEY_STATUSES = ["active", "suspended", "revoked", "expired"] as const;


export const KeyScopes = z
  .strictObject({
    models: z
      .array(ModelId)
      .max(200)
      .optional()
      .meta({ description: "Models of the project this key may call. Absent: every model of the project. Empty: none (a key for tools or agents only); enforced at the gateway" }),
    tools: z
      .array(z.string().regex(/^(srv_[0-9a-z]{20}(\/[A-Za-z0-9_.-]{1,128})?|tbx_[0-9a-z]{20})$/, "must be an MCP server id (srv_…), a server's tool (srv_…/<tool name>) or a toolbox id (tbx_…)"))
      .max(200)
      .optional()
      .meta({ description: "MCP tools this key may call: a whole server (srv_…), one tool of a server (srv_…/<tool>), or a toolbox (tbx_…). Absent or empty: no tools (tools are granted to keys explicitly); enforced at the gateway" }),
    agents: z
      .array(z.string().regex(/^agt_[0-9a-z]{20}$/, "must be an agent id (agt_…)"))
      .max(200)
      .optional()
      .meta({ description: "Agents of the project this key may call at the gateway. Absent or empty: none (agents are granted to keys explicitly)" }),
  })
  .meta({ id: "KeyScopes" });
export type KeyScopes = z.output<typeof KeyScopes>;

export const KeyLimits = z
  .strictObject({
    tokensPerMinute: z.int().min(1).max(1_000_000_000).optional(),
    tokenQuota: z.strictObject({ limit: z.int().min(1).max(1_000_000_000_000), period: z.enum(QUOTA_PERIODS) }).optional(),
    requestsPerMinute: z.int().min(1).max(1_000_000).optional(),
    contentSafety: z
      .enum(["low", "medium", "high"])
      .optional()
      .meta({ description: "Content safety on this key's model calls, on top of the project's: low blocks high-severity content, medium medium and up (with prompt shields), high low and up; needs the tenant's services.contentSafety" }),
    budget: z
      .strictObject({ amount: z.number().positive().max(10_000_000), currency: z.string().regex(/^[A-Z]{3}$/), period: z.enum(QUOTA_PERIODS) })
      .optional()
      .meta({ description: "Cost per period; the gateway enforces it as a token quota derived from the highest price among the key's models (never more than the budget buys)" }),
  })
  .meta({ id: "KeyLimits" });
export type KeyLimits = z.output<typeof KeyLimits>;

export const KeySpec = z
  .strictObject({
    name: z.string().trim().min(1).max(100),
    description: z.string().max(1000).optional(),
    owner: z.string().min(1).max(256).optional().meta({ description: "Who answers for the key (the token's oid); the caller when absent" }),
    scopes: KeyScopes.default({}),
    limits: KeyLimits.default({}),
    expiresAt: z.iso.datetime().optional().meta({ description: "Mandatory in effect: the project's default lifetime applies when absent; at most the project's maximum" }),
    justification: z.string().trim().min(1).max(2000).optional().meta({
      description: "Why the key is needed: required when the project's keys need an approval (keyPolicy.requireApproval) and the caller does not manage the project; approvers read it",
    }),
  })
  .meta({ id: "KeySpec" });
export type KeySpecInput = z.input<typeof KeySpec>;

export const KeyShare = z
  .object({
    projectId: ProjectId,
    status: z.enum(["pending", "active", "rejected", "revoked", "revocationPending"]).meta({
      description: "revocationPending: ended here, but the gateway has not yet moved the key off the product that reaches the project (it may still work there); never reported as revoked before that",
    }),
    approvalId: z.string(),
    requestedBy: z.string(),
    requestedAt: z.iso.datetime(),
  })
  .meta({ id: "KeyShare" });

/** A key asked for in a project whose keys need an approval: it exists from the request, suspended until approved. */
export const KeyRequestApproval = z
  .object({
    approvalId: z.string(),
    state: z.enum(["pending", "approved", "rejected"]),
    requestedBy: z.string(),
    requestedAt: z.iso.datetime(),
    decidedAt: z.iso.datetime().optional(),
  })
  .meta({ id: "KeyRequestApproval" });

export const Key = z
  .object({
    id: KeyId,
    projectId: ProjectId,
    name: z.string(),
    description: z.string().optional(),
    owner: z.string(),
    scopes: KeyScopes,
    limits: KeyLimits,
    expiresAt: z.iso.datetime(),
    status: z.enum([...KEY_STATUSES, "revocationPending"]).meta({
      description: "revocationPending: revoked here, but the gateway has not confirmed yet (it may still work); never reported as revoked before that",
    }),
    suspendedBy: z
      .enum(["projectLock", "agentHold", "admin", "roleRemoved"])
      .optional()
      .meta({
        description:
          "Who suspended a suspended key, when not its owner: projectLock (its sandbox expired), agentHold (its agent is held), roleRemoved (its owner lost their project role: an admin's resume is a 409 key_owner_without_role), admin (an admin suspended it: only an admin resumes it)",
      }),
    gateway: z
      .object({
        state: z.enum(["synced", "pending"]),
        subscriptionId: z.string(),
        profile: z.string(),
        waitingFor: z.literal("publish").optional().meta({ description: "The key's project is not at the gateway yet: automation never publishes a project; the key syncs after a TenantAdmin's publish" }),
      })
      .meta({ description: "pending: a change (creation, rotation, suspension…) is not yet confirmed by the gateway" }),
    prefix: z.string().meta({ description: "First characters of the current secret" }),
    last4: z.string().meta({ description: "Last four characters of the current secret" }),
    rotation: z
      .object({ phase: z.enum(["overlap", "retiring"]), startedAt: z.iso.datetime(), overlapUntil: z.iso.datetime().optional(), scheduled: z.boolean() })
      .optional(),
    awaitingCollection: z.boolean().meta({ description: "A scheduled rotation made a new secret the owner has not collected yet (POST …:collect)" }),
    lastRotatedAt: z.iso.datetime().optional(),
    rotationCount: z.int(),
    lastUsedAt: z.iso.datetime().optional().meta({ description: "When known (from gateway metrics)" }),
    shares: z.array(KeyShare),
    approval: KeyRequestApproval.optional().meta({ description: "Set on a key requested where keys need an approval: suspended while pending, active once approved, revoked if rejected" }),
    sharedFrom: ProjectId.optional().meta({
      description: "Set when the key is seen from a project it is shared with (listed there, or answered to that project's admin ending the share): the key's own project; `shares` then holds only the share into that project",
    }),
    createdAt: z.iso.datetime(),
    createdBy: z.string(),
    updatedAt: z.iso.datetime(),
    updatedBy: z.string(),
    etag: z.string(),
  })
  .meta({ id: "Key" });
export type Key = z.output<typeof Key>;

export const KeyWithSecret = Key.extend({
  key: z.string().meta({ description: "The key itself: shown this once, never again" }),
}).meta({ id: "KeyWithSecret" });
export type KeyWithSecret = z.output<typeof KeyWithSecret>;

export const KeyList = z.object({ items: z.array(Key), nextLink: z.string().optional() }).meta({ id: "KeyList" });

const OVERLAP = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;
export function overlapMs(iso: string): number | undefined {
  const m = OVERLAP.exec(iso);
  if (!m || iso === "P" || iso.endsWith("T")) return undefined;
  const [, d, h, min, s] = m.map((v) => Number(v ?? 0));
  return (((d! * 24 + h!) * 60 + min!) * 60 + s!) * 1000;
}

export const RotateSpec = z
  .strictObject({
    overlap: z
      .string()
      .refine((v) => overlapMs(v) !== undefined, "must be an ISO-8601 duration such as PT24H, or PT0S for a compromised key")
      .refine((v) => (overlapMs(v) ?? 0) <= 30 * 24 * 3600 * 1000, "at most P30D")
      .default("PT24H")
      .meta({ description: "How long the old secret keeps working after the new one is confirmed at the gateway (PT0S: retire at once)" }),
    reason: z.string().trim().min(1).max(500).optional(),
  })
  .meta({ id: "RotateSpec" });

export const ReasonSpec = z.strictObject({ reason: z.string().trim().min(1).max(500) }).meta({ id: "KeyReasonSpec" });

export const LookupSpec = z.strictObject({ key: z.string().min(1).max(200) }).meta({ id: "KeyLookupSpec" });
export const LookupResult = z
  .object({
    keyId: KeyId,
    projectId: ProjectId,
    status: Key.shape.status,
    secret: z.enum(["current", "next", "retired"]).meta({ description: "Which of the key's secrets this is" }),
  })
  .meta({ id: "KeyLookupResult" });
export type LookupResult = z.output<typeof LookupResult>;

export const ShareSpec = z
  .strictObject({
    projectId: ProjectId.meta({ description: "The project (same tenant) the key may also be used with" }),
    justification: z.string().trim().min(1).max(4000),
    approvers: z
      .array(z.union([z.strictObject({ user: ApproverUserId }), z.strictObject({ role: z.enum(["TenantAdmin", "ProjectAdmin", "Approver"]) })]))
      .min(1)
      .max(20)
      .optional()
      .meta({ description: "Approvers added as an extra stage after the tenant's route for key shares (by default the target project's admins or a TenantAdmin)" }),
  })
  .meta({ id: "KeyShareSpec" });
