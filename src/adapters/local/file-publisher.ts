import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative } from "node:path";
import type {
  ArtifactRef,
  GatewayArtifact,
  GatewayPublisher,
  GatewayReadBack,
  ProductArtifact,
  PublishBudget,
  PublishOutcome,
  ResolveSecret,
  SecretRef,
} from "../../ports/gateway.js";
import { markPublished } from "../../local-gateway/runtime/folder.js";
import { diffChildren, mapLimit, parseRef, runPublish, type Current, type Deferred, type Locator, type PlannedWrite, type PublishIo } from "../apim/plan.js";
import {
  fromArmProperties,
  operationPath,
  operationProperties,
  productApiPath,
  resourcePath,
  schemaPath,
  schemaProperties,
  subscriptionProperties,
  toArmProperties,
  toolPath,
  toolProperties,
  type ArmChildren,
} from "../apim/shapes.js";

export interface FilePublisherOptions {
  /** Used by read() only, to fingerprint a subscription's keys; the files never hold a key. Without it,
   * reading a subscription back fails; every other kind works. */
  resolveSecret?: ResolveSecret;
}

/**
 * The local twin of the APIM publisher: each artifact becomes files under `root` (e.g. .data/apim/) at its
 * ARM resource path below the service, so a user can read exactly what would be sent:
 *   <root>/<resource>.json  the ARM PUT body, `{ "properties": … }`, as ArmGatewayPublisher sends it
 *   <root>/<resource>.xml   for policies and fragments, the XML alone (the same text as properties.value)
 * e.g. apis/proj-x/policies/policy.{json,xml}, backends/pool-gpt4o.json, namedValues/nv-key.json,
 * apis/proj-x.json with apis/proj-x/operations/<op>.json and apis/proj-x/schemas/<schema>.json,
 * products/gold.json with products/gold/apis/<api>.json (a link: ARM sends no body, so the file holds
 * `{}`), subscriptions/<sid>.json. An MCP server is apis/<id>.json (`type: "mcp"`, with `mcpProperties`
 * when it passes through) with apis/<id>/tools/<tool>.json, whose `operationId` is the relative
 * "/apis/{apiId}/operations/{operationId}" (no ARM service here; the ARM publisher sends the full id).
 *
 * A subscription's file is its ARM body with `{ "secretRef": { name, version } }` where ARM gets the key:
 * key material never reaches the disk. read() resolves those refs (resolveSecret) to fingerprint them.
 *
 * Same planning, hashing, ordering and delete semantics as the ARM publisher (both run plan.ts's
 * runPublish); files have no ETags, so writes are unguarded (each file is replaced atomically).
 * read() returns what the files hold, so a hand edit shows up as drift. For policies and fragments the
 * .xml file is the one to edit: when present it wins over properties.value in the .json.
 */
export class FilePublisher implements GatewayPublisher {
  constructor(
    private readonly root: string,
    private readonly opts: FilePublisherOptions = {},
  ) {}

  /** Where an artifact's files live (without extension). */
  pathOf(loc: Locator): string {
    return join(this.root, ...resourcePath(loc).split("/"));
  }

