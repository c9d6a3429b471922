/**
 * The policy compiler: governance settings (settings.ts) and registry data (input.ts) in, Azure API
 * Management artifacts (ports/gateway.ts) plus explanations and document sizes out (compile/index.ts,
 * one sibling file per artifact family).
 * Pure: no I/O, no clock, no Azure SDK.
 */
export {
  compile,
  CONSUMPTION_POLICY_SIZE_LIMIT_BYTES,
  POLICY_SIZE_LIMIT_BYTES,
  SECRET_HEADERS,
  type CompileResult,
  type ExplainEntry,
  type ScopeRef,
} from "./compile.js";
export { PolicyCompileError, PolicySizeError, type PolicyIssue } from "./errors.js";
export { CompilerInput, KeyTier, PolicyModel, PolicyProject, type CompilerInputIn } from "./input.js";
export { gatewayNames, GatewayNames, tenantGatewayKey } from "./names.js";
export { CONTROL_IDS, CONTROLS, ControlId, mergeSettings, ModelSettings, Settings, type EffectiveSettings, type SettingLevel } from "./settings.js";
