import type { ActiveExemption } from "../../policy/exemptions.js";
import type { CompilerInputIn } from "../../policy/index.js";
import { mapLimit } from "../../util/map-limit.js";
import type { KeyDoc, KeyDocReader } from "../keys/documents.js";
import type { InputTransform } from "./preview.js";

/** One compile of a tenant's input: what the contributors of that compile share (read once, used by several). */
export interface InputRun {
  tenantId: string;
  /** The value under `key` for this compile, loaded by the first contributor that asks. */
  once<T>(key: string, load: () => Promise<T>): Promise<T>;
}

/** A step on the compiler input after tenant floors: it adds to or changes the input, in its place in the list. */
export type InputContributor = (input: CompilerInputIn, run: InputRun) => Promise<CompilerInputIn>;

/** The contributors as one transform (TenantCompiler, PolicyPreviewService), applied in order. */
export function compilerInput(contributors: readonly InputContributor[]): InputTransform {
  return async (tenantId, input) => {
    const memo = new Map<string, Promise<unknown>>();
    const run: InputRun = {
      tenantId,
      once: <T>(key: string, load: () => Promise<T>) => {
        if (!memo.has(key)) memo.set(key, load());
        return memo.get(key) as Promise<T>;
      },
    };
    let out = input;
    for (const contribute of contributors) out = await contribute(out, run);
    return out;
  };
}

/** The keys of every project of the input, read once per compile. */
const keysOf = (keys: KeyDocReader, input: CompilerInputIn, run: InputRun) =>
  run.once("keysByProject", async () => new Map<string, KeyDoc[]>(await mapLimit(input.projects, 8, async (p) => [p.id, await keys.listAll(run.tenantId, p.id)] as const)));

/** Virtual key profiles become key tiers (ADR 008). */
export const keyProfiles =
  (keys: KeyDocReader): InputContributor =>
  async (input, run) => {
    const { withKeyProfiles } = await import("../keys/profiles.js");
    return withKeyProfiles(input, await keysOf(keys, input, run));
  };

/**
 * A locked project (a sandbox past its review date) accepts no key of another project: its own keys are
 * suspended by the lock, and keys shared into it must not go on reaching it. Live state, like the keys:
 * applied to every compile, system publishes included; the lock and its end each ask for a publish.
 */
export const lockedProjects =
  (projects: { lockedIds(tenantId: string): Promise<Set<string>> }): InputContributor =>
  async (input, run) => {
    const locked = await projects.lockedIds(run.tenantId);
    if (locked.size === 0) return input;
    return { ...input, projects: input.projects.map((p) => (locked.has(p.id) && p.sharedKeyTiers?.length ? { ...p, sharedKeyTiers: [] } : p)) };
  };

/** Active exemptions relax their controls (ADR 007), for previews and publishes alike. */
export const activeExemptions =
  (exemptions: { active(tenantId: string): Promise<ActiveExemption[]> }): InputContributor =>
  async (input, run) => {
    const active = await exemptions.active(run.tenantId);
    if (active.length === 0) return input;
    const { applyExemptions } = await import("../../policy/exemptions.js");
    return applyExemptions(input, active);
  };

/** Exemption tiers a key's subscription is still on stay compiled until it has moved (a product is never deleted under it). */
export const publishedExemptionTiers =
  (keys: KeyDocReader): InputContributor =>
  async (input, run) => {
    const { withPublishedExemptionTiers } = await import("../keys/profiles.js");
    return withPublishedExemptionTiers(input, await keysOf(keys, input, run));
  };

/** What the registry's contributors read: key documents and the active exemptions, never the services that write them. */
export interface RegistryReaders {
  keys: KeyDocReader;
  exemptions: { active(tenantId: string): Promise<ActiveExemption[]> };
  projects: { lockedIds(tenantId: string): Promise<Set<string>> };
}

/**
 * The compiler input's contributors, in order: key profiles become key tiers (locked projects accept
 * none of another project's), then exemptions relax controls (after the tenant floors, which the
 * compiler applies first), then exemption tiers a key is still on are kept.
 */
export function registryContributors(readers: RegistryReaders): InputContributor[] {
  return [keyProfiles(readers.keys), lockedProjects(readers.projects), activeExemptions(readers.exemptions), publishedExemptionTiers(readers.keys)];
}

/** The platform's browser origins (GATEWAY_BROWSER_ORIGINS): every API the tenant publishes lets their pages call it (cors). */
export const browserOrigins =
  (origins: readonly string[]): InputContributor =>
  async (input) =>
    origins.length ? { ...input, browserOrigins: [...origins] } : input;
