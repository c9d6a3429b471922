import { z } from "zod";
import { describeAccess } from "./access.js";
import type { Operation } from "./contract.js";
import { Problem } from "./problem.js";

type JsonSchema = Record<string, unknown>;

const STATUS_TEXT: Record<number, string> = {
  400: "Invalid request (problem+json with field errors)",
  401: "Missing or invalid bearer token",
  403: "The caller's roles do not allow this",
  404: "Not found (another tenant's resource is indistinguishable from a missing one)",
  409: "Conflict: the problem's reason says which (e.g. name_taken, rotation_in_progress)",
  412: "If-Match does not match the current ETag",
  413: "Request body too large",
  415: "Unsupported content type",
  428: "If-Match header required",
  503: "A dependency is unavailable",
};

function componentId(schema: z.ZodType): string | undefined {
  return (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
}

function convert(schema: z.ZodType, io: "input" | "output", components: Map<string, JsonSchema>): JsonSchema {
  const id = componentId(schema);
  const json = z.toJSONSchema(schema, {
    io,
    target: "draft-2020-12",
    unrepresentable: "any",
  }) as JsonSchema & { $defs?: Record<string, JsonSchema> };
  const { $defs, $schema: _s, ...rest } = rewriteRefs(json) as typeof json;
  for (const [name, def] of Object.entries($defs ?? {})) addComponent(components, name, def);
  if (!id) return rest;
  // A registered root comes back as {$ref} into $defs; otherwise it is inline.
  if (rest.$ref !== `#/components/schemas/${id}`) addComponent(components, id, rest);
  return { $ref: `#/components/schemas/${id}` };
}

/** zod puts registered sub-schemas under $defs; OpenAPI wants them under components. */
function rewriteRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node).map(([k, v]) => [
      k,
      k === "$ref" && typeof v === "string" ? v.replace(/^#\/\$defs\//, "#/components/schemas/") : rewriteRefs(v),
    ]),
  );
}

function addComponent(components: Map<string, JsonSchema>, name: string, schema: JsonSchema) {
  const existing = components.get(name);
  if (existing && JSON.stringify(existing) !== JSON.stringify(schema)) {
    // A schema used both as input and output with different shapes needs two names.
    throw new Error(`component ${name} has two different shapes (input vs output?)`);
  }
  components.set(name, schema);
}

function parameters(shape: z.ZodObject | undefined, where: "path" | "query", components: Map<string, JsonSchema>) {
  if (!shape) return [];
  return Object.entries(shape.shape).map(([name, s]) => {
    const schema = s as z.ZodType;
    const json = convert(schema, "input", components);
    const description = (json as { description?: string }).description;
    return {
      name,
      in: where,
      required: where === "path" || !schema.safeParse(undefined).success,
      schema: json,
      ...(description ? { description } : {}),
    };
  });
}

/** The OpenAPI 3.1 document, generated from the operations and their zod schemas. */
export function buildOpenApiDocument(ops: readonly Operation[], info: { version: string }): JsonSchema {
  const components = new Map<string, JsonSchema>();
  const problemRef = convert(Problem, "output", components);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ops) {
    const html = { "text/html": { schema: { type: "string" } } };
    const responses: Record<string, unknown> = {
      [op.success.status]: {
        description: op.success.description,
        ...(op.html ? { content: html } : {}),
        ...(op.success.schema ? { content: { "application/json": { schema: convert(op.success.schema, "output", components) } } } : {}),
        ...(op.success.schema && op.method !== "POST" && "etag" in ((op.success.schema as z.ZodObject).shape ?? {})
          ? { headers: { ETag: { schema: { type: "string" }, description: "Current version, for If-Match" } } }
          : {}),
      },
    };
    const errors = new Set<number>([...op.errors, ...(op.anonymous ? [] : [401]), 500]);
    for (const status of [...errors].sort()) {
      responses[status] = {
        description: STATUS_TEXT[status] ?? "Unexpected error (generic body; details are logged with the correlation id)",
        content: op.html ? html : { "application/problem+json": { schema: problemRef } },
      };
    }
    const params = [
      ...parameters(op.params, "path", components),
      ...parameters(op.query, "query", components),
      ...(op.ifMatch ? [{ name: "If-Match", in: "header", required: op.ifMatch === true, schema: { type: "string" }, description: op.ifMatch === true ? "The resource's ETag" : "The resource's ETag, to decide only if it has not changed since it was read" }] : []),
      { name: "x-correlation-id", in: "header", required: false, schema: { type: "string", maxLength: 128 }, description: "Echoed back; generated when absent" },
    ];
    (paths[op.path] ??= {})[op.method.toLowerCase()] = {
      operationId: op.operationId,
      summary: op.summary,
      tags: [op.tag],
      description: `Access: ${describeAccess(op.access, op.anonymous)}. CLI: \`aigov ${op.cli}\`.`,
      "x-aigov-cli": op.cli,
      // Who may call it, as declared (src/api/access.ts): what the gate enforces and docs/api.md tabulates.
      "x-aigov-access": op.access,
      ...(op.anonymous ? { security: [] } : {}),
      parameters: params,
      ...(op.formBody
        ? { requestBody: { required: true, content: { "application/x-www-form-urlencoded": { schema: convert(op.formBody, "input", components) } } } }
        : {}),
      ...(op.body
        ? {
            requestBody: {
              required: true,
              content: Object.fromEntries(
                (op.bodyTypes ?? ["application/json"]).map((t) => [t, { schema: convert(op.body!, "input", components) }]),
              ),
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "aigov admin API",
      version: info.version,
      description: "Control plane for models, tools and agents governed through Azure API Management. See docs/api.md for conventions.",
    },
    servers: [{ url: "/api" }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      schemas: Object.fromEntries([...components.entries()].sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}
