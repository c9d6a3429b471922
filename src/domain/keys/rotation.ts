import type { Clock } from "../../ports/clock.js";
import { unversioned, type Versioned } from "../../ports/store.js";
import { newId, type RequestContext } from "../common.js";
import { AppError, fail } from "../errors.js";
import type { DriveRequest, DriveRetry } from "../kernel/drive.js";
import { systemContext } from "../kernel/system.js";
import { otherSlot, type KeyDoc, type KeyDocuments, type SlotName } from "./documents.js";
import { generateKey, keyHints } from "./format.js";
import type { KeyGatewaySync } from "./gateway-sync.js";
import type { Key } from "./schema.js";
import type { KeySecrets } from "./secrets.js";

export const KEY_ROTATION_ORCHESTRATOR = "keyRotationOrchestrator";

export interface KeyRotationInput {
  tenantId: string;
  projectId: string;
  keyId: string;
  rotationId: string;
  /** From configuration (an orchestrator may not read settings). */
  retry: DriveRetry;
}

/** Instance id: one orchestration per rotation, so a rotation is never driven twice. */
export const rotationInstanceId = (keyId: string, rotationId: string) => `${keyId}.${rotationId}`;

/** A rotation started: the new secret (shown once), the rotation's id, the key after it, and its driver. */
export interface RotationStarted {
  plaintext: string;
  rotationId: string;
  key: Key;
  drive: DriveRequest<KeyRotationInput>;
}

/**
 * Rotation through two slots (ADR 008): the new secret goes into the standby slot now (one conditional
 * write: one writer per key); the orchestration (functions/workflows/key-rotation.ts) confirms it at the
 * gateway, waits the overlap, then retires the old slot. Each step is idempotent and keyed by the
 * rotation id.
 */
export class KeyRotation {
  constructor(
    private readonly docs: KeyDocuments,
    private readonly secrets: KeySecrets,
    private readonly sync: KeyGatewaySync,
    private readonly clock: Clock,
    private readonly retry: DriveRetry,
  ) {}

  /** The driver of one rotation (the instance id makes a second start of the same rotation harmless). */
  drive(key: Pick<KeyDoc, "tenantId" | "projectId" | "id">, rotationId: string): DriveRequest<KeyRotationInput> {
    return {
      orchestrator: KEY_ROTATION_ORCHESTRATOR,
      instanceId: rotationInstanceId(key.id, rotationId),
      input: { tenantId: key.tenantId, projectId: key.projectId, keyId: key.id, rotationId, retry: { ...this.retry } },
    };
  }

  /** Starts a rotation of an active key: its new secret in the standby slot, recorded (412 when the key changed meanwhile). */
  async begin(ctx: RequestContext, doc: Versioned<KeyDoc>, overlap: number, scheduled: boolean, reason?: string): Promise<RotationStarted> {
    if (doc.status !== "active") fail({ kind: "conflict", detail: `a ${doc.status} key cannot be rotated`, reason: "key_not_active" });
    if (doc.rotation) fail({ kind: "conflict", detail: "a rotation of this key is already in progress", reason: "rotation_in_progress" });
    const tenantId = ctx.principal.tenantId;
    const newSlot = otherSlot(doc.current);
    const plaintext = generateKey();
    const version = await this.secrets.write(doc.id, doc.projectId, newSlot, plaintext);
    let committing = false;
    try {
      await this.secrets.index(tenantId, doc.projectId, doc.id, newSlot, version, plaintext);
      committing = true;
      const { rotationId, key } = await this.record(ctx, doc, newSlot, version, plaintext, overlap, scheduled, reason);
      return { plaintext, rotationId, key, drive: this.drive(doc, rotationId) };
    } catch (err) {
      // Nothing references the new secret when the rotation was not recorded: the key changed under
      // us (an ETag race with another rotation, a revocation, …: 412) or the write was refused. It must
      // not stay an enabled version nobody tracks: disable it. A store error of unknown outcome (the
      // write may have landed) leaves it alone — the rotation may be real.
      if (!committing || err instanceof AppError) await this.secrets.discardUnused(tenantId, doc.id, newSlot, version, plaintext);
      throw err;
    }
  }

