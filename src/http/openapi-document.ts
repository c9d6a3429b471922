import { buildOpenApiDocument } from "../api/openapi.js";
import { operations } from "../api/all-operations.js";
import { version } from "./version.js";

let doc: Record<string, unknown> | undefined;

/** Built on first request, not at load: keeps cold start cheap. */
export function openApiDocument(): Record<string, unknown> {
  doc ??= buildOpenApiDocument(operations, { version });
  return doc;
}
