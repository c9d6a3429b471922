import { type EvalEnv } from "../expressions/engine.js";
import { type RequestState } from "../runtime/context.js";
import { type XmlElement } from "../xml.js";

export type Section = "inbound" | "backend" | "outbound" | "on-error";
export const SECTIONS: readonly Section[] = ["inbound", "backend", "outbound", "on-error"];
export type Scope = "global" | "product" | "api" | "operation";

/** Something the gateway refused to load: the file, where in it, and why. */
export interface LoadIssue {
  file: string;
  line: number;
  column: number;
  message: string;
}

/** One policy statement, ready to run. */
export interface Step {
  element: string;
  line: number;
  run(r: Run): Promise<void>;
  /** A cors statement's rule: preflights read it without running the pipeline. */
  cors?: import("./elements/cors.js").CorsRule;
}

/** The response a policy produced, or the one a backend answered with. */
export interface ResponseSpec {
  status: number;
  reason?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** Ends the pipeline with the response in the request state (return-response, a cache hit). */
export class EndPipeline {
  readonly kind = "end";
}

/**
 * A policy or the gateway failed: the pipeline jumps to on-error with context.LastError set; the
 * response (when given) is what the caller gets unless on-error changes it.
 */
export class PolicyError extends Error {
  constructor(
    readonly source: string,
    readonly reason: string,
    message: string,
    readonly response?: ResponseSpec,
  ) {
    super(message);
  }
}

/** The work one request does against the gateway's shared state (counters, backends, caches, logs). */
export interface Run {
  state: RequestState;
  env: EvalEnv;
  section: Section;
  scope: Scope;
  services: RunServices;
  /** The backend set-backend-service chose (an id, or a base URL). */
  backend: { id?: string; baseUrl?: string };
  /** Called once the backend's answer is complete (after a stream ends): tokens, timings. */
  onComplete: ((call: CompletedCall) => Promise<void> | void)[];
  /** What the gateway log records about the backend. */
  trace: { backendId?: string; backendUrl?: string; backendStatus?: number; backendMs: number; cache: "hit" | "miss" | "none"; streamed: boolean };
  /** Steps a policy wants to run when the response is known (response headers of limits, checks of completions). */
  afterBackend: ((r: Run) => Promise<void>)[];
  /** Token usage of a buffered backend answer, known as soon as it arrived (streams report it in onComplete). */
  usage?: TokenUsage;
  /** Checks of streamed completion text (llm-content-safety on completions): false stops the stream. */
  streamChecks: { windowSize: number; check: (text: string) => Promise<boolean> }[];
  /** A semantic-cache lookup that missed: where to store the answer. */
  cacheCandidate?: { partition: string; vector: number[] };
  /**
   * Response headers a limit policy added about this call's own counters (remaining tokens and calls,
   * totals): not part of the answer, so llm-semantic-cache-store keeps them out of what it stores.
   */
  callHeaders?: Set<string>;
  /**
   * Those headers with their values, as the limits that let the call through set them: a semantic-cache
   * hit (which ends inbound, so never reaches afterBackend) carries them too (ADR 025).
   */
  limitHeaders?: Map<string, string>;
  /** Runs the parent scope's statements for the current section (`<base/>`). */
  base(): Promise<void>;
}

export interface CompletedCall {
  status: number;
  usage: TokenUsage | undefined;
  /** The model the backend says served the request. */
  model?: string;
  streamed: boolean;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** True when the numbers were estimated (the backend reported no usage). */
  estimated: boolean;
}

/** Services a step may use; implemented by the gateway (runtime/). */
export interface RunServices {
  now(): number;
  sleep(ms: number): Promise<void>;
  counters: import("../runtime/counters.js").Counters;
  forward(r: Run, opts: { timeoutMs: number }): Promise<void>;
  managedIdentityToken(resource: string, clientId?: string): string;
  backendUrl(id: string): string | undefined;
  callBackend(id: string, path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; json: unknown }>;
  semanticCache: import("../runtime/semantic-cache.js").SemanticCache;
  metric(namespace: string, dimensions: Record<string, string>, usage: TokenUsage): void;
}

/** What loading a policy element needs: the document, where the element is, and how to report. */
export interface LoadContext {
  file: string;
  section: Section;
  issue(el: XmlElement, message: string): void;
  /** A fragment's root element, for include-fragment (undefined when it does not exist or failed to parse). */
  fragment(id: string): { el: XmlElement; file: string } | undefined;
  /** Fragments being expanded, to refuse nesting (fragments cannot include fragments). */
  inFragment?: string;
}
