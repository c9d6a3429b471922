import { randomBytes } from "node:crypto";
import { isRecord } from "./behaviour.js";
import { embed, embeddingBase64 } from "./embedding.js";
import { InvalidRequest, openAiError } from "./openai-error.js";
import { chatStream, completionStream } from "./openai-stream.js";
import { answerLength, answerWords, messagesText, promptInputs, promptTokens } from "./openai-text.js";
import { type Answer, type Call, type FakeService } from "./service.js";

type Operation = "chat/completions" | "completions" | "embeddings" | "responses";

// By suffix, so the fake answers whatever base path the gateway forwards to (/v1, /openai/v1, /openai/deployments/x).
const OPERATION = /(?:^|\/)(chat\/completions|completions|embeddings|responses)$/;
const DEPLOYMENT = /\/deployments\/([^/]+)\/(?:chat\/completions|completions|embeddings|responses)$/;

interface Target {
  operation: Operation;
  deployment: string | undefined;
}

function target(call: Call): Target | undefined {
  const path = call.path.replace(/\/+$/, "");
  const op = OPERATION.exec(path)?.[1] as Operation | undefined;
  if (call.method !== "POST" || !op) return undefined;
  return { operation: op, deployment: DEPLOYMENT.exec(path)?.[1] };
}

/** The deployment in the path is what Azure OpenAI serves; the body's `model` only matters without one. */
function modelServed(call: Call, t: Target): string {
  const body = call.json.ok ? call.json.value : undefined;
  if (t.deployment) return t.deployment;
  return isRecord(body) && typeof body.model === "string" && body.model !== "" ? body.model : "mock-model";
}

export const openAiService: FakeService = {
  route(call) {
    const t = target(call);
    if (!t) return undefined;
    return (c) => guarded(c, t);
  },
  notFound(call) {
    return openAiError(404, `The mock model endpoint has no ${call.method} ${call.path}`, "not_found");
  },
  unauthorized(message) {
    return openAiError(401, message);
  },
  builtinAuth() {
    return undefined;
  },
  headers(call): Record<string, string> {
    const t = target(call);
    return t ? { "x-mock-model": modelServed(call, t), ...providerHeaders(call, t) } : {};
  },
};

/**
 * What a real provider puts on every answer besides the body, so that what reaches a client through the
 * gateway can be checked: OpenAI's and Azure OpenAI's request id and their rate-limit headers, which
 * describe the deployment's own (shared) limits, not a caller's; Azure OpenAI's deployment and region,
 * its own `apim-request-id`, and the echo of the client's `x-ms-client-request-id`.
 */
function providerHeaders(call: Call, t: Target): Record<string, string> {
  const out: Record<string, string> = {
    "x-request-id": id("req_"),
    "x-ratelimit-limit-requests": String(DEPLOYMENT_LIMITS.requests),
    "x-ratelimit-limit-tokens": String(DEPLOYMENT_LIMITS.tokens),
    "x-ratelimit-remaining-requests": String(DEPLOYMENT_LIMITS.requests - 1),
    "x-ratelimit-remaining-tokens": String(DEPLOYMENT_LIMITS.tokens - 1000),
    "x-ratelimit-reset-requests": "1ms",
    "x-ratelimit-reset-tokens": "6ms",
  };
  if (t.deployment) {
    out["apim-request-id"] = randomBytes(16).toString("hex");
    out["x-ms-region"] = "East US";
    out["x-ms-deployment-name"] = t.deployment;
    out["azureml-model-session"] = `d${randomBytes(2).toString("hex")}-20250101000000`;
  }
  const clientId = call.headers["x-ms-client-request-id"];
  if (clientId !== undefined) out["x-ms-client-request-id"] = clientId;
  return out;
}

/** The fake deployment's own limits, as a provider reports them (they are not any caller's). */
const DEPLOYMENT_LIMITS = { requests: 10_000, tokens: 1_000_000 } as const;

const HANDLERS: Record<Operation, (body: Record<string, unknown>, model: string) => Answer> = {
  "chat/completions": chat,
  completions,
  embeddings,
  responses,
};

function guarded(call: Call, t: Target): Answer {
  if (!call.json.ok || !isRecord(call.json.value)) {
    const why = call.json.ok ? "must be a JSON object" : call.json.empty ? "is empty" : "is not valid JSON";
    return openAiError(400, `The request body ${why}.`, "invalid_json");
  }
  try {
    return HANDLERS[t.operation](call.json.value, modelServed(call, t));
  } catch (e) {
    if (e instanceof InvalidRequest) return openAiError(400, e.message);
    throw e;
  }
}

function chat(body: Record<string, unknown>, model: string): Answer {
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new InvalidRequest("'messages' must be a non-empty array");
  const words = answerWords(answerLength(body, ["max_tokens", "max_completion_tokens"]));
  const usage = usageOf(promptTokens(messagesText(body.messages)), words.length);
  const head = { id: id("chatcmpl-"), created: now(), model };
  if (body.stream === true) return chatStream({ ...head, words, usage, includeUsage: includeUsage(body) });
  return ok({
    ...head,
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content: words.join(" ") }, finish_reason: "stop" }],
    usage,
  });
}

function completions(body: Record<string, unknown>, model: string): Answer {
  const prompt = body.prompt === undefined ? [] : promptInputs(body.prompt, "prompt");
  const words = answerWords(answerLength(body, ["max_tokens"]));
  const usage = usageOf(promptTokens(prompt), words.length);
  const head = { id: id("cmpl-"), created: now(), model };
  if (body.stream === true) return completionStream({ ...head, words, usage, includeUsage: includeUsage(body) });
  return ok({
    ...head,
    object: "text_completion",
    choices: [{ index: 0, text: words.join(" "), logprobs: null, finish_reason: "stop" }],
    usage,
  });
}

function embeddings(body: Record<string, unknown>, model: string): Answer {
  if (body.input === undefined) throw new InvalidRequest("'input' is a required property");
  const inputs = promptInputs(body.input, "input");
  const base64 = body.encoding_format === "base64";
  const tokens = promptTokens(inputs);
  return ok({
    object: "list",
    data: inputs.map((text, index) => {
      const vector = embed(text);
      return { object: "embedding", index, embedding: base64 ? embeddingBase64(vector) : vector };
    }),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

function responses(body: Record<string, unknown>, model: string): Answer {
  const input = body.input;
  const texts = typeof input === "string" ? [input] : Array.isArray(input) ? messagesText(input) : undefined;
  if (!texts) throw new InvalidRequest("'input' must be a string or an array of input items");
  if (body.stream === true) throw new InvalidRequest("the mock does not stream /responses; send stream: false");
  const words = answerWords(answerLength(body, ["max_output_tokens"]));
  const inputTokens = promptTokens(texts);
  return ok({
    id: id("resp_"),
    object: "response",
    created_at: now(),
    model,
    status: "completed",
    output: [
      {
        type: "message",
        id: id("msg_"),
        role: "assistant",
        status: "completed",
        content: [{ type: "output_text", text: words.join(" "), annotations: [] }],
      },
    ],
    usage: { input_tokens: inputTokens, output_tokens: words.length, total_tokens: inputTokens + words.length },
  });
}

function includeUsage(body: Record<string, unknown>): boolean {
  return isRecord(body.stream_options) && body.stream_options.include_usage === true;
}

function usageOf(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function ok(json: unknown): Answer {
  return { status: 200, json };
}

function id(prefix: string): string {
  return `${prefix}${randomBytes(12).toString("hex")}`;
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}
