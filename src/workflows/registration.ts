/* eslint-disable @typescript-eslint/no-require-imports -- durable-functions is loaded on first use, on purpose */
import { app, input, trigger, type FunctionInput, type InvocationContext } from "@azure/functions";
import type * as DF from "durable-functions";

/**
 * Durable registrations without loading `durable-functions` at start-up.
 *
 * `df.app.orchestration/activity` register `app.generic` functions with an `orchestrationTrigger` /
 * `activityTrigger` and a handler built by the library. The library (with axios, lodash, validator…)
 * costs ~175 ms to load — most of the app's cold-start budget. Here the registrations are the same
 * (same trigger types, same handlers), but the library is required the first time a durable function
 * actually runs. See docs/adr/004-lazy-durable-registration.md. Pinned to durable-functions 3.5.0;
 * the contract tests in packages/functions-localhost/test/durable replay recorded histories through these handlers.
 */
const df = (): typeof DF => require("durable-functions") as typeof DF;

type Handler = (triggerInput: unknown, context: InvocationContext) => Promise<unknown>;

function lazy(build: () => Handler): Handler {
  let handler: Handler | undefined;
  return (triggerInput, context) => (handler ??= build())(triggerInput, context);
}

export function orchestration(name: string, fn: DF.OrchestrationHandler): void {
  app.generic(name, {
    trigger: trigger.generic({ type: "orchestrationTrigger" }),
    handler: lazy(() => {
      const { createOrchestrator } = require("durable-functions/lib/src/util/testingUtils") as {
        createOrchestrator: (f: DF.OrchestrationHandler) => Handler;
      };
      return createOrchestrator(fn);
    }),
  });
}

export function activity(name: string, handler: DF.ActivityHandler): void {
  app.generic(name, {
    trigger: trigger.generic({ type: "activityTrigger" }),
    // wrapActivityHandler is exported by the library but missing from its typings.
    handler: lazy(() => (df().app as unknown as { wrapActivityHandler(h: DF.ActivityHandler): Handler }).wrapActivityHandler(handler)),
  });
}

/** The durable client input binding (what `df.input.durableClient()` returns). */
export const durableClientInput = (): FunctionInput => input.generic({ type: "durableClient" });

/** The durable client of an invocation that declared `durableClientInput()`. */
export const durableClient = (context: InvocationContext): DF.DurableClient => df().getClient(context);

/** Retry options for callActivityWithRetry, built when an orchestrator first runs. */
export const retryOptions = (firstRetryIntervalMs: number, maxAttempts: number): DF.RetryOptions => new (df().RetryOptions)(firstRetryIntervalMs, maxAttempts);
