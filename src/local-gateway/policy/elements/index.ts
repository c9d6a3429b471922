import { type ElementDef } from "../load.js";
import { cors } from "./cors.js";
import { base, choose, includeFragment, retry, returnResponse, setStatus } from "./flow.js";
import { llmTokenLimit, rateLimitByKey } from "./limits.js";
import { llmContentSafety, llmEmitTokenMetric, llmSemanticCacheLookup, llmSemanticCacheStore } from "./llm.js";
import { checkHeader, rewriteUri, setBody, setHeader, setQueryParameter, setVariable } from "./messages.js";
import { authenticationManagedIdentity, forwardRequest, setBackendService } from "./routing.js";

/** Every policy element the local gateway runs, by name. Anything else is a load error. */
export const ELEMENTS: Record<string, ElementDef> = {
  base,
  choose,
  cors,
  "include-fragment": includeFragment,
  "return-response": returnResponse,
  "set-status": setStatus,
  retry,
  "set-header": setHeader,
  "set-query-parameter": setQueryParameter,
  "set-body": setBody,
  "rewrite-uri": rewriteUri,
  "set-variable": setVariable,
  "check-header": checkHeader,
  "set-backend-service": setBackendService,
  "authentication-managed-identity": authenticationManagedIdentity,
  "forward-request": forwardRequest,
  "rate-limit-by-key": rateLimitByKey,
  "llm-token-limit": llmTokenLimit,
  "llm-content-safety": llmContentSafety,
  "llm-semantic-cache-lookup": llmSemanticCacheLookup,
  "llm-semantic-cache-store": llmSemanticCacheStore,
  "llm-emit-token-metric": llmEmitTokenMetric,
};
