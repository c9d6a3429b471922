import type { Store, StoredDoc } from "../../ports/store.js";
import { mapLimit } from "../../util/map-limit.js";
import { partitionOf, PART_SIZE, READ_CONCURRENCY, type PublishingDocuments } from "./documents.js";
import { written } from "./manifest-store.js";
import { snapshotFrom, snapshotParts, type RegistryPart, type RegistrySnapshot } from "./registry.js";

const registryPartId = (revisionId: string, n: number) => `revreg.${revisionId}.${n}`;
const registryDocId = (hash: string) => `registry.${hash}`;

interface RegistryPartDoc extends StoredDoc {
  docType: "registryPart";
  part: RegistryPart;
}

interface RegistryEntriesDoc extends StoredDoc {
  docType: "revisionRegistry";
  entries: [string, string][];
}

/**
 * The registry snapshot each revision was compiled from (ADR 010): its parts content-addressed
 * (`registry.<hash>`, shared between revisions while unchanged) and the revision's entries in chunks.
 */
export class RegistryStore {
  constructor(
    private readonly store: Store,
    private readonly docs: PublishingDocuments,
  ) {}

  /** Stores a revision's registry snapshot: content-addressed parts, and the entries in chunks; how many chunks. */
  async save(tenantId: string, revisionId: string, registry: RegistrySnapshot): Promise<number> {
    const partition = partitionOf(tenantId);
    const { entries, parts } = snapshotParts(registry);
    await mapLimit([...parts], READ_CONCURRENCY, async ([hash, part]) =>
      written(await this.store.batch(partition, [{ kind: "upsert", doc: { id: registryDocId(hash), ...partition, docType: "registryPart", part } satisfies RegistryPartDoc }]), `registry part ${hash}`),
    );
    const chunks: RegistryEntriesDoc[] = [];
    for (let i = 0; i * PART_SIZE < entries.length || i === 0; i++) {
      chunks.push({ id: registryPartId(revisionId, i), ...partition, docType: "revisionRegistry", entries: entries.slice(i * PART_SIZE, (i + 1) * PART_SIZE) });
    }
    await mapLimit(chunks, READ_CONCURRENCY, async (c) => written(await this.store.batch(partition, [{ kind: "create", doc: c }]), `registry chunk ${c.id}`));
    return chunks.length;
  }

  /** Removes the chunks of a revision that was never recorded (the parts stay: they are shared). */
  async drop(tenantId: string, revisionId: string, chunks: number): Promise<void> {
    await Promise.all(Array.from({ length: chunks }, (_, i) => this.store.delete(partitionOf(tenantId), registryPartId(revisionId, i))));
  }

  /** The registry snapshot a revision was compiled from; undefined without a revision, or for one made before snapshots were kept. */
  async of(tenantId: string, revisionId: string | undefined): Promise<RegistrySnapshot | undefined> {
    if (!revisionId) return undefined;
    const revision = await this.docs.loadRevision(tenantId, revisionId);
    if (revision.registryParts === undefined) return undefined;
    const partition = partitionOf(tenantId);
    const chunks = await mapLimit(Array.from({ length: revision.registryParts }, (_, i) => i), READ_CONCURRENCY, (i) => this.store.read<RegistryEntriesDoc>(partition, registryPartId(revisionId, i)));
    const entries = chunks.flatMap((c) => {
      if (!c) throw new Error(`a registry part of revision ${revisionId} is missing`);
      return c.entries;
    });
    const hashes = [...new Set(entries.map(([, h]) => h))];
    const docs = await mapLimit(hashes, READ_CONCURRENCY, (h) => this.store.read<RegistryPartDoc>(partition, registryDocId(h)));
    const parts = new Map(docs.flatMap((d, i) => (d ? [[hashes[i]!, d.part] as const] : [])));
    return snapshotFrom(tenantId, entries, parts);
  }
}
