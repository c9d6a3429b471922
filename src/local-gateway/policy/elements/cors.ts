/**
 * `cors` (docs/gateway.md, "Browser access"): what APIM's policy reference documents, in inbound.
 *
 * - On a request with an `Origin` that matches, the response (whatever ends the pipeline: the backend's
 *   answer, a return-response, an error) carries `Access-Control-Allow-Origin` (the origin, or `*`),
 *   `Access-Control-Expose-Headers` and, with allow-credentials, `Access-Control-Allow-Credentials`.
 * - An origin that does not match: with terminate-unmatched-request "true" a GET or HEAD ends with an
 *   empty 200; otherwise the request goes on without CORS headers (a later cors policy may still match).
 * - Preflights never run this step: the gateway answers them from the rules of the effective inbound's
 *   cors statements (runtime/gateway.ts, `preflight`), before any key is asked for.
 *
 * Attribute values are literals here (the reference allows expressions; aigov never writes one).
 */
import { HeaderBag } from "../../runtime/message.js";
import { type ElementDef, type ElementLoader } from "../load.js";
import { EndPipeline, type Run } from "../types.js";
import { type XmlElement } from "../../xml.js";

/** A cors statement's settings, as the preflight and the step both read them. */
export interface CorsRule {
  allowCredentials: boolean;
  terminateUnmatched: boolean;
  /** Normalized origins (URL.origin), or "*". */
  origins: string[];
  /** Upper-case methods, or "*"; GET and POST when the document names none. */
  methods: string[];
  /** Lower-case header names, or "*". */
  headers: string[];
  exposeHeaders: string[];
  /** Access-Control-Max-Age, seconds. */
  maxAge: number;
}

/** The headers a matching cors statement adds to the response. */
export interface CorsDecision {
  headers: Record<string, string>;
}

const BOOL = /^(true|false)$/;

/** "https://host" and "https://host:443" are one origin; the reference says a missing port is the scheme's default. */
export function normalizeOrigin(raw: string): string | undefined {
  if (raw === "*") return "*";
  try {
    const u = new URL(raw.trim());
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

export function originAllowed(rule: CorsRule, origin: string): string | undefined {
  if (rule.origins.includes("*")) return "*";
  const o = normalizeOrigin(origin);
  return o && o !== "*" && rule.origins.includes(o) ? o : undefined;
}

/** The response headers of a matching actual (non-preflight) request. */
export function actualHeaders(rule: CorsRule, allowed: string): Record<string, string> {
  return {
    "Access-Control-Allow-Origin": allowed,
    ...(rule.allowCredentials ? { "Access-Control-Allow-Credentials": "true" } : {}),
    ...(rule.exposeHeaders.length ? { "Access-Control-Expose-Headers": rule.exposeHeaders.join(",") } : {}),
  };
}

function names(l: ElementLoader, parent: XmlElement, child: string, lower: boolean): string[] | undefined {
  const section = parent.children.find((c) => c.name === child);
  if (!section) return undefined;
  const out: string[] = [];
  for (const c of section.children) {
    const text = c.text.trim();
    if (!text) l.issue(c, `<${c.name}> in <${child}> is empty`);
    else if (text.startsWith("@(") || text.startsWith("@{")) l.issue(c, `the local gateway takes literal values in <${child}>`);
    else out.push(lower ? text.toLowerCase() : text);
  }
  return out;
}

function loadRule(el: XmlElement, l: ElementLoader): CorsRule {
  const order = ["allowed-origins", "allowed-methods", "allowed-headers", "expose-headers"];
  const seen = el.children.map((c) => order.indexOf(c.name));
  if (seen.some((i, k) => k > 0 && i <= seen[k - 1]!)) l.issue(el, "<cors> takes allowed-origins, allowed-methods, allowed-headers, expose-headers once each, in that order");
  const originsEl = el.children.find((c) => c.name === "allowed-origins");
  if (!originsEl) l.issue(el, "<cors> needs <allowed-origins>");
  const origins: string[] = [];
  for (const c of originsEl?.children ?? []) {
    if (c.name !== "origin") {
      l.issue(c, `<${c.name}> is not allowed inside <allowed-origins>`);
      continue;
    }
    const o = normalizeOrigin(c.text);
    if (!o) l.issue(c, `<origin> must be * or a URI with scheme, host and port, not '${c.text.trim()}'`);
    else origins.push(o);
  }
  if (originsEl && origins.length === 0 && originsEl.children.length === 0) l.issue(originsEl, "<allowed-origins> needs at least one <origin>");
  if (origins.includes("*") && origins.length > 1) l.issue(originsEl!, "<allowed-origins> holds either one <origin>*</origin> or URIs");
  const methodsEl = el.children.find((c) => c.name === "allowed-methods");
  const methods = names(l, el, "allowed-methods", false)?.map((m) => m.toUpperCase());
  if (methodsEl && !methods?.length) l.issue(methodsEl, "<allowed-methods> needs at least one <method>");
  const headers = names(l, el, "allowed-headers", true);
  if (headers === undefined) l.issue(el, "<cors> needs <allowed-headers>");
  const expose = names(l, el, "expose-headers", true) ?? [];
  return {
    allowCredentials: (l.literal(el, "allow-credentials") ?? "false") === "true",
    terminateUnmatched: (l.literal(el, "terminate-unmatched-request") ?? "false") === "true",
    origins,
    methods: methods?.length ? methods : ["GET", "POST"],
    headers: headers ?? [],
    exposeHeaders: expose,
    maxAge: methodsEl ? (l.int(methodsEl, "preflight-result-max-age", 0, 2_147_483_647) ?? 0) : 0,
  };
}

export const cors: ElementDef = {
  sections: ["inbound"],
  attrs: { "allow-credentials": { pattern: BOOL }, "terminate-unmatched-request": { pattern: BOOL } },
  children: ["allowed-origins", "allowed-methods", "allowed-headers", "expose-headers"],
  load: (el, l) => {
    const rule = loadRule(el, l);
    return {
      element: "cors",
      line: el.line,
      cors: rule,
      run: async (r: Run) => {
        const origin = r.state.headers.get("origin")?.[0];
        if (origin === undefined || r.state.cors) return;
        const allowed = originAllowed(rule, origin);
        if (allowed) {
          r.state.cors = { headers: actualHeaders(rule, allowed) };
          return;
        }
        if (rule.terminateUnmatched && (r.state.method === "GET" || r.state.method === "HEAD")) {
          r.state.response = { status: 200, reason: "OK", headers: new HeaderBag(), body: Buffer.alloc(0) };
          throw new EndPipeline();
        }
      },
    };
  },
};
