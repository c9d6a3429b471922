import type { ModelService } from "../../pillars/models/service.js";
import { keyReaches, type KeyReach } from "../policy/tenant-settings.js";
import type { KeyDoc, KeyDocuments } from "./documents.js";

/**
 * The keys whose tier screens prompts (a content-safety level) in `projectId`: the project's own and those
 * shared into it, each with the names of the models it reaches there. A region rule written to the
 * project or one of its models is held on them too (ADR 024).
 */
export async function keysScreeningIn(
  docs: Pick<KeyDocuments, "listAll" | "sharedInto" | "read">,
  models: Pick<ModelService, "listAll">,
  tenantId: string,
  projectId: string,
): Promise<KeyReach[]> {
  const own = await docs.listAll(tenantId, projectId);
  const shared: KeyDoc[] = [];
  for await (const s of docs.sharedInto(tenantId, projectId)) {
    const doc = await docs.read(tenantId, s.fromProject, s.keyId);
    if (doc) shared.push(doc);
  }
  const screening = [...own, ...shared].filter((d) => d.limits.contentSafety !== undefined);
  if (!screening.length) return [];
  const sources = [...new Set(screening.map((d) => d.projectId))];
  const withModels = await Promise.all(sources.map(async (id) => ({ id, models: await models.listAll(tenantId, id) })));
  return keyReaches(screening, withModels).get(projectId) ?? [];
}
