/**
 * How a `tools/call` of a tool made from a REST operation becomes the REST request: each argument goes to
 * the place its binding names (path, query, header or body), serialised as OpenAPI's default styles do
 * (the converter skips operations that ask for other styles). The arguments' types are the input schema's
 * business; this only refuses what cannot be placed: a missing required argument, an argument the tool
 * does not have, a value that has no form in its place.
 */
import type { OperationParameter } from "../../../ports/gateway.js";
import type { RestBinding } from "./convert.js";

export interface RestRequest {
  method: string;
  /** The URL template filled (percent-encoded), with the query string; relative to the API's base URL. */
  path: string;
  headers: Record<string, string>;
  body?: string;
}

type Primitive = string | number | boolean;
type Placeable = Primitive | Primitive[] | Record<string, Primitive>;

export function restRequestFor(binding: RestBinding, args: Record<string, unknown>): RestRequest | { error: string } {
  if (args === null || typeof args !== "object" || Array.isArray(args)) return { error: "the arguments are not an object" };
  const known = new Set(binding.arguments.map((a) => a.property));
  const unknown = Object.keys(args).filter((key) => !known.has(key)).sort();
  if (unknown.length > 0) return { error: `unknown argument${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => JSON.stringify(k)).join(", ")}` };

  let path = binding.urlTemplate;
  const query: string[] = [];
  const headers: Record<string, string> = {};
  let body: string | undefined;
  for (const argument of binding.arguments) {
    const value = Object.hasOwn(args, argument.property) ? args[argument.property] : undefined;
    const name = JSON.stringify(argument.property);
    if (argument.in === "body") {
      if (value === undefined) {
        if (binding.body?.required) return { error: `missing required argument ${name}` };
        continue;
      }
      body = JSON.stringify(value);
      headers["content-type"] = binding.body?.contentType ?? "application/json";
      continue;
    }
    const parameter = parameterOf(binding, argument.in, argument.name);
    // null is "no value" for a parameter: there is no null in a path, a query string or a header.
    if (value === undefined || value === null) {
      if (argument.in === "path" || parameter?.required) return { error: `missing required argument ${name}` };
      continue;
    }
    const placeable = asPlaceable(value, parameter?.type);
    if (placeable === undefined) return { error: `argument ${name} cannot be sent in the ${argument.in}: expected ${describeType(parameter?.type)}` };
    try {
      if (argument.in === "path") {
        const segment = pathSegment(placeable);
        // An empty or dot segment would address another resource once the path is normalised.
        if (segment === "" || segment === "." || segment === "..") return { error: `argument ${name} cannot be an empty or dot path segment` };
        path = path.replaceAll(`{${argument.name}}`, () => segment);
      } else if (argument.in === "query") {
        query.push(...queryPairs(argument.name, placeable));
      } else {
        const header = simpleForm(placeable);
        // Latin-1 without control characters: anything else is not a header value (and CR/LF would split the request).
        if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(header)) return { error: `argument ${name} holds characters a header cannot carry` };
        headers[argument.name] = header;
      }
    } catch {
      return { error: `argument ${name} is not valid text (unpaired surrogate)` };
    }
  }
  return { method: binding.method, path: query.length > 0 ? `${path}?${query.join("&")}` : path, headers, ...(body === undefined ? {} : { body }) };
}

function parameterOf(binding: RestBinding, location: "path" | "query" | "header", name: string): OperationParameter | undefined {
  const list = location === "path" ? binding.templateParameters : location === "query" ? binding.queryParameters : binding.headers;
  return list.find((p) => p.name === name);
}

function isPrimitive(value: unknown): value is Primitive {
  return typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value));
}

/** The value when its shape fits the parameter's type: a primitive, a list of primitives, or a flat object. */
function asPlaceable(value: unknown, type: string | undefined): Placeable | undefined {
  if (type === "array") {
    if (isPrimitive(value)) return [value];
    return Array.isArray(value) && value.every(isPrimitive) ? value : undefined;
  }
  if (type === "object") {
    return value !== null && typeof value === "object" && !Array.isArray(value) && Object.values(value).every(isPrimitive)
      ? (value as Record<string, Primitive>)
      : undefined;
  }
  return isPrimitive(value) ? value : undefined;
}

function describeType(type: string | undefined): string {
  if (type === "array") return "a list of strings, numbers or booleans";
  if (type === "object") return "an object of strings, numbers or booleans";
  return "a string, number or boolean";
}

/** OpenAPI's "simple" style (path and header default): a,b,c for lists, k1,v1,k2,v2 for objects. */
function simpleForm(value: Placeable): string {
  if (Array.isArray(value)) return value.map(String).join(",");
  if (typeof value === "object") return Object.entries(value).flatMap(([k, v]) => [k, String(v)]).join(",");
  return String(value);
}

function pathSegment(value: Placeable): string {
  if (Array.isArray(value)) return value.map((v) => encodeURIComponent(String(v))).join(",");
  if (typeof value === "object") return Object.entries(value).flatMap(([k, v]) => [encodeURIComponent(k), encodeURIComponent(String(v))]).join(",");
  return encodeURIComponent(String(value));
}

/** OpenAPI's "form" style with explode (the query default): a list repeats the name, an object spreads its properties. */
function queryPairs(name: string, value: Placeable): string[] {
  const pair = (key: string, v: Primitive): string => `${encodeURIComponent(key)}=${encodeURIComponent(String(v))}`;
  if (Array.isArray(value)) return value.map((v) => pair(name, v));
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => pair(k, v));
  return [pair(name, value)];
}
