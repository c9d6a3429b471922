/**
 * Token counts for the LLM policies. The backend's `usage` is used whenever it reports one (JSON
 * answers, and streams that end with a usage chunk); otherwise tokens are estimated at four
 * characters per token (APIM estimates with a tokenizer; the emulator's estimate is documented as
 * approximate, which is why conformance tests drive limits through reported usage).
 */
import { type TokenUsage } from "../policy/types.js";

export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.max(1, Math.ceil(text.length / 4));
}

/** The prompt text of an OpenAI-style request: chat messages, completion prompts, embedding and responses inputs. */
export function promptText(body: unknown, opts: { ignoreSystem?: boolean } = {}): string {
  if (body === null || typeof body !== "object") return "";
  const b = body as Record<string, unknown>;
  const parts: string[] = [];
  const content = (c: unknown) => {
    if (typeof c === "string") parts.push(c);
    else if (Array.isArray(c)) for (const p of c) if (p && typeof p === "object" && typeof (p as { text?: unknown }).text === "string") parts.push((p as { text: string }).text);
  };
  if (Array.isArray(b.messages)) {
    for (const m of dialogMessages(b.messages as unknown[], opts.ignoreSystem === true)) content((m as { content?: unknown } | null)?.content);
  }
  for (const k of ["prompt", "input"]) {
    const v = b[k];
    if (typeof v === "string") parts.push(v);
    else if (Array.isArray(v)) {
      for (const x of v) {
        if (typeof x === "string") parts.push(x);
        else content((x as { content?: unknown })?.content);
      }
    }
  }
  return parts.join("\n");
}

/** A chat request's messages, without the system messages when they are ignored. */
function dialogMessages(messages: unknown[], ignoreSystem: boolean): unknown[] {
  return messages.filter((m) => !(ignoreSystem && (m as { role?: unknown } | null)?.role === "system"));
}

/** How many messages a chat request's dialog has (system messages left out when ignored); 0 for other calls. */
export function dialogLength(body: unknown, ignoreSystem: boolean): number {
  const messages = body !== null && typeof body === "object" ? (body as { messages?: unknown }).messages : undefined;
  return Array.isArray(messages) ? dialogMessages(messages, ignoreSystem).length : 0;
}

export function isStreamRequest(body: unknown): boolean {
  return body !== null && typeof body === "object" && (body as { stream?: unknown }).stream === true;
}

/** `usage` of a chat/completions/embeddings answer, or of a Responses API answer. */
export function usageOf(json: unknown): TokenUsage | undefined {
  const u = (json as { usage?: Record<string, unknown> } | null)?.usage;
  if (!u || typeof u !== "object") return undefined;
  const num = (k: string) => (typeof u[k] === "number" ? (u[k] as number) : undefined);
  const prompt = num("prompt_tokens") ?? num("input_tokens");
  const completion = num("completion_tokens") ?? num("output_tokens") ?? 0;
  const total = num("total_tokens") ?? (prompt !== undefined ? prompt + completion : undefined);
  if (prompt === undefined || total === undefined) return undefined;
  return { promptTokens: prompt, completionTokens: completion, totalTokens: total, estimated: false };
}

/** Watches an SSE stream as it passes: the usage chunk when there is one, else the streamed text. */
export class StreamUsage {
  private buffer = "";
  private text = "";
  usage: TokenUsage | undefined;
  model: string | undefined;

  push(chunk: Buffer): void {
    this.buffer += chunk.toString("utf8");
    let i: number;
    while ((i = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, i).trim();
      this.buffer = this.buffer.slice(i + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") continue;
      try {
        const json = JSON.parse(data) as { model?: string; choices?: { delta?: { content?: unknown }; text?: unknown }[] };
        this.model ??= json.model;
        this.usage = usageOf(json) ?? this.usage;
        for (const c of json.choices ?? []) {
          if (typeof c.delta?.content === "string") this.text += c.delta.content;
          else if (typeof c.text === "string") this.text += c.text;
        }
      } catch {
        // Not JSON: not a chunk this gateway reads.
      }
    }
  }

  /** The usage to count: reported, else estimated (prompt tokens from the request). */
  result(promptTokens: number): TokenUsage {
    if (this.usage) return this.usage;
    const completion = estimateTokens(this.text);
    return { promptTokens, completionTokens: completion, totalTokens: promptTokens + completion, estimated: true };
  }

  completionText(): string {
    return this.text;
  }
}
