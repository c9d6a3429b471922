/**
 * Discovery snapshots: immutable, one per successful discovery. A snapshot is its tools in chunk
 * documents (each well under Cosmos' 2 MB item limit) and a header written after all of them, in the
 * same batch as the server's pointer to it (with the audit record and event): until that batch
 * commits the snapshot does not exist, so a crash or a failing write leaves at most unreferenced
 * chunks (swept with the next discovery), never a half-written snapshot.
 */
import { newId } from "../../domain/common.js";
import { listPage } from "../../domain/paging.js";
import type { Partition, Store } from "../../ports/store.js";
import type { SnapshotChunkDoc, SnapshotDoc, StoredTool } from "./documents.js";

/** Bytes of tools per chunk document (JSON): a margin below the item limit for the envelope. */
const CHUNK_BYTES = 1_200_000;
/** Chunk documents per batch (each batch is one round trip; chunks are independent until the header names them). */
const CHUNKS_PER_BATCH = 1;

export class SnapshotStore {
  constructor(private readonly store: Store) {}

  /** Writes a snapshot's tools as chunks; returns the snapshot id and chunk ids (the header goes with the server's change). */
  async writeChunks(partition: Partition, tools: StoredTool[]): Promise<{ snapshotId: string; chunks: string[] }> {
    const snapshotId = newId("snp");
    const chunks: SnapshotChunkDoc[] = [];
    let current: StoredTool[] = [];
    let bytes = 0;
    const flush = () => {
      chunks.push({ id: `${snapshotId}.c${chunks.length}`, ...partition, docType: "mcpSnapshotChunk", snapshotId, index: chunks.length, tools: current });
      current = [];
      bytes = 0;
    };
    for (const t of tools) {
      const size = Buffer.byteLength(JSON.stringify(t));
      if (current.length && bytes + size > CHUNK_BYTES) flush();
      current.push(t);
      bytes += size;
    }
    if (current.length || chunks.length === 0) flush();
    for (let i = 0; i < chunks.length; i += CHUNKS_PER_BATCH) {
      const r = await this.store.batch(partition, chunks.slice(i, i + CHUNKS_PER_BATCH).map((doc) => ({ kind: "create" as const, doc })));
      if (!r.ok) throw new Error(`writing snapshot ${snapshotId} failed with status ${r.status}`);
    }
    return { snapshotId, chunks: chunks.map((c) => c.id) };
  }

  /** Removes chunks no header names (a discovery that failed after writing them). */
  async deleteChunks(partition: Partition, ids: string[]): Promise<void> {
    for (const id of ids) await this.store.delete(partition, id).catch(() => false);
  }

  async header(partition: Partition, id: string): Promise<SnapshotDoc | undefined> {
    const doc = await this.store.read<SnapshotDoc>(partition, id);
    return doc && doc.docType === "mcpSnapshot" ? doc : undefined;
  }

  /** A snapshot's tools, in the order discovery listed them. */
  async tools(partition: Partition, header: SnapshotDoc): Promise<StoredTool[]> {
    const out: StoredTool[] = [];
    for (const id of header.chunks) {
      const chunk = await this.store.read<SnapshotChunkDoc>(partition, id);
      if (!chunk || chunk.docType !== "mcpSnapshotChunk") throw new Error(`snapshot ${header.id} lost its chunk ${id}`);
      out.push(...chunk.tools);
    }
    return out;
  }

  /** One page of a server's snapshots, newest first (the caller's opaque token in, the next out). */
  async page(partition: Partition, serverId: string, page: { maxPageSize: number; continuationToken?: string | undefined }) {
    return listPage<SnapshotDoc>(this.store, partition, { docType: "mcpSnapshot", filters: [{ field: "serverId", op: "=", value: serverId }], orderBy: { field: "seq", direction: "DESC" } }, page);
  }
}