  /** Records a rotation whose new secret (`version`) is already in the secret store; 412 when the key changed meanwhile. */
  private async record(ctx: RequestContext, doc: Versioned<KeyDoc>, newSlot: SlotName, version: string, plaintext: string, overlap: number, scheduled: boolean, reason?: string) {
    const at = this.clock.now().toISOString();
    const rotationId = newId("rot");
    const next: KeyDoc = {
      ...unversioned(doc),
      slots: { ...doc.slots, [newSlot]: { kind: "secret", version: version } },
      rotation: { id: rotationId, phase: "overlap", newSlot, overlapMs: overlap, startedAt: at, startedBy: ctx.principal.userId, scheduled },
      ...(scheduled ? { pickup: { slot: newSlot, version: version } } : {}),
      // The hints follow the secret the owner is to use from now on.
      ...keyHints(plaintext),
      secretCreatedAt: at,
      gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    const key = await this.docs.commit(ctx, doc, next, "key.rotate", "aigov.key.rotation.started.v1", { keyId: doc.id, projectId: doc.projectId, scheduled, overlapMs: overlap, ...(reason ? { reason } : {}) });
    return { rotationId, key };
  }

  /** Rotation step 1: the gateway holds both secrets (confirmed); fixes the end of the overlap. */
  async confirm(tenantId: string, projectId: string, id: string, rotationId: string, correlationId: string): Promise<{ state: "gone" } | { state: "overlap"; until: string }> {
    const doc = await this.docs.read(tenantId, projectId, id);
    if (!doc?.rotation || doc.rotation.id !== rotationId) return { state: "gone" };
    if (doc.rotation.phase === "retiring") return { state: "overlap", until: doc.rotation.overlapUntil ?? this.clock.now().toISOString() };
    const synced = await this.sync.sync(tenantId, projectId, id, correlationId);
    if (synced !== "synced") throw new Error(`key ${id}: the gateway does not hold its product yet`);
    for (;;) {
      const cur = await this.docs.read(tenantId, projectId, id);
      if (!cur?.rotation || cur.rotation.id !== rotationId) return { state: "gone" };
      if (cur.rotation.overlapUntil) return { state: "overlap", until: cur.rotation.overlapUntil };
      const until = new Date(this.clock.now().getTime() + cur.rotation.overlapMs).toISOString();
      if (await this.docs.put({ ...unversioned(cur), rotation: { ...cur.rotation, overlapUntil: until } }, cur._etag)) return { state: "overlap", until };
    }
  }

  /** Rotation step 2: the old secret is replaced by a filler at the gateway (confirmed) and is never valid again. */
  async retire(tenantId: string, projectId: string, id: string, rotationId: string, correlationId: string): Promise<"done" | "gone"> {
    const ctx = systemContext(tenantId, "system:keys", correlationId);
    let doc = await this.docs.read(tenantId, projectId, id);
    if (!doc?.rotation || doc.rotation.id !== rotationId) return "gone";
    if (doc.rotation.phase === "overlap") {
      const r = doc.rotation;
      const old = doc.current;
      const fillerGen = doc.fillerGen + 1;
      const next: KeyDoc = {
        ...unversioned(doc),
        current: r.newSlot,
        slots: { ...doc.slots, [old]: { kind: "filler", version: `g${fillerGen}` } },
        fillerGen,
        rotation: { ...r, phase: "retiring", ...(doc.slots[old].kind === "secret" ? { retiredVersion: doc.slots[old].version } : {}) },
        gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
        updatedAt: this.clock.now().toISOString(),
        updatedBy: ctx.principal.userId,
      };
      await this.docs.commit(ctx, doc, next, "key.rotation.retire", "aigov.key.rotation.retiring.v1");
    }
    if ((await this.sync.sync(tenantId, projectId, id, correlationId)) !== "synced") throw new Error(`key ${id}: the gateway does not hold its product yet`);
    doc = (await this.docs.read(tenantId, projectId, id))!;
    if (!doc.rotation || doc.rotation.id !== rotationId) return "gone";
    const at = this.clock.now().toISOString();
    const retiredSlot = otherSlot(doc.current);
    const retiredVersion = doc.rotation.retiredVersion;
    const { rotation: _r, ...rest } = unversioned(doc);
    const done: KeyDoc = { ...rest, rotationCount: doc.rotationCount + 1, lastRotatedAt: at, updatedAt: at, updatedBy: ctx.principal.userId };
    await this.docs.commit(ctx, doc, done, "key.rotation.complete", "aigov.key.rotated.v1");
    // Defence in depth: the retired secret cannot even be read back for a republish. Only that version:
    // a rotation started since may already have put its new secret under the same name.
    if (retiredVersion) await this.secrets.disableRetired(id, retiredSlot, retiredVersion);
    return "done";
  }
}
