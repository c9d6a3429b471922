import { app } from "@azure/functions";
import { getHealth, getOpenApi } from "../src/api/operations.js";
import { anonymousEndpoint } from "../src/http/endpoint.js";
import { checkHealth } from "../src/http/health.js";
import { openApiDocument } from "../src/http/openapi-document.js";

app.http(getHealth.operationId, anonymousEndpoint(getHealth, async (_req, s) => checkHealth(s.store)));

app.http(getOpenApi.operationId, anonymousEndpoint(getOpenApi, async () => ({ body: openApiDocument() })));
