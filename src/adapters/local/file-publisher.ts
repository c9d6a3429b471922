import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative } from "node:path";
import type {
  ApiArtifact,
  ArtifactRef,
  GatewayArtifact,
  GatewayPublisher,
  GatewayReadBack,
  ProductArtifact,
  PublishOutcome,
  ResolveSecret,
  SecretRef,
} from "../../ports/gateway.js";
import { diffChildren, mapLimit, parseRef, runPublish, type Current, type Locator, type PlannedWrite, type PublishIo } from "../apim/plan.js";
import {
  fromArmProperties,
  operationPath,
  operationProperties,
  productApiPath,
  resourcePath,
  subscriptionProperties,
  toArmProperties,
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
 * apis/proj-x.json with apis/proj-x/operations/<op>.json, products/gold.json with products/gold/apis/<api>.json
 * (a link: ARM sends no body, so the file holds `{}`), subscriptions/<sid>.json.
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

  publish(desired: GatewayArtifact[], previous: Record<ArtifactRef, string>): Promise<PublishOutcome> {
    const io: PublishIo = {
      lookup: async (loc: Locator): Promise<Current | undefined> => {
        const props = await this.readJson(loc);
        if (props === undefined) return undefined;
        return loc.kind === "backend" ? { backendType: props.type === "Pool" ? "Pool" : "Single" } : {};
      },
      write: async (w: PlannedWrite) => {
        const a = w.artifact;
        const base = this.pathOf(w.loc);
        const secretRef = (ref: SecretRef) => ({ secretRef: { name: ref.name, version: ref.version } });
        const properties = a.kind === "subscription" ? subscriptionProperties(a, secretRef(a.primaryKey), secretRef(a.secondaryKey)) : toArmProperties(a);
        if (a.kind === "policy" || a.kind === "fragment") await this.writeFile(`${base}.xml`, a.xml);
        await this.writeJson(base, { properties });
        if (a.kind === "api") await this.syncOperations(a);
        if (a.kind === "product") await this.syncProductApis(a);
      },
      remove: async (_ref: ArtifactRef, loc: Locator) => {
        const base = this.pathOf(loc);
        await rm(`${base}.json`, { force: true });
        await rm(`${base}.xml`, { force: true });
        // As in APIM: an API takes its operations with it, a product its API links.
        if (loc.kind === "api") await rm(join(base, "operations"), { recursive: true, force: true });
        if (loc.kind === "product") await rm(join(base, "apis"), { recursive: true, force: true });
        await this.pruneEmptyDirs(loc.kind === "api" || loc.kind === "product" ? base : dirname(base));
      },
    };
    return runPublish(io, desired, previous);
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
    if (loc.kind === "api") return { operations: await this.readChildren(join(this.pathOf(loc), "operations")) };
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

  private async syncOperations(a: ApiArtifact): Promise<void> {
    const desired = new Map(a.operations.map((o) => [o.id, JSON.stringify({ properties: operationProperties(o) })]));
    const dir = join(this.pathOf({ kind: "api", id: a.id }), "operations");
    const existing = new Map((await this.readChildren(dir)).map((c) => [c.name, JSON.stringify({ properties: c.properties })]));
    const { put, remove } = diffChildren(desired, existing, (x, y) => x === y);
    for (const id of put) await this.writeJson(join(this.root, ...operationPath(a.id, id).split("/")), JSON.parse(desired.get(id) as string));
    for (const id of remove) await rm(join(dir, `${id}.json`), { force: true });
  }

  private async syncProductApis(a: ProductArtifact): Promise<void> {
    const dir = join(this.pathOf({ kind: "product", id: a.id }), "apis");
    const existing = new Map((await this.readChildren(dir)).map((c) => [c.name, true]));
    const { put, remove } = diffChildren(new Map(a.apis.map((id) => [id, true])), existing, () => true);
    for (const apiId of put) await this.writeJson(join(this.root, ...productApiPath(a.id, apiId).split("/")), {});
    for (const apiId of remove) await rm(join(dir, `${apiId}.json`), { force: true });
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
