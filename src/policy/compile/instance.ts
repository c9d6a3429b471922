/**
 * The instance baseline: the global policy of every API Management instance aigov publishes to (ADR 023).
 *
 * Tenants share an instance, so without it the instance's own answers tell them apart: APIM answers 404
 * to a path no API serves and 401 to a path another tenant's API serves (with that API's path in the
 * `WWW-Authenticate` realm), and so confirms to anyone — no key needed — that a project, MCP server or
 * agent of another tenant exists. Those answers are APIM's predefined errors of its built-in steps
 * (OperationNotFound, SubscriptionKeyNotFound, SubscriptionKeyInvalid), which jump to on-error with
 * `context.LastError` set; the global on-error runs first, because every on-error section aigov compiles
 * starts with `<base/>` (a test holds every compiled document to it). It answers them from the request
 * alone:
 * - a CORS preflight: an empty 200, as an API's `cors` policy answers a preflight it does not allow;
 * - no key: 401 `key_missing`;
 * - a key: 401 `key_not_accepted` ("not valid here, or nothing is served here"), whether the key is
 *   unknown, suspended, another project's or tenant's, or the path is served by nobody.
 * Nothing tenant-specific is in it, so one document serves every tenant of the instance and is no tenant's
 * artifact: `infra/` deploys it (infra/apim/global-policy.xml, compared with this rendering by a test) and
 * the local host writes it to each local instance before its gateway starts.
 */
import type { PolicyArtifact } from "../../ports/gateway.js";
import { IS_PREFLIGHT, KEY_PRESENTED, SERVED_OR_KEY_REFUSED } from "../expressions.js";
import { SUBSCRIPTION_KEY_HEADER } from "../names.js";
import { el, render, textEl, type Why } from "../xml.js";
import { JSON_ERROR, STRUCTURE, TENANT } from "./collector.js";

const WHY: Why = { control: "structure", scope: TENANT, note: "instance baseline: answers that do not tell tenants apart" };

/** The body of the 401 without a key, and with one that is refused or addresses nothing served. */
export const KEY_MISSING = JSON_ERROR("key_missing", `Access denied: send a key in the ${SUBSCRIPTION_KEY_HEADER} header.`);
export const KEY_NOT_ACCEPTED = JSON_ERROR("key_not_accepted", "Access denied: the key is not valid for this endpoint, or nothing is served here.");

function unauthorized(body: string) {
  return el("return-response", undefined, [
    el("set-status", { code: 401, reason: "Unauthorized" }),
    el("set-header", { name: "Content-Type", "exists-action": "override" }, [textEl("value", "application/json")]),
    // RFC 9110 §11.6.1: a 401 carries a challenge; APIM's names the API's path, this one names nothing.
    el("set-header", { name: "WWW-Authenticate", "exists-action": "override" }, [textEl("value", `AzureApiManagementKey name="${SUBSCRIPTION_KEY_HEADER}",type="header"`)]),
    textEl("set-body", body),
  ]);
}

/** The global policy document. */
export function instanceBaseline(): PolicyArtifact {
  const doc = el(
    "policies",
    undefined,
    [
      el("inbound"),
      el("backend", undefined, [el("forward-request")]),
      el("outbound"),
      el("on-error", undefined, [
        el(
          "choose",
          undefined,
          [
            el("when", { condition: SERVED_OR_KEY_REFUSED }, [
              el("choose", undefined, [
                el("when", { condition: IS_PREFLIGHT }, [el("return-response", undefined, [el("set-status", { code: 200, reason: "OK" })])]),
                el("when", { condition: KEY_PRESENTED }, [unauthorized(KEY_NOT_ACCEPTED)]),
                el("otherwise", undefined, [unauthorized(KEY_MISSING)]),
              ]),
            ]),
          ],
          WHY,
        ),
      ]),
    ],
    STRUCTURE,
  );
  return { kind: "policy", scope: { type: "global" }, xml: render(doc, "policy:global").xml };
}
