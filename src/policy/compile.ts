/**
 * The policy compiler's entry point, kept at this path for the callers that load it directly (the
 * lazy `require` in src/domain/policy/preview.ts, bench/policy-compile.mjs, the policy tests). The
 * compiler itself is src/policy/compile/: index.ts and one sibling file per artifact family.
 */
export * from "./compile/index.js";
