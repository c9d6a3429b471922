import { isRecord } from "./behaviour.js";
import { InvalidRequest } from "./openai-error.js";

/** The fake's tokenizer: one token per whitespace-separated word, so tests can predict usage exactly. */
export function countWords(text: string): number {
  return text.split(/\s+/).filter((w) => w !== "").length;
}

/** Prompt tokens never drop below 1, as with a real tokenizer on any request. */
export function promptTokens(texts: string[]): number {
  return Math.max(1, countWords(texts.join(" ")));
}

/** "w1 w2 … wn": long enough to stream word by word, trivially checkable. */
export function answerWords(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `w${i + 1}`);
}

/** The first of `fields` that is set decides the answer length; 8 when none is. */
export function answerLength(body: Record<string, unknown>, fields: string[]): number {
  for (const field of fields) {
    const v = body[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new InvalidRequest(`'${field}' must be an integer ≥ 1`);
    return v;
  }
  return 8;
}

/** Text of chat messages or Responses input items: `content` as a string or as parts carrying `text`. */
export function messagesText(messages: unknown[]): string[] {
  const texts: string[] = [];
  for (const message of messages) {
    if (typeof message === "string") texts.push(message);
    if (!isRecord(message)) continue;
    const content = message.content;
    if (typeof content === "string") texts.push(content);
    else if (Array.isArray(content)) {
      for (const part of content) if (isRecord(part) && typeof part.text === "string") texts.push(part.text);
    }
  }
  return texts;
}

/**
 * Completion prompts and embedding inputs: a string, an array of strings, or token arrays. Each entry of
 * the result is one input; a token id counts as one word.
 */
export function promptInputs(value: unknown, field: string): string[] {
  const fail = () => new InvalidRequest(`'${field}' must be a string, an array of strings, or an array of token arrays`);
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || value.length === 0) throw fail();
  if (value.every((v) => typeof v === "number")) return [value.join(" ")];
  return value.map((v) => {
    if (typeof v === "string") return v;
    if (Array.isArray(v) && v.every((t) => typeof t === "number")) return v.join(" ");
    throw fail();
  });
}
