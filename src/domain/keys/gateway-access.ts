import type { ActiveExemption } from "../../policy/exemptions.js";
import type { CompilerInputIn } from "../../policy/index.js";
import type { GatewayNames } from "../../policy/names.js";
import type { GatewayPublisher } from "../../ports/gateway.js";
import type { ExemptionTier } from "./documents.js";

/** Why the system asks for a publish (audit `by`, the revision's reason). */
export interface PublishCause {
  by: string;
  reason: string;
  correlationId: string;
}

/** The gateway-facing side the key service needs from publishing (ADR 006). */
export interface GatewayAccess {
  /** The tenant's gateway (its instance, its key reserved there). */
  publisher(tenantId: string): Promise<GatewayPublisher>;
  /** The ids of the tenant's artifacts (names.ts). */
  names(tenantId: string): GatewayNames;
  /**
   * A key's subscription ids under the gateway keys the tenant held on its instance before the current
   * one: where a key synced before subscription ids were recorded may still have one.
   */
  formerSubscriptions(tenantId: string, keyId: string): Promise<string[]>;
  /** Whether the gateway holds an artifact (the key's product or API) according to the last publish. */
  holds(tenantId: string, ref: string): Promise<boolean>;
  /**
   * Whether the tenant's artifacts are on the instance its publisher writes to (no move between instances
   * pending until its next publish): only then does a read there say what admits the tenant's keys.
   * Absent: always.
   */
  settled?(tenantId: string): Promise<boolean>;
  /**
   * Makes (if needed) a pending revision so the tenant's profiles reach the gateway, on top of what is
   * published; `needsPublish`: nothing of the tenant is published yet, a person's publish comes first.
   */
  ensurePublished(tenantId: string, cause: PublishCause): Promise<{ needsPublish?: boolean }>;
  /** The tier an active key-scope exemption puts the key on (its product replaces the key's own), if any. */
  exemptionTier(tenantId: string, projectId: string, keyId: string): Promise<ExemptionTier | undefined>;
}

/** What the keys' gateway access is made of: the tenant's gateway, publishing, exemptions and the compiler input. */
export interface GatewayAccessParts {
  gateways: { publisher(tenantId: string, baseline?: "required" | "bestEffort"): Promise<GatewayPublisher>; names(tenantId: string): GatewayNames; formerSubscriptions(tenantId: string, keyId: string): Promise<string[]> };
  publishing: { holds(tenantId: string, ref: string): Promise<boolean>; settled(tenantId: string): Promise<boolean>; ensurePublished(tenantId: string, cause: PublishCause): Promise<{ needsPublish?: boolean }> };
  /** The tenant's active exemptions, read at most once every few seconds (the lifecycle job asks for every key). */
  exemptions: { recent(tenantId: string): Promise<ActiveExemption[]> };
  /** The tenant's compiler input, with every contributor applied (src/domain/policy/compiler-input.ts). */
  compilerInput(tenantId: string): Promise<CompilerInputIn>;
}

/**
 * The keys' gateway access over publishing: concurrent asks for a tenant's publish share one, and an
 * exempted key's tier is derived exactly as the compiler input derives it.
 */
export function gatewayAccess(parts: GatewayAccessParts): GatewayAccess {
  const ensuring = new Map<string, Promise<{ needsPublish?: boolean }>>();
  return {
    // A key's sync (a revocation among them) never waits on the instance baseline (tenant-gateways.ts).
    publisher: (tenantId) => parts.gateways.publisher(tenantId, "bestEffort"),
    names: (tenantId) => parts.gateways.names(tenantId),
    formerSubscriptions: (tenantId, keyId) => parts.gateways.formerSubscriptions(tenantId, keyId),
    holds: (tenantId, ref) => parts.publishing.holds(tenantId, ref),
    settled: (tenantId) => parts.publishing.settled(tenantId),
    ensurePublished: async (tenantId, cause) => {
      // Many keys waiting for products ask together (a bulk create): callers while one compile of the
      // tenant is under way share it; a key it started too early to see is picked up by the next
      // lifecycle run (the key stays gateway.state "pending" until then).
      const running = ensuring.get(tenantId);
      if (running) return running;
      const run = parts.publishing
        .ensurePublished(tenantId, cause)
        .then((r): { needsPublish?: boolean } => (r.needsPublish ? { needsPublish: true } : {}))
        .finally(() => ensuring.delete(tenantId));
      ensuring.set(tenantId, run);
      return run;
    },
    exemptionTier: async (tenantId, projectId, keyId) => {
      const active = await parts.exemptions.recent(tenantId);
      if (!active.some((e) => e.scope.level === "key" && e.scope.keyId === keyId)) return undefined;
      // Rare: derive the tier exactly as the compiler input does, so the subscription and the products agree.
      const input = await parts.compilerInput(tenantId);
      const id = input.virtualKeys?.find((k) => k.id === keyId && k.projectId === projectId)?.tier;
      const { EXEMPTION_TIER_PREFIX } = await import("../../policy/exemptions.js");
      const tier = id?.startsWith(EXEMPTION_TIER_PREFIX) ? input.keyTiers?.find((t) => t.id === id) : undefined;
      return tier ? { id: tier.id, tier: { ...tier, limits: { ...tier.limits } } } : undefined;
    },
  };
}
