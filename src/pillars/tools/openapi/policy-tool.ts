import type { ConvertedTool } from "./convert.js";

/**
 * A converted tool's REST operation as the compiler takes it (PolicyTool.operation): the operation,
 * its parameters, and its body and response schemas made self-contained (the tool's `$defs` go with
 * them, since the REST API's schema document holds each schema on its own).
 */
export function operationOf(tool: ConvertedTool): Record<string, unknown> {
  const b = tool.binding;
  const defs = tool.inputSchema.$defs as Record<string, unknown> | undefined;
  const bodyProperty = b.arguments.find((a) => a.in === "body")?.property;
  const properties = (tool.inputSchema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const bodySchema = bodyProperty ? properties[bodyProperty] : undefined;
  const withDefs = (s: Record<string, unknown>) => (defs ? { ...s, $defs: defs } : s);
  return {
    id: b.operationId,
    method: b.method,
    urlTemplate: b.urlTemplate,
    ...(tool.description ? { description: tool.description.slice(0, 1000) } : {}),
    templateParameters: b.templateParameters,
    queryParameters: b.queryParameters,
    headers: b.headers,
    ...(b.body && bodySchema ? { body: { contentType: b.body.contentType, schema: withDefs(bodySchema) } } : {}),
    ...(tool.outputSchema ? { response: { contentType: "application/json", schema: tool.outputSchema } } : {}),
  };
}
