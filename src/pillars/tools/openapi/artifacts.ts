/**
 * What the gateway needs to serve converted tools: the REST API's operations with one schema document
 * (APIM derives a tool's input schema from its operation's parameters and request representation), and
 * the MCP API's tools that name those operations.
 *
 * A tool's input schema keeps its components in `$defs`; APIM's schema document keeps them in
 * `components.schemas`. Every tool's `$defs` go into the one document, so a component shared by many
 * tools is stored once. Two components with one name but different content (tools converted from
 * different documents) are told apart by a numbered suffix.
 */
import { canonicalJson } from "../../../util/canonical-json.js";
import { type ApiOperation, type ApiSchema, type McpToolArtifact } from "../../../ports/gateway.js";
import { mapSchemaRefs, OPENAPI_IMPORT_LIMITS, type ConvertedTool } from "./convert.js";

/** The id of the REST API's one schema document. */
export const REST_SCHEMA_ID = "components";
const SCHEMA_CONTENT_TYPE = "application/vnd.oai.openapi.components+json";
/** ARM resource names of tools: 1–80 characters, word characters and inner hyphens. */
const TOOL_RESOURCE_NAME = /^\w+$|^\w[\w-]+\w$/;
const MAX_RESOURCE_NAME = 80;

export function requestTypeName(tool: ConvertedTool): string {
  return `${tool.binding.operationId}Request`;
}

export function responseTypeName(tool: ConvertedTool): string {
  return `${tool.binding.operationId}Response`;
}

export function restApiParts(tools: ConvertedTool[]): { operations: ApiOperation[]; schemas: ApiSchema[] } {
  const document = new ComponentsDocument(tools.flatMap((tool) => [requestTypeName(tool), responseTypeName(tool)]));
  const operations = tools.map((tool): ApiOperation => {
    const { binding } = tool;
    const bodyProperty = binding.arguments.find((a) => a.in === "body")?.property;
    const properties = (tool.inputSchema.properties ?? {}) as Record<string, unknown>;
    const request = binding.body && bodyProperty !== undefined ? document.add(requestTypeName(tool), properties[bodyProperty] ?? {}, tool.inputSchema.$defs) : undefined;
    const { $defs: outputDefs, ...output } = tool.outputSchema ?? {};
    const response = tool.outputSchema ? document.add(responseTypeName(tool), output, outputDefs) : undefined;
    return {
      id: binding.operationId,
      method: binding.method,
      urlTemplate: binding.urlTemplate,
      displayName: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      templateParameters: binding.templateParameters,
      request: {
        queryParameters: binding.queryParameters,
        headers: binding.headers,
        representations: request && binding.body ? [{ contentType: binding.body.contentType, schemaId: REST_SCHEMA_ID, typeName: request }] : [],
      },
      responses: [{ statusCode: 200, representations: response ? [{ contentType: "application/json", schemaId: REST_SCHEMA_ID, typeName: response }] : [] }],
    };
  });
  const schemas = document.schemas();
  return {
    operations,
    schemas: Object.keys(schemas).length === 0 ? [] : [{ id: REST_SCHEMA_ID, contentType: SCHEMA_CONTENT_TYPE, document: { components: { schemas } } }],
  };
}

export function mcpTools(tools: ConvertedTool[], apiId: string): McpToolArtifact[] {
  const taken = new Set<string>();
  return tools.map((tool) => {
    const base = resourceName(tool.name);
    let id = base;
    // ARM compares resource names ignoring case.
    for (let n = 2; taken.has(id.toLowerCase()); n++) id = `${base.slice(0, MAX_RESOURCE_NAME - String(n).length - 1)}_${n}`;
    taken.add(id.toLowerCase());
    return {
      id,
      displayName: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description.slice(0, OPENAPI_IMPORT_LIMITS.maxDescription) }),
      apiId,
      operationId: tool.binding.operationId,
    };
  });
}

/** A tool name as an ARM resource name: word characters with hyphens only inside. */
function resourceName(name: string): string {
  const id = name.replace(/[^\w-]/g, "_").replace(/^-|-$/g, "_").slice(0, MAX_RESOURCE_NAME) || "_";
  return TOOL_RESOURCE_NAME.test(id) ? id : id.replace(/-/g, "_");
}

class ComponentsDocument {
  private readonly entries = new Map<string, unknown>();
  /** Content key of a component (its schema and everything it reaches) → its name in the document. */
  private readonly byContent = new Map<string, string>();
  private readonly taken: Set<string>;

  constructor(reserved: string[]) {
    this.taken = new Set(reserved);
  }

  /** Adds a schema under `typeName` with the `$defs` it references; returns the type name. */
  add(typeName: string, schema: unknown, defs: unknown): string {
    const names = this.place(isObject(defs) ? defs : {});
    this.entries.set(typeName, this.rewrite(schema, names));
    return typeName;
  }

  schemas(): Record<string, unknown> {
    return Object.fromEntries([...this.entries.keys()].sort(compareText).map((name) => [name, this.entries.get(name)]));
  }

  /** Names in the document for a tool's $defs: the name already given to the same content, else the $defs name, numbered if taken. */
  private place(defs: Record<string, unknown>): Map<string, string> {
    const names = new Map<string, string>();
    const fresh: string[] = [];
    for (const name of Object.keys(defs).sort(compareText)) {
      const key = contentKey(name, defs);
      let placed = this.byContent.get(key);
      if (placed === undefined) {
        placed = name;
        for (let n = 2; this.taken.has(placed); n++) placed = `${name}_${n}`;
        this.taken.add(placed);
        this.byContent.set(key, placed);
        fresh.push(name);
      }
      names.set(name, placed);
    }
    for (const name of fresh) this.entries.set(names.get(name) as string, this.rewrite(defs[name], names));
    return names;
  }

  private rewrite(schema: unknown, names: Map<string, string>): unknown {
    return mapSchemaRefs(schema, (ref) => {
      const match = /^#\/\$defs\/([^/]*)(.*)$/.exec(ref);
      if (!match) return ref;
      const name = unescapeToken(match[1] as string);
      const placed = names.get(name) ?? name;
      return `#/components/schemas/${escapeToken(placed)}${match[2]}`;
    });
  }
}

/** A component is the same component when its name, its schema and the schemas it reaches are. */
function contentKey(name: string, defs: Record<string, unknown>): string {
  const reached = new Set<string>();
  const queue = [name];
  while (queue.length > 0) {
    const next = queue.pop() as string;
    if (reached.has(next) || !Object.hasOwn(defs, next)) continue;
    reached.add(next);
    mapSchemaRefs(defs[next], (ref) => {
      const match = /^#\/\$defs\/([^/]*)/.exec(ref);
      if (match) queue.push(unescapeToken(match[1] as string));
      return ref;
    });
  }
  return canonicalJson([name, [...reached].sort(compareText).map((n) => [n, defs[n]])]);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function escapeToken(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}

function unescapeToken(token: string): string {
  return token.replaceAll("~1", "/").replaceAll("~0", "~");
}
