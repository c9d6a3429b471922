import { createHash } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import type { GatewayPublisher } from "../../ports/gateway.js";
import type { ChangeWriter } from "../changes.js";
import { systemContext } from "../kernel/system.js";
import { DRIFT_ID, partitionOf, subjectOf, type DriftDoc, type PublishingDocuments } from "./documents.js";
import type { ManifestStore } from "./manifest-store.js";
import { comparableHash, unifiedDiff } from "./render.js";
import type { DriftItem, DriftReport } from "./schema.js";

function toDriftReport(doc: DriftDoc): DriftReport {
  return {
    status: doc.status,
    ...(doc.revisionId ? { revisionId: doc.revisionId } : {}),
    ...(doc.revisionNumber !== undefined ? { revisionNumber: doc.revisionNumber } : {}),
    checkedAt: doc.checkedAt,
    checkedArtifacts: doc.checkedArtifacts,
    items: doc.items,
  };
}

/**
 * Drift by read-back (ADR 006): what the gateway holds for every artifact of the last published
 * revision, compared in comparable form (canonical XML, canonical JSON). Reported, not reverted.
 */
export class DriftChecker {
  constructor(
    private readonly docs: PublishingDocuments,
    private readonly manifests: ManifestStore,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly publisher: (tenantId: string) => Promise<GatewayPublisher>,
  ) {}

  /** The last report; before any check, what the gateway state says (published or not: nothing was compared). */
  async report(tenantId: string): Promise<DriftReport> {
    const doc = await this.docs.drift(tenantId);
    if (!doc) {
      const state = await this.docs.state(tenantId);
      return state.published
        ? { status: "notChecked", revisionId: state.published.revisionId, revisionNumber: state.published.number, checkedArtifacts: 0, items: [] }
        : { status: "neverPublished", checkedArtifacts: 0, items: [] };
    }
    return toDriftReport(doc);
  }

  /**
   * Reads back what the gateway holds for every artifact of the last published revision and records
   * the differences — unless a publish holds the gateway before or after the read-back (or one landed
   * meanwhile): then the last report is returned as it was. The report is rewritten on every check; a
   * change in the finding (drift appears, changes, or is resolved) is also audited and announced.
   */
  async check(tenantId: string, correlationId: string): Promise<DriftReport> {
    const partition = partitionOf(tenantId);
    const state = await this.docs.state(tenantId);
    const checkedAt = this.clock.now().toISOString();
    // A publish in progress changes the gateway under the read-back: what differs then is the publish,
    // not drift. The last report stands; the next check (the timer's, or on demand) compares again.
    const publishing = (s: { lease?: { until: string } }) => s.lease !== undefined && Date.parse(s.lease.until) > this.clock.now().getTime();
    if (publishing(state)) return this.report(tenantId);
    let report: Omit<DriftReport, "checkedAt">;
    if (!state.published) {
      report = { status: "neverPublished", checkedArtifacts: 0, items: [] };
    } else {
      const expected = await this.manifests.gatewayManifest(tenantId, state);
      const refs = [...expected.keys()].sort();
      const [held, artifacts] = await Promise.all([(await this.publisher(tenantId)).read(refs), this.manifests.artifactsByRef(tenantId, expected)]);
      const items: DriftItem[] = [];
      for (const ref of refs) {
        const want = artifacts.get(ref)!;
        const back = held[ref];
        // Revisions never hold subscriptions (keys are published on their own), so a read-back is an artifact.
        const got = back && back.kind !== "subscription" ? back : undefined;
        if (!got) items.push({ ref, state: "missing", diff: unifiedDiff(ref, want, undefined) });
        else if (comparableHash(got) !== comparableHash(want)) items.push({ ref, state: "modified", diff: unifiedDiff(ref, want, got) });
      }
      const after = await this.docs.state(tenantId);
      if (publishing(after) || after.published?.revisionId !== state.published.revisionId || JSON.stringify(after.overrides) !== JSON.stringify(state.overrides)) return this.report(tenantId);
      report = {
        status: items.length > 0 ? "drifted" : "inSync",
        revisionId: state.published.revisionId,
        revisionNumber: state.published.number,
        checkedArtifacts: refs.length,
        items,
      };
    }
    const fingerprint = createHash("sha256").update(JSON.stringify([report.status, report.revisionId ?? "", report.items])).digest("hex");
    const current = await this.docs.drift(tenantId);
    const doc: DriftDoc = { id: DRIFT_ID, ...partition, docType: "driftReport", ...report, checkedAt, fingerprint };
    if (current && current.fingerprint === fingerprint) {
      // Same finding: only the time of the check moves on (housekeeping, not a change to audit).
      await this.docs.putDrift(doc, current._etag);
    } else if (!current && report.status !== "drifted") {
      await this.docs.putDrift(doc);
    } else {
      const event = report.status === "drifted" ? "aigov.gateway.drift.detected.v1" : "aigov.gateway.drift.resolved.v1";
      await this.changes.commit({
        partition,
        ctx: systemContext(tenantId, "system:publisher", correlationId),
        action: report.status === "drifted" ? "gateway.drift.detect" : "gateway.drift.resolve",
        resource: "/gateway/drift",
        ...(current ? { before: { status: current.status, items: current.items.map((i) => `${i.state} ${i.ref}`) } } : {}),
        after: { status: report.status, items: report.items.map((i) => `${i.state} ${i.ref}`) },
        ops: [current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc }],
        event: {
          type: event,
          subject: subjectOf(tenantId, "/gateway/drift"),
          data: { status: report.status, revisionId: report.revisionId, items: report.items.map(({ ref, state: s }) => ({ ref, state: s })) },
        },
        onFailure: () => ({ kind: "conflict", detail: "another drift check wrote the report at the same time", reason: "changed_meanwhile" }),
      });
    }
    return { ...report, checkedAt };
  }

  /** Tenants that have published at least once (the drift job's work list). Background jobs only. */
  async *publishedTenants(): AsyncGenerator<string> {
    for await (const d of this.docs.everyState()) if (d.published) yield d.tenantId;
  }
}