  publish(desired: GatewayArtifact[], previous: Record<ArtifactRef, string>, budget?: PublishBudget): Promise<PublishOutcome> {
    const io: PublishIo = {
      lookup: async (loc: Locator): Promise<Current | undefined> => {
        const props = await this.readJson(loc);
        if (props === undefined) return undefined;
        if (loc.kind === "backend") return { backendType: props.type === "Pool" ? "Pool" : "Single" };
        if (loc.kind === "api") return { apiType: props.type === "mcp" ? "mcp" : "http" };
        return {};
      },
      write: async (w: PlannedWrite) => {
        const a = w.artifact;
        const base = this.pathOf(w.loc);
        const secretRef = (ref: SecretRef) => ({ secretRef: { name: ref.name, version: ref.version } });
        const properties = a.kind === "subscription" ? subscriptionProperties(a, secretRef(a.primaryKey), secretRef(a.secondaryKey)) : toArmProperties(a);
        if (a.kind === "policy" || a.kind === "fragment") await this.writeFile(`${base}.xml`, a.xml);
        await this.writeJson(base, { properties });
        // An API's children are synced in place (files have no references between them). A product's new API
        // links wait for the end of the publish (plan.ts, RANK): after the policies that govern those APIs.
        if (a.kind === "api") {
          await this.syncChildren(join(this.pathOf(w.loc), "schemas"), new Map((a.schemas ?? []).map((x) => [x.id, { properties: schemaProperties(x) }])), (id) => schemaPath(a.id, id));
          await this.syncChildren(join(this.pathOf(w.loc), "operations"), new Map(a.operations.map((o) => [o.id, { properties: operationProperties(o) }])), (id) => operationPath(a.id, id));
          const tools = a.mcp?.type === "restTools" ? a.mcp.tools : [];
          await this.syncChildren(join(this.pathOf(w.loc), "tools"), new Map(tools.map((t) => [t.id, { properties: toolProperties(t, "") }])), (id) => toolPath(a.id, id));
        }
        if (a.kind === "product") return this.syncProductApis(a);
      },
      remove: async (_ref: ArtifactRef, loc: Locator) => {
        const base = this.pathOf(loc);
        await rm(`${base}.json`, { force: true });
        await rm(`${base}.xml`, { force: true });
        // As in APIM: an API takes its operations, schemas, tools and policies with it, a product its API
        // links and its policy (runPublish deletes such a policy with its owner, never before: plan.ts).
        if (loc.kind === "api") for (const d of ["operations", "schemas", "tools", "policies"]) await rm(join(base, d), { recursive: true, force: true });
        if (loc.kind === "product") for (const d of ["apis", "policies"]) await rm(join(base, d), { recursive: true, force: true });
        await this.pruneEmptyDirs(loc.kind === "api" || loc.kind === "product" ? base : dirname(base));
      },
    };
    // However it ends (complete, a step of it, or failed part-way), the local gateway looks at the folder now.
    return runPublish(io, desired, previous, budget).finally(() => markPublished(this.root).catch(() => undefined));
  }

  async read(refs: ArtifactRef[]): Promise<Record<ArtifactRef, GatewayReadBack | undefined>> {
    const locs = refs.map(parseRef);
    const got = await mapLimit(locs, 16, async (loc) => {
      const props = await this.readJson(loc);
      if (props === undefined) return undefined;
      if (loc.kind === "policy" || loc.kind === "fragment") {
        const xml = await readOptional(`${this.pathOf(loc)}.xml`);
        if (xml !== undefined) props.value = xml;
      }
      return fromArmProperties(loc, props, await this.children(loc, props));
    });
    const out: Record<ArtifactRef, GatewayReadBack | undefined> = {};
    refs.forEach((ref, i) => (out[ref] = got[i]));
    return out;
  }

  /** Operations, linked APIs or (resolved from the file's secretRefs) keys, as fromArmProperties wants them. */
  private async children(loc: Locator, props: Record<string, unknown>): Promise<ArmChildren> {
    if (loc.kind === "api") {
      const dir = this.pathOf(loc);
      const [operations, schemas, tools] = await Promise.all(["operations", "schemas", "tools"].map((d) => this.readChildren(join(dir, d))));
      return { operations, schemas, tools };
    }
    if (loc.kind === "product") return { apis: (await this.readChildren(join(this.pathOf(loc), "apis"))).map((c) => c.name) };
    if (loc.kind !== "subscription") return {};
    const resolve = this.opts.resolveSecret;
    if (!resolve) throw new Error(`subscription ${loc.id}: this publisher was created without resolveSecret`);
    // A hand edit that broke a ref reads as an unknown key (drift), not as an exception.
    const keyOf = async (v: unknown): Promise<string | undefined> => {
      const ref = (v as { secretRef?: { name?: unknown; version?: unknown } } | null)?.secretRef;
      if (typeof ref?.name !== "string" || typeof ref.version !== "string") return undefined;
      return resolve({ name: ref.name, version: ref.version });
    };
    const [primaryKey, secondaryKey] = await Promise.all([keyOf(props.primaryKey), keyOf(props.secondaryKey)]);
    return { keys: { primaryKey, secondaryKey } };
  }

