/**
 * A subject that a durable orchestration drives (an approval request, a key rotation, a pending
 * revision): which orchestrator, under which instance id (the subject's own, so a subject never has two
 * drivers and starting one twice is harmless) and with what input. Services return it; the functions
 * layer starts it (src/workflows/drive.ts), and sweeps make sure it stays alive (docs/durable.md).
 */
export interface DriveRequest<I = unknown> {
  orchestrator: string;
  instanceId: string;
  input: I;
}

/** A service's result that asks for a driver to be started; the HTTP layer starts it and answers with the rest. */
export type Driven<T> = T & { drive?: DriveRequest | undefined };

/**
 * What a sweep did about a subject's driver: it was alive, it was missing and was started, or it had
 * ended (failed, terminated, canceled — or completed while the subject still needs it) and was started
 * again under the same id; "notNeeded": it had ended, and so had the subject's need for it.
 */
export type DriverCheck = "alive" | "started" | "restarted" | "notNeeded";

/** The orchestrations as jobs in the domain see them (src/workflows/drive.ts implements it on the durable client). */
export interface Drivers {
  /** Starts the driver; idempotent by instance id (a live driver with that id is left as it is). */
  start(drive: DriveRequest): Promise<void>;
  /**
   * Makes sure a subject that needs its driver has a live one: a missing one is started, a finished one
   * started again once `stillNeeded` (asked only then) says the subject still needs it.
   */
  ensure(drive: DriveRequest, stillNeeded?: () => Promise<boolean>): Promise<DriverCheck>;
}

/** Where a job's notes go (the invocation's log in Azure Functions). */
export interface JobLog {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Retry settings an orchestration takes in its input (an orchestrator may not read configuration). */
export interface DriveRetry {
  firstIntervalMs: number;
  maxAttempts: number;
}
