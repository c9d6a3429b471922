import { createRequire } from "node:module";
import type { Operation } from "../api/contract.js";
import { modelsPillar } from "./models/index.js";
import { toolsPillar } from "./tools/index.js";
import { agentsPillar } from "./agents/index.js";
import type { Pillar } from "./pillar.js";

export type { Pillar, PillarKit, PillarRuntime } from "./pillar.js";

/** The pillars of the product, in order. */
const BUILT_IN: readonly Pillar[] = [modelsPillar as Pillar, toolsPillar as Pillar, agentsPillar as Pillar];

const EXTRA = Symbol.for("aigov.extraPillarModules");
const load = createRequire(__filename);

/**
 * Every pillar: the built-in ones, then any a test registered (by module path, see
 * registerPillarModules) before the app loaded. Everything that differs per pillar loops over this.
 */
export function pillars(): readonly Pillar[] {
  const extra = ((globalThis as Record<symbol, unknown>)[EXTRA] as string[] | undefined) ?? [];
  return [...BUILT_IN, ...extra.map((path) => (load(path) as { pillar: Pillar }).pillar)];
}

/**
 * Test seam: pillars from compiled modules (each exporting `pillar`), loaded by the app like its own.
 * Kept on globalThis because tests load src/ while the app runs the compiled dist/.
 */
export function registerPillarModules(paths: string[]): void {
  (globalThis as Record<symbol, unknown>)[EXTRA] = paths;
}

/** The operations every pillar serves. */
export const pillarOperations = (): Operation[] => pillars().flatMap((p) => p.routes.map((r) => r.op));

/** Valid bodies of every pillar's operations, by operation id (walks, docs). */
export const pillarExamples = (): Record<string, (unique: string) => unknown> => Object.assign({}, ...pillars().map((p) => p.examples)) as Record<string, (unique: string) => unknown>;
