/* eslint-disable @typescript-eslint/no-require-imports -- xmlbuilder2 and diff load on first use (cold start) */
import { canonicalJson } from "../../util/canonical-json.js";
import { artifactHash, normalizeArtifact, type GatewayArtifact } from "../../ports/gateway.js";

/**
 * How artifacts are compared and shown. The gateway does not hand back the bytes it was sent: APIM
 * re-serialises policy XML (whitespace, entity choices such as &quot; vs "), so a drift check that
 * compared bytes would cry wolf after every publish. Policies and fragments are compared as parsed
 * XML, re-serialised one canonical way; everything else by its canonical JSON.
 */

export function canonicalXml(xml: string): string {
  const { create } = require("xmlbuilder2") as typeof import("xmlbuilder2");
  try {
    return create(xml).end({ headless: true, prettyPrint: true, indent: "    " });
  } catch {
    // Not well-formed (an edit in the portal can be): compare it as text, it will differ.
    return xml;
  }
}

/** The hash two artifacts share exactly when the gateway would behave the same with either. */
export function comparableHash(a: GatewayArtifact): string {
  if (a.kind === "policy" || a.kind === "fragment") return artifactHash({ ...a, xml: canonicalXml(a.xml) });
  return artifactHash(a);
}

/** Text for diffs: the (canonical) XML document, or pretty canonical JSON for the other kinds. */
export function renderArtifact(a: GatewayArtifact): string {
  if (a.kind === "policy" || a.kind === "fragment") {
    return `${canonicalXml(a.xml)}\n`;
  }
  return `${JSON.stringify(JSON.parse(canonicalJson(normalizeArtifact(a))), null, 2)}\n`;
}

/** A unified diff of one artifact (a/ = before, b/ = after; /dev/null when absent). */
export function unifiedDiff(ref: string, before: GatewayArtifact | undefined, after: GatewayArtifact | undefined): string {
  const { createTwoFilesPatch } = require("diff") as typeof import("diff");
  const patch = createTwoFilesPatch(before ? `a/${ref}` : "/dev/null", after ? `b/${ref}` : "/dev/null", before ? renderArtifact(before) : "", after ? renderArtifact(after) : "", undefined, undefined, { context: 3 });
  // Drop the "Index:"/"====" banner: plain `diff -u` output reads better and concatenates cleanly.
  return patch.replace(/^={10,}\n/m, "");
}
