import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { buildOpenApiDocument } from "../../src/api/openapi.js";
import { operations } from "../../src/api/all-operations.js";
import { renderReasonTable } from "../../src/api/problem.js";
import type { DomainError } from "../../src/domain/errors.js";
import { DEFAULT_REASONS, REASONS } from "../../src/domain/reasons.js";
import { INTERNAL_ERROR, mapError, problemBody } from "../../src/http/problem.js";

const ROOT = join(__dirname, "..", "..");
const DOC = readFileSync(join(ROOT, "docs", "api.md"), "utf8");
const STATUS_OF_KIND = { conflict: 409, forbidden: 403, validation: 400 } as const;

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : [];
  });

/** Source text without comment lines (a JSDoc may quote an error literal). */
const code = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .map((l) => (/^\s*(\/\/|\/\*|\*)/.test(l) ? "" : l))
    .join("\n");

/** The object literal around `at`: from its `{` to the matching `}`. */
function enclosingObject(text: string, at: number): string {
  let start = -1;
  for (let i = at - 1, depth = 0; i >= 0; i--) {
    if (text[i] === "}") depth++;
    else if (text[i] === "{" && depth-- === 0) {
      start = i;
      break;
    }
  }
  if (start < 0) throw new Error(`no object around offset ${at}`);
  for (let i = start, depth = 0; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`unbalanced object at offset ${start}`);
}

/** The string literals `reason:` can take in `text`: `reason: "x"`, and both arms of `reason: c ? "x" : "y"`. */
function reasonLiterals(text: string): string[] {
  return [...text.matchAll(/\breason:\s*([^,}\n]*)/g)].flatMap((m) => [...m[1]!.matchAll(/(?:^|[?:])\s*"([a-z][a-z0-9_]*)"/g)].map((l) => l[1]!));
}

interface Site {
  file: string;
  line: number;
  kind: keyof typeof STATUS_OF_KIND;
  object: string;
  reasons: string[];
}

const files = walk(join(ROOT, "src")).map((file) => ({ file: relative(ROOT, file), text: code(file) }));

/** Every conflict, forbidden and validation error written as an object literal in src/ (not the union's type). */
const sites: Site[] = files.flatMap(({ file, text }) =>
  [...text.matchAll(/\bkind:\s*"(conflict|forbidden|validation)"\s*[,}]/g)].map((m) => {
    const object = enclosingObject(text, m.index);
    return { file, line: text.slice(0, m.index).split("\n").length, kind: m[1] as Site["kind"], object, reasons: reasonLiterals(object) };
  }),
);

/** Every reason literal in the files that build domain errors (helpers pass `{ reason: "…" }` on too). */
const used = new Map<string, string[]>();
for (const { file, text } of files) {
  if (!/from "[^"]*\/(errors|reasons)\.js"/.test(text)) continue;
  for (const r of reasonLiterals(text)) used.set(r, [...(used.get(r) ?? []), file]);
}

describe("problem reasons: one catalog (src/domain/reasons.ts)", () => {
  it("finds the error sites (the scan works)", () => {
    expect(sites.filter((s) => s.kind === "conflict").length).toBeGreaterThanOrEqual(30);
    expect(used.has("name_taken") && used.has("rotation_in_progress") && used.has("content_safety_service_missing")).toBe(true);
  });

  it("every conflict has a specific reason", () => {
    const bare = sites.filter((s) => s.kind === "conflict" && !/\breason\b/.test(s.object)).map((s) => `${s.file}:${s.line}`);
    expect(bare, "a conflict without a reason: give it one from src/domain/reasons.ts").toEqual([]);
  });

  it("every reason used in src/ is in the catalog, with the status of the error it is given to", () => {
    expect([...used.keys()].filter((r) => !(r in REASONS)).map((r) => `${r} (${used.get(r)!.join(", ")})`)).toEqual([]);
    for (const s of sites) {
      for (const r of s.reasons) expect(REASONS[r as keyof typeof REASONS]?.status, `${s.file}:${s.line} ${s.kind} with ${r}`).toBe(STATUS_OF_KIND[s.kind]);
    }
  });

  it("every reason in the catalog is used somewhere in src/ and is snake_case", () => {
    for (const r of Object.keys(REASONS)) {
      expect(r).toMatch(/^[a-z][a-z0-9]*(_[a-z0-9]+)+$/);
      expect(used.has(r), `${r} is in the catalog but nothing in src/ gives it`).toBe(true);
    }
  });

  it("docs/api.md has the catalog's table (the rows, as renderReasonTable gives them)", () => {
    const table = renderReasonTable();
    expect(DOC.includes(`\n${table}\n\n`), `docs/api.md: the reason table should read\n${table}`).toBe(true);
    for (const r of used.keys()) expect(DOC, `${r} is not documented in docs/api.md`).toContain(`| \`${r}\` | ${REASONS[r as keyof typeof REASONS]?.status} |`);
  });

  it("the OpenAPI document lists every reason (catalog and defaults) on Problem.reason, without closing the set", () => {
    const doc = buildOpenApiDocument(operations, { version: "test" }) as { components: { schemas: Record<string, { properties: Record<string, Record<string, unknown>> }> } };
    const reason = doc.components.schemas.Problem!.properties.reason!;
    expect(reason.type).toBe("string");
    expect(reason.enum).toBeUndefined();
    expect(reason.description).toMatch(/x-aigov-reasons/);
    const listed = reason["x-aigov-reasons"] as { reason: string; status: number; meaning: string }[];
    expect(listed).toEqual(expect.arrayContaining(Object.entries(REASONS).map(([r, { status, meaning }]) => ({ reason: r, status, meaning }))));
    for (const [r, status] of Object.entries(DEFAULT_REASONS)) expect(listed).toContainEqual(expect.objectContaining({ reason: r, status }));
    expect(new Set(listed.map((l) => l.reason)).size).toBe(listed.length);
  });

  it("a refusal without a specific reason carries its code's default, one of DEFAULT_REASONS with the same status", () => {
    const errors: DomainError[] = [
      { kind: "unauthenticated", detail: "" }, { kind: "forbidden", detail: "" }, { kind: "notFound", resource: "/x" },
      { kind: "validation", detail: "", errors: [] }, { kind: "malformedBody", detail: "" }, { kind: "unsupportedMediaType", detail: "" },
      { kind: "payloadTooLarge", limitBytes: 1 }, { kind: "preconditionRequired" }, { kind: "preconditionFailed" }, { kind: "unavailable", detail: "" },
    ];
    for (const m of [...errors.map(mapError), INTERNAL_ERROR]) {
      const body = problemBody(m, "/x", "c");
      expect(DEFAULT_REASONS[body.reason as keyof typeof DEFAULT_REASONS], body.reason).toBe(body.status);
    }
    expect(problemBody(mapError({ kind: "conflict", detail: "", reason: "rotation_in_progress" }), "/x", "c")).toMatchObject({ status: 409, reason: "rotation_in_progress" });
    for (const r of Object.keys(REASONS)) expect(r in DEFAULT_REASONS, r).toBe(false);
  });
});
