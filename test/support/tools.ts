/**
 * MCP servers for tests that need a server with tools but no network: a REST API described by a small
 * OpenAPI document, converted into tools by discovery (which then needs no upstream at all).
 */
import type { AigovClient } from "../../src/client/index.js";
import { until } from "./until.js";

export const ITEMS_API = {
  openapi: "3.1.0",
  info: { title: "Items", version: "1.0.0" },
  paths: {
    "/items/{id}": {
      get: { operationId: "getItem", summary: "Read an item", parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }], responses: { "200": { description: "ok", content: { "application/json": { schema: { type: "object", properties: { id: { type: "string" } } } } } } } },
      delete: { operationId: "deleteItem", summary: "Delete an item", parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }], responses: { "204": { description: "gone" } } },
    },
  },
};

/** Registers the items API as an MCP server and waits until its tools are discovered. */
export async function convertedServer(client: AigovClient, projectId: string, name: string, baseUrl = "https://items.example.com") {
  const created = await client.tools.createServer(projectId, { name, source: { kind: "openapi", baseUrl, document: ITEMS_API }, discovery: { enabled: false, intervalHours: 24 } });
  return until(async () => {
    const s = await client.tools.getServer(projectId, created.id);
    if (s.discoveryState.status === "failed") throw new Error(`discovery of ${name} failed: ${JSON.stringify(s.discoveryState.failure)}`);
    return s.discoveryState.status === "succeeded" ? s : undefined;
  }, `discovery of ${name}`);
}

/** Registers an MCP upstream at `url` as a remote server and waits for its first discovery. */
export async function remoteServer(client: AigovClient, projectId: string, name: string, url: string) {
  const created = await client.tools.createServer(projectId, { name, source: { kind: "remote", url } });
  return until(async () => {
    const s = await client.tools.getServer(projectId, created.id);
    return s.discoveryState.status === "succeeded" ? s : undefined;
  }, `discovery of ${name}`);
}
