import { expect } from "vitest";
import { ApiError } from "../../src/client/index.js";

/** The error a promise rejects with (fails the test if it resolves). */
export async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return e as Error;
  }
  throw new Error("expected a rejection");
}

/** The HTTP status of an API call: 200 when it succeeds, the problem's status when it fails. */
export const statusOf = (p: Promise<unknown>): Promise<number> => p.then(() => 200, (e: unknown) => (e instanceof ApiError ? e.status : 599));

/** "<status> <reason>" of an API call's problem, "200" when it succeeds: the status and the problem's reason in one assertion. */
export const reasonOf = (p: Promise<unknown>): Promise<string> => p.then(() => "200", (e: unknown) => (e instanceof ApiError ? `${e.status} ${e.problem?.reason}` : String(e)));
