// Logging shared by the host's parts: levels, the default sink, and error text fit for a log line.

import type { CoreLogLevel } from "./core-shim.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Log = (level: LogLevel, message: string) => void;

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const text = err.stack ?? `${err.name}: ${err.message}`;
    // durable-functions 3.5 throws "false\n\n$OutOfProcData$:<state>" for a failed orchestrator; the
    // state (with the real reason, which the durable engine logs) is too much for a log line.
    const cut = text.indexOf("\n\n$OutOfProcData$:");
    return cut >= 0 ? `${text.slice(0, cut)} (orchestrator failed; see the durable engine's log)` : text;
  }
  try {
    return typeof err === "string" ? err : JSON.stringify(err);
  } catch {
    return String(err);
  }
}

export function mapLevel(level: CoreLogLevel): LogLevel | undefined {
  switch (level) {
    case "trace":
    case "debug":
      return "debug";
    case "information":
      return "info";
    case "warning":
      return "warn";
    case "error":
    case "critical":
      return "error";
    default:
      return undefined;
  }
}

export function defaultLog(level: LogLevel, message: string): void {
  if (level === "debug") return;
  if (level === "error") console.error(message);
  else if (level === "warn") console.warn(message);
  else console.log(message);
}
