// How a gateway log record's outcome is counted in usage (docs/usage.md, "Error classes").
import { describe, expect, it } from "vitest";
import { errorClass } from "../../src/domain/usage/metrics.js";

describe("errorClass", () => {
  it("names the party at fault: the caller, the governance, a limit, the backend or the gateway", () => {
    const cases: [status: number, reason: string, backend: number, expected: string | undefined][] = [
      [200, "", 200, undefined],
      [401, "", 0, "auth"],
      [403, "", 0, "scope"],
      [403, "HeaderValueNotAllowed", 0, "scope"],
      [403, "TokenQuotaExceeded", 0, "limit"],
      [429, "RateLimitExceeded", 0, "limit"],
      [403, "ContentSafetyBlocked", 0, "contentSafety"],
      [400, "", 0, "request"],
      [502, "", 503, "backend"],
      // A backend refusing the gateway's credential: the caller gets 502, the fault is the backend's configuration.
      [502, "", 401, "backend"],
      [503, "BackendConnectionFailure", 0, "backend"],
      [500, "ExpressionValueEvaluationFailure", 0, "gateway"],
    ];
    for (const [status, reason, backend, expected] of cases) expect(errorClass(status, reason, backend), `${status} ${reason} ${backend}`).toBe(expected);
  });
});
