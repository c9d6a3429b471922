import { pageResult } from "../../http/paging.js";
import type { Pillar } from "../pillar.js";
import { route } from "../pillar.js";
import { createModel, deleteModel, getModel, listModels, updateModel } from "./operations.js";
import type { ModelService } from "./service.js";

const COLUMNS = ["id", "name", "provider", "modelName", "status", "sunsetDate"];

/**
 * The models pillar: a project's model registry (platform and external models, their backends and
 * write-only provider keys), served under /projects/{projectId}/models and compiled into the
 * project's API, backends and pools. The worked example of docs/pillars.md.
 */
export const modelsPillar: Pillar<ModelService> = {
  name: "models",
  routes: [
    route(createModel, async ({ params, body }, ctx, s) => ({ body: await s.create(ctx, params.projectId, body) })),
    route(listModels, async ({ params, query }, ctx, s) => ({
      body: pageResult(listModels, { params, query }, await s.list(ctx, params.projectId, query)),
    })),
    route(getModel, async ({ params }, ctx, s) => ({ body: await s.get(ctx, params.projectId, params.modelId) })),
    route(updateModel, async ({ params, body, ifMatch }, ctx, s) => ({ body: await s.update(ctx, params.projectId, params.modelId, body, ifMatch) })),
    route(deleteModel, async ({ params, ifMatch }, ctx, s) => {
      await s.delete(ctx, params.projectId, params.modelId, ifMatch);
      return {};
    }),
  ],

  async build(kit) {
    const [{ ModelService }, { toModelsInput }] = await Promise.all([import("./service.js"), import("./compiler.js")]);
    const service = new ModelService(kit.store, kit.changes, kit.clock, kit.providerSecrets, kit.projects, kit.settingsGuard, (tenantId) => kit.gatewayGrants(tenantId), kit.allowLoopback);
    return {
      service,
      countDependents: (tenantId, projectId) => service.count(tenantId, projectId),
      compilerInput: async (tenantId, project, vaultUri) => ({ models: toModelsInput(await service.listAll(tenantId, project.id), vaultUri) }),
    };
  },

  examples: {
    createModel: (u) => ({
      name: `walk-${u.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 40)}`,
      provider: "azure-openai",
      modelName: "gpt-4o",
      backends: [{ id: "primary", url: "https://walk.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
    }),
    updateModel: () => ({ displayName: "walked" }),
  },

  cli({ program, client, print, render, err, json, readJson }) {
    const models = program.command("models").description("register and govern a project's models");
    models
      .command("register <projectId>")
      .description("register a model from a JSON ModelSpec (backend keys are write-only)")
      .requiredOption("--file <path>", "the ModelSpec as JSON")
      .action(async (projectId: string, o: { file: string }) => {
        print(await client().models.create(projectId, readJson(o.file) as never), COLUMNS.concat("etag"));
      });
    models
      .command("list <projectId>")
      .description("list a project's models")
      .option("--max-page-size <n>")
      .option("--continuation-token <token>")
      .action(async (projectId: string, o: { maxPageSize?: string; continuationToken?: string }) => {
        const page = await client().models.list(projectId, { ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}), ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}) });
        if (page.continuationToken) err(`more: --continuation-token ${page.continuationToken}`);
        print(page.items, COLUMNS);
      });
    models.command("show <projectId> <modelId>").description("show a model").action(async (projectId: string, modelId: string) => {
      const m = await client().models.get(projectId, modelId);
      if (json()) return print(m);
      render("table", m, COLUMNS.concat("etag"));
      render("table", m.backends.map((b) => ({ ...b, credential: b.credential.type })), ["id", "url", "region", "priority", "weight", "credential"]);
    });
    const patch = async (projectId: string, modelId: string, body: object, ifMatch?: string) => {
      const c = client();
      print(await c.models.update(projectId, modelId, body as never, ifMatch ?? (await c.models.get(projectId, modelId)).etag), COLUMNS);
    };
    models
      .command("update <projectId> <modelId>")
      .description("apply a JSON merge patch to a model")
      .requiredOption("--file <path>", "the ModelPatch as JSON")
      .option("--if-match <etag>")
      .action((projectId: string, modelId: string, o: { file: string; ifMatch?: string }) => patch(projectId, modelId, readJson(o.file) as object, o.ifMatch));
    models
      .command("deprecate <projectId> <modelId>")
      .description("mark a model deprecated: it keeps working until its sunset date (after today), answering with Deprecation/Sunset headers; from that date on the gateway refuses its calls")
      .requiredOption("--sunset-date <yyyy-mm-dd>")
      .action((projectId: string, modelId: string, o: { sunsetDate: string }) => patch(projectId, modelId, { status: "deprecated", sunsetDate: o.sunsetDate }));
    models
      .command("block <projectId> <modelId>")
      .description("block a model: it leaves every pool and allow-list at the next publish")
      .action((projectId: string, modelId: string) => patch(projectId, modelId, { status: "blocked" }));
    models
      .command("delete <projectId> <modelId>")
      .description("delete a model and its stored keys")
      .option("--if-match <etag>")
      .action(async (projectId: string, modelId: string, o: { ifMatch?: string }) => {
        const c = client();
        await c.models.delete(projectId, modelId, o.ifMatch ?? (await c.models.get(projectId, modelId)).etag);
        err(`deleted ${modelId}`);
      });
  },
};
