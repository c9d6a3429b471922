/**
 * The semantic cache behind llm-semantic-cache-lookup/-store: answers kept with the embedding of the
 * prompt that produced them, per partition (the concatenated vary-by values). A lookup hits when the
 * closest stored prompt is within `score-threshold` (cosine distance: lower means closer, as the
 * policy reference describes the score). APIM keeps this in an external Redis with RediSearch; the
 * local gateway keeps it in memory.
 */
export interface CachedResponse {
  status: number;
  reason: string;
  headers: Record<string, string[]>;
  body: Buffer;
}

interface Entry {
  vector: number[];
  response: CachedResponse;
  expiresAt: number;
}

export class SemanticCache {
  private readonly partitions = new Map<string, Entry[]>();

  constructor(private readonly now: () => number) {}

  lookup(partition: string, vector: number[], threshold: number): { response: CachedResponse; distance: number } | undefined {
    const entries = this.live(partition);
    let best: Entry | undefined;
    let bestDistance = Infinity;
    for (const e of entries) {
      const d = 1 - cosine(vector, e.vector);
      if (d < bestDistance) {
        bestDistance = d;
        best = e;
      }
    }
    return best && bestDistance <= threshold ? { response: best.response, distance: bestDistance } : undefined;
  }

  store(partition: string, vector: number[], response: CachedResponse, durationSeconds: number): void {
    const entries = this.live(partition);
    entries.push({ vector, response, expiresAt: this.now() + durationSeconds * 1000 });
    this.partitions.set(partition, entries);
  }

  private live(partition: string): Entry[] {
    const now = this.now();
    const entries = (this.partitions.get(partition) ?? []).filter((e) => e.expiresAt > now);
    this.partitions.set(partition, entries);
    return entries;
  }
}

function cosine(a: number[], b: number[]): number {
  if (a.length !== b.length || a.length === 0) return 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}
