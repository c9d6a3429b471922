import type { InvocationContext } from "@azure/functions";
import type * as DF from "durable-functions";
import type { Driven, DriveRequest, DriverCheck, Drivers } from "../domain/kernel/drive.js";
import { durableClient } from "./registration.js";

export type { DriverCheck } from "../domain/kernel/drive.js";

/** Runtime statuses of an instance that still drives its subject (a suspended one is an operator's choice: left alone). */
const LIVE = new Set(["Running", "Pending", "ContinuedAsNew", "Suspended"]);

/** The instance's runtime status, or undefined when there is no such instance. */
async function statusOf(client: DF.DurableClient, instanceId: string): Promise<string | undefined> {
  try {
    return String((await client.getStatus(instanceId)).runtimeStatus);
  } catch (err) {
    // The client reports "no such instance" as an error mentioning the HTTP 404 it got.
    if (err instanceof Error && /\b404\b/.test(err.message)) return undefined;
    throw err;
  }
}

/**
 * Starts the driver a service asked for. Idempotent by instance id (the subject's): when the start is
 * refused because a driver with that id is already live, that one drives it. Any other failure is the
 * caller's (the subject's sweep starts a driver that is still missing).
 */
export async function startDrive(client: DF.DurableClient, drive: DriveRequest): Promise<void> {
  try {
    await client.startNew(drive.orchestrator, { instanceId: drive.instanceId, input: drive.input });
  } catch (err) {
    const status = await statusOf(client, drive.instanceId).catch(() => undefined);
    if (status !== undefined && LIVE.has(status)) return;
    throw err;
  }
}

/**
 * Makes sure a subject that needs an orchestration has a live one (sweeps: a failed start, a purge, an
 * orchestration that failed or was terminated). The instance id is the subject's, so a subject never
 * gets two: startNew over a finished instance replaces it (Azure's default
 * `overridableExistingInstanceStates: NonRunningStates`; the local engine does the same), over a live
 * one it is refused. `stillNeeded` is asked before replacing a finished instance — the subject may
 * have been finished by that very instance since the sweep listed it. Throws when the status query
 * fails for another reason than "no such instance" (the caller logs and goes on with the next one).
 */
export async function ensureDriver(client: DF.DurableClient, drive: DriveRequest, stillNeeded: () => Promise<boolean> = async () => true): Promise<DriverCheck> {
  const status = await statusOf(client, drive.instanceId);
  if (status !== undefined && LIVE.has(status)) return "alive";
  if (status !== undefined && !(await stillNeeded())) return "notNeeded";
  await client.startNew(drive.orchestrator, { instanceId: drive.instanceId, input: drive.input });
  return status === undefined ? "started" : "restarted";
}

/** The durable client as the domain's jobs see it (Drivers: start and ensure). */
export const durableDrivers = (client: DF.DurableClient): Drivers => ({
  start: (drive) => startDrive(client, drive),
  ensure: (drive, stillNeeded) => ensureDriver(client, drive, stillNeeded),
});

/**
 * A service's result in an HTTP handler: starts the driver it asks for (if any) through the
 * invocation's durable client (`durableClientInput()` in the registration) and gives back the rest.
 *
 * A start that fails does not fail the answer: the change is stored already, and the subject's sweep
 * starts the missing driver under the same instance id (docs/durable.md). A 500 would tell the caller
 * that nothing happened, and lose what the answer carries — a rotated or requested key's only copy of
 * its new secret.
 */
export async function driven<T extends object>(
  invocation: Pick<InvocationContext, "warn">,
  result: Driven<T>,
  start: (drive: DriveRequest) => Promise<void> = (drive) => startDrive(durableClient(invocation as InvocationContext), drive),
): Promise<T> {
  const { drive, ...rest } = result;
  if (drive) {
    try {
      await start(drive);
    } catch (err) {
      invocation.warn(`${drive.orchestrator} ${drive.instanceId} was not started (${err instanceof Error ? err.message : String(err)}); its sweep starts it`);
    }
  }
  return rest as T;
}