  /** The `{ properties }` of every .json in a child directory (operations, API links), by file name. */
  private async readChildren(dir: string): Promise<{ name: string; properties: Record<string, unknown> }[]> {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith(".json")).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return Promise.all(
      names.map(async (n) => ({ name: n.slice(0, -".json".length), properties: (await this.readJsonFile(join(dir, n))) ?? {} })),
    );
  }

  /** Makes the .json files in `dir` (an API's operations, schemas or tools) exactly `desired`, by id. */
  private async syncChildren(dir: string, desired: Map<string, { properties: object }>, path: (id: string) => string): Promise<void> {
    const want = new Map([...desired].map(([id, body]) => [id, JSON.stringify(body)]));
    const existing = new Map((await this.readChildren(dir)).map((c) => [c.name, JSON.stringify({ properties: c.properties })]));
    const { put, remove } = diffChildren(want, existing, (x, y) => x === y);
    for (const id of put) await this.writeJson(join(this.root, ...path(id).split("/")), desired.get(id));
    for (const id of remove) await rm(join(dir, `${id}.json`), { force: true });
    await this.pruneEmptyDirs(dir);
  }

  /** Removes the product's stale API links now; the links it gains are the deferred work (plan.ts, RANK). */
  private async syncProductApis(a: ProductArtifact): Promise<Deferred | void> {
    const dir = join(this.pathOf({ kind: "product", id: a.id }), "apis");
    const existing = new Map((await this.readChildren(dir)).map((c) => [c.name, true]));
    const { put, remove } = diffChildren(new Map(a.apis.map((id) => [id, true])), existing, () => true);
    for (const apiId of remove) await rm(join(dir, `${apiId}.json`), { force: true });
    if (put.length === 0) return;
    return async () => {
      for (const apiId of put) await this.writeJson(join(this.root, ...productApiPath(a.id, apiId).split("/")), {});
    };
  }

  private async writeFile(file: string, text: string): Promise<void> {
    await mkdir(dirname(file), { recursive: true });
    await atomicWrite(file, text);
  }

  private writeJson(base: string, body: unknown): Promise<void> {
    return this.writeFile(`${base}.json`, `${JSON.stringify(body, null, 2)}\n`);
  }

  /** The `properties` of the entity's .json, undefined when there is no file. */
  private readJson(loc: Locator): Promise<Record<string, unknown> | undefined> {
    return this.readJsonFile(`${this.pathOf(loc)}.json`);
  }

  private async readJsonFile(file: string): Promise<Record<string, unknown> | undefined> {
    const text = await readOptional(file);
    if (text === undefined) return undefined;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw new Error(`${file} is not valid JSON (edited by hand?): ${(err as Error).message}`);
    }
    const props = (body as { properties?: unknown } | null)?.properties;
    return props !== null && typeof props === "object" && !Array.isArray(props) ? { ...(props as Record<string, unknown>) } : {};
  }

  /** Removes now-empty directories from `dir` up to (not including) the root. */
  private async pruneEmptyDirs(dir: string): Promise<void> {
    for (let rel = relative(this.root, dir); rel !== "" && !rel.startsWith("..") && !isAbsolute(rel); rel = relative(this.root, dir)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or already gone): stop
      }
      dir = dirname(dir);
    }
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Write-then-rename, so a crash never leaves half a file for read() to report as drift. */
async function atomicWrite(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}
