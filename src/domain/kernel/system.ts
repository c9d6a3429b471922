import type { RequestContext } from "../common.js";

/**
 * The request context of automation (jobs, orchestration activities, settle handlers): a `system:`
 * actor with no roles, so it passes no role check by accident; audit records name the actor.
 */
export function systemContext(tenantId: string, actor: `system:${string}`, correlationId: string): RequestContext {
  return { principal: { tenantId, userId: actor, roles: new Set() }, correlationId };
}
