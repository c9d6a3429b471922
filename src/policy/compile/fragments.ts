/**
 * Policy fragments: blocks that are identical in every project (constant content, one artifact per
 * tenant), included by the API policies of projects with the models pillar on.
 */
import * as X from "../expressions.js";
import { DEFAULT_AZURE_OPENAI_API_VERSION, MODEL_CALLS, VAR } from "../names.js";
import { el, textEl, type Why, type XNode } from "../xml.js";
import { type Collector, JSON_ERROR, jsonResponse, readingBody, TENANT } from "./collector.js";

/** `<choose><when condition>…</when></choose>` */
const when = (condition: string, children: XNode[]) => el("choose", undefined, [el("when", { condition }, children)]);

/** `aigov-…-resolve-model`: the requested model, its pool and the backend request rewritten to the governed deployment. */
export function addResolveFragment(c: Collector) {
  const why: Why = { control: "routing", scope: TENANT, note: "resolve the requested model" };
  const refuse = (status: 400 | 404, reason: string, code: string, message: string) => jsonResponse(status, reason, JSON_ERROR(code, message));
  c.addFragment(
    c.n.fragment("resolve-model"),
    "aigov: finds the requested model (path or body) in the project's model list, refuses unknown or contradictory requests, " +
      "selects its pool and rewrites the backend request to the governed deployment",
    [
      // The operation names the model call; order matters (chat-completions also ends in -completions).
      el(
        "choose",
        undefined,
        MODEL_CALLS.map((call) => el("when", { condition: X.callIs(call.name) }, [el("set-variable", { name: VAR.call, value: call.call })])),
      ),
      el("set-variable", { name: VAR.pathModel, value: X.PATH_MODEL }),
      // Reading the body as JSON throws when it is not a JSON object: bracketed, so on-error answers 400 (addOnErrorFragment).
      ...readingBody([el("set-variable", { name: VAR.bodyModel, value: X.BODY_MODEL })]),
      when(X.MODEL_MISMATCH, [refuse(400, "Bad Request", "model_mismatch", "The path and the body name different models.")]),
      el("set-variable", { name: VAR.model, value: X.REQUESTED_MODEL }),
      when(X.MODEL_MISSING, [refuse(400, "Bad Request", "model_required", "The request names no model (the deployment in the path or 'model' in the body).")]),
      el("set-variable", { name: VAR.modelIndex, value: X.MODEL_INDEX }),
      when(X.MODEL_UNKNOWN, [refuse(404, "Not Found", "model_not_found", "The requested model is not available to this project.")]),
      el("set-variable", { name: VAR.backend, value: X.MODEL_POOL }),
      el("set-variable", { name: VAR.deployment, value: X.MODEL_DEPLOYMENT }),
      el("choose", undefined, [
        el("when", { condition: X.ROUTE_IS_AZURE }, [
          el("rewrite-uri", { template: X.AZURE_DEPLOYMENT_PATH, "copy-unmatched-params": true }),
          el("set-query-parameter", { name: "api-version", "exists-action": "skip" }, [textEl("value", DEFAULT_AZURE_OPENAI_API_VERSION)]),
        ]),
        el("otherwise", undefined, [el("rewrite-uri", { template: X.V1_PATH, "copy-unmatched-params": true }), ...readingBody([textEl("set-body", X.BODY_WITH_DEPLOYMENT)])]),
      ]),
    ],
    why,
  );
}

/**
 * `aigov-…-on-error`: a 400 when the request body could not be read as a JSON object (readingBody), a
 * generic 503 when every backend of a pool is unavailable, without pool details.
 */
export function addOnErrorFragment(c: Collector) {
  c.addFragment(
    c.n.fragment("on-error"),
    "aigov: answers 400 to a request body that is not a JSON object, and a generic 503 when every backend of a pool is unavailable, without revealing pool details",
    [
      when(X.BODY_UNREADABLE, [jsonResponse(400, "Bad Request", JSON_ERROR("invalid_body", "The request body is not a JSON object."))]),
      when(X.IS_503, [el("return-response", undefined, [el("set-status", { code: 503, reason: "Service Unavailable" })])]),
    ],
    { control: "routing", scope: TENANT, note: "invalid bodies, generic 503" },
  );
}
