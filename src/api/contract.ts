import type { z } from "zod";
import type { Access } from "./access.js";

export type HttpMethod = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

/**
 * One admin-API operation: the single description from which the function registration,
 * request validation, the OpenAPI document, the typed client and the CLI are all derived.
 */
export interface Operation {
  operationId: string;
  method: HttpMethod;
  /** OpenAPI path below /api, e.g. "/projects/{projectId}". */
  path: string;
  summary: string;
  tag: string;
  /** No token needed (health, OpenAPI, the approval page). */
  anonymous?: boolean;
  /** Answers text/html (pages for people, e.g. the approval page) instead of JSON; errors are HTML pages too. */
  html?: boolean;
  /**
   * Who may call it: tenant roles, roles assigned on the path's project, and who may call it on
   * resources of their own. The gate enforces it; the OpenAPI description and docs/api.md show it.
   */
  access: Access;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Request content types accepted for the body. */
  bodyTypes?: readonly string[];
  /** true: If-Match required (428 without it); "optional": honoured when sent (412 when stale). */
  ifMatch?: boolean | "optional";
  /** html POST pages: the application/x-www-form-urlencoded fields. */
  formBody?: z.ZodObject;
  success: { status: 200 | 201 | 202 | 204; schema?: z.ZodType; description: string };
  errors: readonly number[];
  /** The CLI verb that calls it, e.g. "projects create". */
  cli: string;
}

export const defineOperation = <const O extends Operation>(op: O): O => op;

/** The function route for an operation: the path without the leading slash (the host adds /api). */
export const functionRoute = (op: Operation): string => op.path.slice(1);

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;
type In<S> = S extends z.ZodType ? z.input<S> : undefined;

/** What a handler receives once the request is validated. */
export interface ParsedRequest<O extends Operation> {
  params: Out<O["params"]>;
  query: Out<O["query"]>;
  body: Out<O["body"]>;
  ifMatch: O["ifMatch"] extends true ? string : O["ifMatch"] extends "optional" ? string | undefined : undefined;
}

/** What a client sends. */
export type ClientInput<O extends Operation> = (O["params"] extends z.ZodType ? { params: In<O["params"]> } : { params?: undefined }) &
  (O["query"] extends z.ZodType ? { query?: In<O["query"]> } : { query?: undefined }) &
  (O["body"] extends z.ZodType ? { body: In<O["body"]> } : { body?: undefined }) &
  (O["ifMatch"] extends true ? { ifMatch: string } : O["ifMatch"] extends "optional" ? { ifMatch?: string | undefined } : { ifMatch?: undefined });

export type SuccessBody<O extends Operation> = O["success"]["schema"] extends z.ZodType ? z.output<O["success"]["schema"]> : undefined;
