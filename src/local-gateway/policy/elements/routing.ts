/** Where a request goes: set-backend-service, authentication-managed-identity, forward-request. */
import { asBool, asInt, asString, type ElementDef } from "../load.js";
import { PolicyError } from "../types.js";

export const setBackendService: ElementDef = {
  sections: ["inbound", "backend"],
  attrs: { "backend-id": { expr: true }, "base-url": { expr: true }, "sf-resolve-condition": {}, "sf-service-instance-name": {}, "sf-partition-key": {}, "sf-listener-name": {}, "dapr-app-id": {}, "dapr-method": {}, "dapr-namespace": {} },
  load: (el, l) => {
    for (const k of el.attrs.keys()) if (k.startsWith("sf-") || k.startsWith("dapr-")) l.issue(el, `'${k}' (Service Fabric / Dapr backends) is not implemented by the local gateway`);
    const id = l.attr(el, "backend-id");
    const baseUrl = l.attr(el, "base-url");
    if ((id === undefined) === (baseUrl === undefined)) l.issue(el, "<set-backend-service> needs exactly one of backend-id and base-url");
    return {
      element: "set-backend-service",
      line: el.line,
      run: async (r) => {
        if (id) {
          const v = asString(id(r));
          if (!r.services.backendUrl(v)) throw new PolicyError("set-backend-service", "BackendNotFound", `backend '${v}' does not exist`);
          r.backend = { id: v };
        } else if (baseUrl) {
          // "If the inherited base uses backend-id, it can only be overridden with backend-id."
          if (r.backend.id) throw new PolicyError("set-backend-service", "InvalidBackendOverride", "a backend set with backend-id can only be overridden with backend-id");
          r.backend = { baseUrl: asString(baseUrl(r)) };
        }
      },
    };
  },
};

export const authenticationManagedIdentity: ElementDef = {
  sections: ["inbound"],
  attrs: { resource: { required: true, expr: true }, "client-id": {}, "output-token-variable-name": {}, "ignore-error": { pattern: /^(true|false)$/ } },
  load: (el, l) => {
    const resource = l.attr(el, "resource")!;
    const clientId = l.literal(el, "client-id");
    const output = l.literal(el, "output-token-variable-name");
    return {
      element: "authentication-managed-identity",
      line: el.line,
      run: async (r) => {
        const token = r.services.managedIdentityToken(asString(resource(r)), clientId);
        if (output) r.state.variables.set(output, token);
        else r.state.headers.set("Authorization", [`Bearer ${token}`]);
      },
    };
  },
};

export const forwardRequest: ElementDef = {
  sections: ["backend"],
  attrs: {
    timeout: { expr: true },
    "timeout-ms": { expr: true },
    "buffer-request-body": { pattern: /^(true|false)$/ },
    "buffer-response": { pattern: /^(true|false)$/ },
    "follow-redirects": { pattern: /^(true|false)$/ },
    "fail-on-error-status-code": { pattern: /^(true|false)$/ },
    "continue-timeout": {},
    "http-version": {},
  },
  load: (el, l) => {
    for (const k of ["follow-redirects", "fail-on-error-status-code", "continue-timeout", "http-version"]) {
      if (el.attrs.has(k)) l.issue(el, `'${k}' of <forward-request> is not implemented by the local gateway`);
    }
    const timeout = l.attr(el, "timeout");
    const timeoutMs = l.attr(el, "timeout-ms");
    const buffer = asBool(l.literal(el, "buffer-response") ?? "true", "buffer-response");
    void buffer;
    return {
      element: "forward-request",
      line: el.line,
      run: async (r) => {
        const ms = timeoutMs ? asInt(timeoutMs(r), "timeout-ms") : timeout ? asInt(timeout(r), "timeout") * 1000 : 300_000;
        await r.services.forward(r, { timeoutMs: ms });
      },
    };
  },
};
