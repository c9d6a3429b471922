import type { SecretRef, SubscriptionArtifact } from "../../ports/gateway.js";
import type { GatewayNames } from "../../policy/names.js";
import { profileOf, type KeyDoc, type SlotName } from "./documents.js";
import { fillerName, secretName } from "./secrets.js";

/**
 * The key's APIM subscription as it should be now: a pure function of the key document (and of the
 * tier an active key-scope exemption puts it on, which replaces its own product while it lasts; a key
 * that is not active stays on the product it is on).
 */
export function subscriptionFor(doc: KeyDoc, names: GatewayNames, exemptionTier?: string): SubscriptionArtifact {
  const dead = doc.status === "revoked" || doc.status === "expired";
  const placed = stopsInPlace(doc) ? (doc.gateway.publishedExemptionTier?.id ?? doc.gateway.publishedProfile!.id) : undefined;
  const profile = placed ?? exemptionTier ?? profileOf(doc);
  const ref = (slot: SlotName): SecretRef =>
    doc.slots[slot].kind === "secret" ? { name: secretName(doc.id, slot), version: doc.slots[slot].version } : { name: fillerName(doc.id, slot), version: doc.slots[slot].version };
  const id = names.subscription(doc.id);
  return {
    kind: "subscription",
    id,
    displayName: subscriptionDisplayName(doc.name, doc.id),
    scope: profile ? { type: "product", productId: names.product(doc.projectId, profile) } : { type: "api", apiId: names.api(doc.projectId) },
    state: dead ? "cancelled" : doc.status === "suspended" ? "suspended" : "active",
    primaryKey: ref("primary"),
    secondaryKey: ref("secondary"),
  };
}

/**
 * A key that must stop working (suspended, revoked, expired) stops where its subscription is now: moving
 * it to a new profile's product first would wait for that product's publish while the secret still works.
 * Its recorded placement (publishedProfile, publishedExemptionTier) then stays as it is: that product
 * stays compiled, so no publish deletes it from under the subscription.
 */
export const stopsInPlace = (doc: KeyDoc): boolean => doc.status !== "active" && doc.gateway.publishedProfile !== undefined;

/** APIM allows 100 characters: the key id always fits (it is how people find the key), the name is
 * shortened by whole code points so a surrogate pair is never split. */
export function subscriptionDisplayName(name: string, keyId: string): string {
  const suffix = ` (${keyId})`;
  const room = 100 - suffix.length;
  if (name.length <= room) return `${name}${suffix}`;
  let out = "";
  for (const ch of name) {
    if (out.length + ch.length > room - 1) break;
    out += ch;
  }
  return `${out}…${suffix}`;
}
