import { type Answer } from "./service.js";

export interface StreamSpec {
  id: string;
  created: number;
  model: string;
  words: string[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  includeUsage: boolean;
}

/** Chat Completions stream: a chunk per word, a stop chunk, then (when asked for) a usage-only chunk and [DONE]. */
export function chatStream(s: StreamSpec): Answer {
  const base = { id: s.id, object: "chat.completion.chunk", created: s.created, model: s.model };
  // With include_usage the real API sends `usage: null` on every chunk but the last.
  const pending = s.includeUsage ? { usage: null } : {};
  const chunks: unknown[] = s.words.map((word, i) => ({
    ...base,
    choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content: word } : { content: ` ${word}` }, finish_reason: null }],
    ...pending,
  }));
  chunks.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }], ...pending });
  if (s.includeUsage) chunks.push({ ...base, choices: [], usage: s.usage });
  return events(chunks);
}

/** Legacy Completions stream, same framing as chat with `text` instead of a delta. */
export function completionStream(s: StreamSpec): Answer {
  const base = { id: s.id, object: "text_completion", created: s.created, model: s.model };
  const pending = s.includeUsage ? { usage: null } : {};
  const chunks: unknown[] = s.words.map((word, i) => ({
    ...base,
    choices: [{ index: 0, text: i === 0 ? word : ` ${word}`, logprobs: null, finish_reason: null }],
    ...pending,
  }));
  chunks.push({ ...base, choices: [{ index: 0, text: "", logprobs: null, finish_reason: "stop" }], ...pending });
  if (s.includeUsage) chunks.push({ ...base, choices: [], usage: s.usage });
  return events(chunks);
}

function events(chunks: unknown[]): Answer {
  return { status: 200, events: [...chunks.map((c) => JSON.stringify(c)), "[DONE]"] };
}
