/** Request and response messages: headers, query parameters, bodies, URL rewrites, variables, header checks. */
import { HeaderBag } from "../../runtime/message.js";
import { asBool, asString, type ElementDef, type Value } from "../load.js";
import { PolicyError, SECTIONS, type Run } from "../types.js";

const EXISTS = /^(override|skip|append|delete)$/;
/** Headers the gateway does not let policies change (set-header reference). */
const PROTECTED = new Set(["connection", "content-length", "keepalive", "keep-alive", "transfer-encoding"]);

/** In inbound and backend a policy changes the request; in outbound and on-error, the response. */
function headersOf(r: Run): HeaderBag {
  if (r.section === "inbound" || r.section === "backend") return r.state.headers;
  r.state.response ??= { status: 200, reason: "OK", headers: new HeaderBag(), body: undefined };
  return r.state.response.headers;
}

export const setHeader: ElementDef = {
  sections: SECTIONS,
  attrs: { name: { required: true }, "exists-action": { pattern: EXISTS } },
  children: ["value"],
  load: (el, l) => {
    const name = l.literal(el, "name") ?? "";
    if (PROTECTED.has(name.toLowerCase())) l.issue(el, `set-header cannot modify ${name}`);
    const action = l.literal(el, "exists-action") ?? "override";
    const values = el.children.map((v) => l.text(v));
    if (action !== "delete" && values.length === 0) l.issue(el, "<set-header> needs at least one <value> unless exists-action is delete");
    return {
      element: "set-header",
      line: el.line,
      run: async (r) => {
        const bag = headersOf(r);
        if (action === "delete") return bag.delete(name);
        const vs = values.map((v) => asString(v(r)));
        if (action === "skip" && bag.has(name)) return;
        if (action === "append") for (const v of vs) bag.append(name, v);
        else bag.set(name, vs);
      },
    };
  },
};

export const setQueryParameter: ElementDef = {
  sections: ["inbound", "backend"],
  attrs: { name: { required: true }, "exists-action": { pattern: EXISTS } },
  children: ["value"],
  load: (el, l) => {
    const name = l.literal(el, "name") ?? "";
    const action = l.literal(el, "exists-action") ?? "override";
    const values = el.children.map((v) => l.text(v));
    if (action !== "delete" && values.length === 0) l.issue(el, "<set-query-parameter> needs at least one <value> unless exists-action is delete");
    return {
      element: "set-query-parameter",
      line: el.line,
      run: async (r) => {
        const q = r.state.query;
        if (action === "delete") return q.delete(name);
        if (action === "skip" && q.has(name)) return;
        const vs = values.map((v) => asString(v(r)));
        if (action !== "append") q.delete(name);
        for (const v of vs) q.append(name, v);
      },
    };
  },
};

export const setBody: ElementDef = {
  sections: SECTIONS,
  attrs: { template: { pattern: /^none$/ }, "xsi-nil": { pattern: /^(blank|null)$/ }, "parse-date": { pattern: /^(true|false)$/ } },
  load: (el, l) => {
    if (el.children.length) l.issue(el, "<set-body> holds text or an expression, not elements");
    const body = l.text(el);
    return {
      element: "set-body",
      line: el.line,
      run: async (r) => {
        const text = Buffer.from(asString(body(r)), "utf8");
        if (r.section === "inbound" || r.section === "backend") {
          r.state.body = text;
          r.state.bodyConsumed = false;
        } else {
          r.state.response ??= { status: 200, reason: "OK", headers: new HeaderBag(), body: undefined };
          r.state.response.body = text;
          delete r.state.response.stream;
        }
      },
    };
  },
};

export const rewriteUri: ElementDef = {
  sections: ["inbound"],
  attrs: { template: { required: true, expr: true }, "copy-unmatched-params": { pattern: /^(true|false)$/ } },
  load: (el, l) => {
    const template = l.attr(el, "template")!;
    const copy = (l.literal(el, "copy-unmatched-params") ?? "true") === "true";
    return {
      element: "rewrite-uri",
      line: el.line,
      run: async (r) => {
        // {param} names of the operation template are substituted; the result is relative to the backend URL.
        const t = asString(template(r)).replace(/\{([^}]+)\}/g, (_m, p: string) => encodeURIComponent(r.state.matched[p] ?? ""));
        const u = new URL(t.startsWith("/") ? t : `/${t}`, "http://rewrite.invalid");
        const query = new URLSearchParams(u.search);
        if (copy) {
          const matched = new Set(Object.keys(r.state.matched));
          for (const [k, v] of r.state.query) if (!matched.has(k) && !query.has(k)) query.append(k, v);
        }
        r.state.path = u.pathname;
        r.state.query = query;
      },
    };
  },
};

export const setVariable: ElementDef = {
  sections: SECTIONS,
  attrs: { name: { required: true }, value: { required: true, expr: true } },
  load: (el, l) => {
    const name = l.literal(el, "name") ?? "";
    const value = l.attr(el, "value")!;
    return { element: "set-variable", line: el.line, run: async (r) => void r.state.variables.set(name, value(r)) };
  },
};

export const checkHeader: ElementDef = {
  sections: ["inbound"],
  attrs: {
    name: { required: true },
    "failed-check-httpcode": { required: true, pattern: /^[1-5][0-9]{2}$/ },
    "failed-check-error-message": { required: true },
    "ignore-case": { required: true, pattern: /^(true|false)$/ },
  },
  children: ["value"],
  load: (el, l) => {
    const name = l.literal(el, "name") ?? "";
    const code = Number(l.literal(el, "failed-check-httpcode") ?? "400");
    const message = l.literal(el, "failed-check-error-message") ?? "";
    const ignoreCase = asBool(l.literal(el, "ignore-case") ?? "false", "ignore-case");
    const allowed = el.children.map((v) => v.text.trim());
    return {
      element: "check-header",
      line: el.line,
      run: async (r) => {
        const got = r.state.headers.get(name);
        const norm = (s: string) => (ignoreCase ? s.toLowerCase() : s);
        const ok = got !== undefined && (allowed.length === 0 || got.flatMap((v) => v.split(",")).some((v) => allowed.some((a) => norm(a) === norm(v.trim()))));
        if (!ok) {
          throw new PolicyError("check-header", got === undefined ? "HeaderNotFound" : "HeaderValueNotAllowed", message, {
            status: code,
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ statusCode: code, message }),
          });
        }
      },
    };
  },
};

export type { Value };
