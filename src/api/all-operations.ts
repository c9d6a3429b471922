import type { Operation } from "./contract.js";
import { coreOperations } from "./operations.js";
import { pillarOperations } from "../pillars/index.js";

/**
 * Every operation of the admin API. The OpenAPI document, the registrations check and the CLI are built
 * from this list. It loads the pillar modules (their services and SDKs), so the typed client, which the
 * browser portal bundles, imports the operation definitions (operations.ts) and never this list.
 */
export const operations: readonly Operation[] = [...coreOperations, ...pillarOperations()];
