import type { ReasonWith } from "./reasons.js";

/**
 * Every failure the domain can report. Mapped to HTTP in exactly one place (src/http/problem.ts).
 */
export interface FieldError {
  /** JSON pointer-ish path, e.g. "body.tags.team" or "params.projectId". */
  field: string;
  message: string;
}

/**
 * `reason`: a stable, machine-readable code for refusals a client may want to act on, from the catalog
 * in ./reasons.ts (documented in docs/api.md and the OpenAPI document), with its kind's status; every
 * conflict has one. The HTTP mapping derives a generic one from the kind when none is given.
 */
export type DomainError =
  | { kind: "unauthenticated"; detail: string }
  | { kind: "forbidden"; detail: string; reason?: ReasonWith<403> }
  | { kind: "notFound"; resource: string }
  | { kind: "validation"; detail: string; errors: FieldError[]; reason?: ReasonWith<400> }
  | { kind: "malformedBody"; detail: string }
  | { kind: "unsupportedMediaType"; detail: string }
  | { kind: "payloadTooLarge"; limitBytes: number }
  | { kind: "conflict"; detail: string; reason: ReasonWith<409> }
  | { kind: "preconditionRequired" }
  | { kind: "preconditionFailed" }
  | { kind: "unavailable"; detail: string };

const APP_ERROR = Symbol.for("aigov.AppError");

export class AppError extends Error {
  /**
   * Recognised across copies of this module: the function app is one bundled file, and a pillar module compiled
   * apart from it (a test's fixture pillar) throws the copy it imported (docs/adr/020-one-file-function-app.md).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[APP_ERROR] === true;
  }
  readonly [APP_ERROR] = true;
  constructor(readonly error: DomainError) {
    super(`${error.kind}${"detail" in error ? `: ${error.detail}` : ""}`);
    this.name = "AppError";
  }
}

export const fail = (error: DomainError): never => {
  throw new AppError(error);
};

export const notFound = (resource: string): never => fail({ kind: "notFound", resource });
