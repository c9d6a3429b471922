/**
 * What an orchestration records of an activity that failed for good: the failure's reason, one line.
 * durable-functions hands the orchestrator a failed task as an Error whose message is the reason, a line
 * break and the details — in Azure and locally alike, the activity's stack trace: file paths and internals
 * that the API, the portal and the events must not carry. Deterministic (a pure function of the error).
 */
export function failureReason(err: unknown, max = 500): string {
  const text = err instanceof Error ? err.message : String(err);
  const reason = (text.split(/\r?\n/).find((line) => line.trim() !== "") ?? "").trim();
  return reason.length > max ? `${reason.slice(0, max - 1)}…` : reason;
}
