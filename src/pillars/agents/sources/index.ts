/**
 * The sources the sync uses, one per cloud. Each adapter, and the SDK it wraps, is imported when a target of its
 * cloud first asks for one: the SDKs take from a quarter of a second (AWS) to over a second (Google, Azure AI
 * Projects) to load, which no request that does not sync agents should pay.
 */
import { type AgentSource, type AgentSourceFactory, type SourceTarget } from "./source.js";

export const createAgentSource: AgentSourceFactory = async (target: SourceTarget): Promise<AgentSource> => {
  switch (target.cloud) {
    case "bedrock":
      return (await import("./bedrock.js")).createBedrockSource(target);
    case "vertex":
      return (await import("./vertex.js")).createVertexSource(target);
    case "foundry":
      return (await import("./foundry.js")).createFoundrySource(target);
  }
};
