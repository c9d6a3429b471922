/**
 * Shared services that see prompts — the content-safety resource screens every prompt, the embeddings
 * deployment embeds every cached one — against a scope's region rule (`regions.allowed`, ADR 024). A
 * rule filters a model's backends; a service outside it would carry the prompt out of the allowed
 * regions all the same. Pure: the compiler (the cache per model) and the settings writes (content
 * safety, which is never skipped) read the same answer.
 */
import { type EffectiveSettings } from "./settings.js";

/**
 * How a service's region fits a scope's effective settings: `ok` with no region rule or a region the
 * rule allows; `unstated` with a rule and no region stated (where the service runs is unknown);
 * `excluded` with a rule that does not list the stated region.
 */
export type ServiceRegionFit = "ok" | "unstated" | "excluded";

export function serviceRegionFit(eff: EffectiveSettings, service: { region?: string | undefined } | undefined): ServiceRegionFit {
  const rule = eff["regions.allowed"];
  if (!rule) return "ok";
  if (service?.region === undefined) return "unstated";
  return rule.value.includes(service.region) ? "ok" : "excluded";
}
