/**
 * Local fakes of the backends the API gateway emulator forwards to: OpenAI-compatible model endpoints and
 * Azure AI Content Safety, each instance chosen by the Host header.
 */
export { startMockBackends } from "./server.js";
export { type InstanceBehaviour, type MockBackends, type RecordedRequest } from "./types.js";
