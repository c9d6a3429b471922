import { isRecord } from "./behaviour.js";
import { type Answer, type Call, type FakeService, type Handler, bearerToken } from "./service.js";

export const CATEGORIES = ["Hate", "SelfHarm", "Sexual", "Violence"] as const;
type Category = (typeof CATEGORIES)[number];

export function isContentSafetyHost(host: string): boolean {
  return host.endsWith(".cognitiveservices.azure.com");
}

/** Thrown by body readers; becomes the service's 400. */
class InvalidBody extends Error {}

export const contentSafetyService: FakeService = {
  route(call) {
    if (call.method !== "POST") return undefined;
    // By suffix, like the model fake, in case the gateway forwards under a base path.
    const path = call.path.toLowerCase();
    const handler: ((body: Record<string, unknown>) => unknown) | undefined = path.endsWith("/contentsafety/text:analyze")
      ? analyze
      : path.endsWith("/contentsafety/text:shieldprompt")
        ? shieldPrompt
        : undefined;
    return handler && withBody(handler);
  },
  notFound(call) {
    return azureError(404, "NotFound", `Resource not found: ${call.method} ${call.path}`);
  },
  unauthorized(message) {
    return azureError(401, "PermissionDenied", message);
  },
  builtinAuth(call) {
    // The gateway reaches Content Safety with its managed identity, never a key.
    return bearerToken(call.headers) ? undefined : "Access denied: a bearer token (managed identity) is required.";
  },
  headers() {
    return {};
  },
};

function withBody(handler: (body: Record<string, unknown>) => unknown): Handler {
  return (call: Call): Answer => {
    if (!call.json.ok || !isRecord(call.json.value)) return azureError(400, "InvalidRequestBody", "The request body must be a JSON object.");
    try {
      return { status: 200, json: handler(call.json.value) };
    } catch (e) {
      if (e instanceof InvalidBody) return azureError(400, "InvalidRequestBody", e.message);
      throw e;
    }
  };
}

/** Severities come from `unsafe:<Category>:<0-7>` markers, blocklist hits from `blocked:<name>`, so tests choose the verdict. */
function analyze(body: Record<string, unknown>) {
  const { text, categories, blocklistNames, haltOnBlocklistHit, outputType } = body;
  if (typeof text !== "string") throw new InvalidBody("'text' is required and must be a string.");
  const wanted = categories === undefined ? [...CATEGORIES] : categoryList(categories);
  const lists = stringList(blocklistNames, "blocklistNames");
  if (haltOnBlocklistHit !== undefined && typeof haltOnBlocklistHit !== "boolean") throw new InvalidBody("'haltOnBlocklistHit' must be a boolean.");
  if (outputType !== undefined && outputType !== "FourSeverityLevels" && outputType !== "EightSeverityLevels") {
    throw new InvalidBody("'outputType' must be FourSeverityLevels or EightSeverityLevels.");
  }
  const blocklistsMatch = lists
    .filter((name) => new RegExp(`(?<![\\w:])blocked:${escapeRegExp(name)}(?![\\w-])`, "i").test(text))
    .map((name) => ({ blocklistName: name, blocklistItemId: "item-1", blocklistItemText: `blocked:${name}` }));
  // As in the real service, a blocklist hit with haltOnBlocklistHit skips the category analysis.
  if (haltOnBlocklistHit === true && blocklistsMatch.length > 0) return { blocklistsMatch, categoriesAnalysis: [] };
  const eight = outputType === "EightSeverityLevels";
  const severities = markedSeverities(text);
  const categoriesAnalysis = wanted.map((category) => {
    const s = severities.get(category) ?? 0;
    return { category, severity: eight ? s : s - (s % 2) };
  });
  return { blocklistsMatch, categoriesAnalysis };
}

const ATTACK = /jailbreak|ignore previous instructions/i;

function shieldPrompt(body: Record<string, unknown>) {
  const { userPrompt, documents } = body;
  if (typeof userPrompt !== "string") throw new InvalidBody("'userPrompt' is required and must be a string.");
  const docs = stringList(documents, "documents");
  return {
    userPromptAnalysis: { attackDetected: ATTACK.test(userPrompt) },
    documentsAnalysis: docs.map((d) => ({ attackDetected: ATTACK.test(d) })),
  };
}

/** The highest marked severity per category. */
function markedSeverities(text: string): Map<Category, number> {
  const found = new Map<Category, number>();
  for (const m of text.matchAll(/(?<![\w:])unsafe:([a-z]+):([0-7])(?!\w)/gi)) {
    const category = CATEGORIES.find((c) => c.toLowerCase() === m[1]?.toLowerCase());
    if (category) found.set(category, Math.max(found.get(category) ?? 0, Number(m[2])));
  }
  return found;
}

function categoryList(v: unknown): Category[] {
  if (!Array.isArray(v)) throw new InvalidBody("'categories' must be an array.");
  return v.map((c) => {
    const category = CATEGORIES.find((known) => known === c);
    if (!category) throw new InvalidBody(`Unknown category ${JSON.stringify(c)}; expected one of ${CATEGORIES.join(", ")}.`);
    return category;
  });
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) throw new InvalidBody(`'${field}' must be an array of strings.`);
  return v;
}

function azureError(status: number, code: string, message: string): Answer {
  return { status, json: { error: { code, message } } };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
