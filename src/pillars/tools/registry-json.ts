/**
 * The official MCP registry's server.json (schema 2025-12-11, docs/tools.md): import turns one of its
 * `remotes[]` into a registration (Streamable HTTP or SSE; URL template variables must have values or
 * defaults); `packages[]` (npm, pypi, oci…) are kept as catalog metadata, marked not routable (the
 * gateway reaches remote servers only). Export writes a server.json for a registered remote server.
 */
import { z } from "zod";
import { AppError } from "../../domain/errors.js";
import type { McpServer, McpServerSpecInput } from "./schema.js";

export const SERVER_JSON_SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

const Input = z.object({ value: z.string().optional(), default: z.string().optional(), isRequired: z.boolean().optional(), isSecret: z.boolean().optional() }).loose();
const Remote = z.object({ type: z.enum(["streamable-http", "sse"]), url: z.string().min(1).max(2000), variables: z.record(z.string(), Input).optional(), headers: z.array(z.object({ name: z.string() }).loose()).optional() }).loose();
const ServerJson = z
  .object({
    $schema: z.string().optional(),
    name: z.string().regex(/^[a-zA-Z0-9.-]+\/[a-zA-Z0-9._-]+$/).min(3).max(200),
    description: z.string().min(1).max(100),
    version: z.string().min(1).max(255),
    title: z.string().min(1).max(100).optional(),
    websiteUrl: z.string().max(2000).optional(),
    repository: z.object({ url: z.string(), source: z.string() }).loose().optional(),
    packages: z.array(z.object({ registryType: z.string(), identifier: z.string() }).loose()).max(50).optional(),
    remotes: z.array(Remote).max(20).optional(),
  })
  .loose();

const invalid = (errors: { field: string; message: string }[]): never => {
  throw new AppError({ kind: "validation", detail: "the server.json cannot be imported", errors });
};

/** A registration from a server.json (`remote` picks one of several remotes; `name` overrides the derived name). */
export function importServerJson(json: unknown, options: { name?: string | undefined; remote?: number | undefined }): McpServerSpecInput {
  const parsed = ServerJson.safeParse(json);
  if (!parsed.success) invalid(parsed.error.issues.map((i) => ({ field: ["body", "serverJson", ...i.path].join("."), message: i.message })));
  const s = parsed.data!;
  const remotes = s.remotes ?? [];
  if (!remotes.length) invalid([{ field: "body.serverJson.remotes", message: "has no remote (packages run locally and cannot be routed through the gateway)" }]);
  const index = options.remote ?? 0;
  const remote = remotes[index];
  if (!remote) return invalid([{ field: "body.remote", message: `the server.json has ${remotes.length} remotes` }]);
  const url = remote.url.replace(/\{([A-Za-z0-9_]+)\}/g, (_m, name: string) => {
    const v = remote.variables?.[name];
    // The URL is stored, shown, evented and published as the gateway's backend: no place for a secret.
    if (v?.isSecret) invalid([{ field: `body.serverJson.remotes.${index}.variables.${name}`, message: "is a secret, and the URL is not (register the server with its credentials in `auth`)" }]);
    const value = v?.value ?? v?.default;
    if (value === undefined) invalid([{ field: `body.serverJson.remotes.${index}.variables.${name}`, message: "needs a value or default" }]);
    return encodeURIComponent(value!);
  });
  const derived = (options.name ?? s.name.split("/")[1]!).toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^[^a-z]+/, "").replace(/-+$/, "").slice(0, 40) || "server";
  return {
    name: derived.length < 2 ? `${derived}-server` : derived,
    displayName: (s.title ?? s.name).slice(0, 100),
    description: s.description,
    source: { kind: "remote", url, transport: remote.type },
    registry: {
      name: s.name,
      version: s.version,
      ...(s.title ? { title: s.title } : {}),
      ...(s.websiteUrl ? { websiteUrl: s.websiteUrl } : {}),
      ...(s.repository ? { repository: s.repository } : {}),
      packages: (s.packages ?? []).map((p) => ({ ...(withoutSecretValues(p) as typeof p), routable: false })),
    },
  };
}

/**
 * A copy without the values of inputs marked `isSecret` (environment variables, arguments, headers of a
 * package): catalog metadata keeps their names and descriptions, never a secret.
 */
function withoutSecretValues(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecretValues);
  if (typeof value !== "object" || value === null) return value;
  const secret = (value as { isSecret?: unknown }).isSecret === true;
  return Object.fromEntries(Object.entries(value).filter(([k]) => !(secret && (k === "value" || k === "default"))).map(([k, v]) => [k, withoutSecretValues(v)]));
}

/** A server.json for a registered server (remote servers only have a routable remote). */
export function exportServerJson(server: McpServer): Record<string, unknown> {
  const name = server.registry?.name ?? `io.aigov.${server.projectId.replace(/_/g, "-")}/${server.name}`;
  return {
    $schema: SERVER_JSON_SCHEMA,
    name,
    description: (server.description ?? server.displayName ?? server.name).slice(0, 100),
    version: server.registry?.version ?? "0.0.0",
    ...(server.displayName ? { title: server.displayName.slice(0, 100) } : {}),
    ...(server.registry?.websiteUrl ? { websiteUrl: server.registry.websiteUrl } : {}),
    ...(server.registry?.repository ? { repository: server.registry.repository } : {}),
    ...(server.registry?.packages.length ? { packages: server.registry.packages.map(({ routable: _r, ...p }) => p) } : {}),
    ...(server.source.kind === "remote" ? { remotes: [{ type: server.source.transport, url: server.source.url }] } : {}),
  };
}
