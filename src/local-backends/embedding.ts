export const EMBEDDING_DIMENSIONS = 64;

/**
 * A normalised hashed bag of words: identical texts give identical vectors, and cosine similarity tracks
 * word overlap, which is what a semantic cache under test needs. Punctuation is dropped so that "Paris?"
 * and "paris" count as the same word.
 */
export function embed(text: string): number[] {
  const vector = new Array<number>(EMBEDDING_DIMENSIONS).fill(0);
  for (const word of text.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
    if (word === "") continue;
    const i = fnv1a(word) % EMBEDDING_DIMENSIONS;
    vector[i] = (vector[i] ?? 0) + 1;
  }
  const norm = Math.hypot(...vector);
  return norm === 0 ? vector : vector.map((x) => x / norm);
}

/** The wire form the OpenAI SDKs ask for by default: little-endian float32, base64. */
export function embeddingBase64(vector: number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString("base64");
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(s, "utf8")) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
