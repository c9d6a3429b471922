/**
 * Local fakes of the three clouds' agent services, for the agent-source adapters' tests and the agent-sync
 * benchmark: the real SDKs, unmodified, talk to them. Each keeps its agents in an AgentCloudState (seeded,
 * changeable between syncs, with fault injection and request counters).
 */
export { startBedrockFake, type BedrockFake, type BedrockFakeOptions, type BedrockRequestKind } from "./bedrock.js";
export { startFoundryFake, type FoundryFake, type FoundryFakeOptions, type FoundryRequestKind } from "./foundry.js";
export {
  AgentCloudState,
  type FakeAction,
  type FakeAgent,
  type FakeAlias,
  type FakeCloud,
  type FakeStats,
  type Fault,
  type RandomFaults,
  type RequestMatch,
  type SeedOptions,
} from "./state.js";
export { engineEtag, startVertexFake, type VertexFake, type VertexFakeOptions, type VertexRequestKind } from "./vertex.js";
