import { setTimeout as sleep } from "node:timers/promises";
import { contentSafetyService, isContentSafetyHost } from "./content-safety.js";
import { type InjectedFailure, type Instances } from "./instances.js";
import { openAiError } from "./openai-error.js";
import { openAiService } from "./openai.js";
import { type Answer, type Call, type FakeService, bearerToken } from "./service.js";
import { type InstanceBehaviour } from "./types.js";

/**
 * One instance request, in the order a real endpoint behind a slow network would apply things: latency,
 * then unknown operations (which never consume an injected failure), then authentication, then the
 * injected failure, then the operation itself.
 */
export async function serveInstance(call: Call, instances: Instances, signal: AbortSignal): Promise<Answer> {
  // An Azure AI Services resource (*.cognitiveservices.azure.com) serves Azure OpenAI under /openai/ and Content Safety (the rest).
  const service: FakeService = isContentSafetyHost(call.host) && !call.path.toLowerCase().includes("/openai/") ? contentSafetyService : openAiService;
  const answer = await decide(call, service, instances, signal);
  return { ...answer, headers: { "x-mock-instance": call.host, ...service.headers(call), ...answer.headers } };
}

async function decide(call: Call, service: FakeService, instances: Instances, signal: AbortSignal): Promise<Answer> {
  const latency = instances.behaviour(call.host).latencyMs;
  if (latency > 0) await sleep(latency, undefined, { signal });
  const handler = service.route(call);
  if (!handler) return service.notFound(call);
  const denial = credentialDenial(call, instances.behaviour(call.host)) ?? service.builtinAuth(call);
  if (denial) return service.unauthorized(denial);
  const failure = instances.takeFailure(call.host);
  if (failure) return injected(failure, call.host);
  return handler(call);
}

function credentialDenial(call: Call, behaviour: InstanceBehaviour): string | undefined {
  const bearer = bearerToken(call.headers);
  if (behaviour.requireKey !== undefined && call.headers["api-key"] !== behaviour.requireKey && bearer !== behaviour.requireKey) {
    return "Access denied due to invalid subscription key or wrong API endpoint.";
  }
  if (behaviour.requireBearer && bearer === undefined) return "Access denied: a bearer token (managed identity) is required.";
  return undefined;
}

function injected(failure: InjectedFailure, host: string): Answer {
  const answer = openAiError(failure.status, `Injected failure ${failure.status} from mock instance ${host}.`);
  // Sent whenever the test asked for it, so a 503 with Retry-After can be exercised too.
  if (failure.retryAfterSeconds === undefined) return answer;
  return { ...answer, headers: { "retry-after": String(failure.retryAfterSeconds) } };
}
