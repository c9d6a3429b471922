/**
 * Failures of the policy compiler. Each carries a stable `code`; check `error.name`/`code`, not
 * `instanceof`, across module boundaries. The HTTP layer maps them (sizeLimit/unsupportedOnTier/
 * invalidInput → 422 or 400 with the details).
 */
import { type PolicyScope } from "../ports/gateway.js";

export interface PolicyIssue {
  /** Dotted path into the compiler input, e.g. "projects.0.models.2.backends". */
  path: string;
  message: string;
}

export class PolicyCompileError extends Error {
  override readonly name: string = "PolicyCompileError";
  constructor(
    readonly code: "invalidInput" | "unsupportedOnTier" | "sizeLimit",
    message: string,
    readonly issues: PolicyIssue[] = [],
  ) {
    super(message);
  }
}

/** A generated document would exceed the gateway's policy size limit. */
export class PolicySizeError extends PolicyCompileError {
  override readonly name = "PolicySizeError";
  constructor(
    /** The artifact, e.g. "policy:api/aigov-prj_x" or "fragment:aigov-resolve-model". */
    readonly ref: string,
    /** The policy scope (absent for fragments). */
    readonly scope: PolicyScope | undefined,
    readonly bytes: number,
    readonly limitBytes: number,
  ) {
    super("sizeLimit", `${ref}: the policy document is ${bytes} bytes; the gateway allows at most ${limitBytes}`, [
      { path: ref, message: `${bytes} bytes > ${limitBytes}` },
    ]);
  }
}
