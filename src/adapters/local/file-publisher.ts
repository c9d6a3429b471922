import { mkdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative } from "node:path";
import type { ArtifactRef, GatewayArtifact, GatewayPublisher, PublishOutcome } from "../../ports/gateway.js";
import { mapLimit, parseRef, runPublish, type Current, type Locator, type PlannedWrite, type PublishIo } from "../apim/plan.js";
import { fromArmProperties, resourcePath, toArmProperties } from "../apim/shapes.js";

/**
 * The local twin of the APIM publisher: each artifact becomes files under `root` (e.g. .data/apim/) at its
 * ARM resource path below the service, so a user can read exactly what would be sent:
 *   <root>/<resource>.json  the ARM PUT body, `{ "properties": … }`, as ArmGatewayPublisher sends it
 *   <root>/<resource>.xml   for policies and fragments, the XML alone (the same text as properties.value)
 * e.g. apis/proj-x/policies/policy.{json,xml}, backends/pool-gpt4o.json, namedValues/nv-key.json.
 *
 * Same planning, hashing, ordering and delete semantics as the ARM publisher (both run plan.ts's
 * runPublish); files have no ETags, so writes are unguarded (each file is replaced atomically).
 * read() returns what the files hold, so a hand edit shows up as drift. For policies and fragments the
 * .xml file is the one to edit: when present it wins over properties.value in the .json.
 */
export class FilePublisher implements GatewayPublisher {
  constructor(private readonly root: string) {}

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
        const base = this.pathOf(w.loc);
        const properties = toArmProperties(w.artifact);
        await mkdir(dirname(base), { recursive: true });
        if (w.artifact.kind === "policy" || w.artifact.kind === "fragment") await atomicWrite(`${base}.xml`, w.artifact.xml);
        await atomicWrite(`${base}.json`, `${JSON.stringify({ properties }, null, 2)}\n`);
      },
      remove: async (_ref: ArtifactRef, loc: Locator) => {
        const base = this.pathOf(loc);
        await rm(`${base}.json`, { force: true });
        await rm(`${base}.xml`, { force: true });
        await this.pruneEmptyDirs(dirname(base));
      },
    };
    return runPublish(io, desired, previous);
  }

  async read(refs: ArtifactRef[]): Promise<Record<ArtifactRef, GatewayArtifact | undefined>> {
    const locs = refs.map(parseRef);
    const got = await mapLimit(locs, 16, async (loc) => {
      const props = await this.readJson(loc);
      if (props === undefined) return undefined;
      if (loc.kind === "policy" || loc.kind === "fragment") {
        const xml = await readOptional(`${this.pathOf(loc)}.xml`);
        if (xml !== undefined) props.value = xml;
      }
      return fromArmProperties(loc, props);
    });
    const out: Record<ArtifactRef, GatewayArtifact | undefined> = {};
    refs.forEach((ref, i) => (out[ref] = got[i]));
    return out;
  }

  /** The `properties` of the entity's .json, undefined when there is no file. */
  private async readJson(loc: Locator): Promise<Record<string, unknown> | undefined> {
    const file = `${this.pathOf(loc)}.json`;
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
