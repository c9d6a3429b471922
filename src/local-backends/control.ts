import { BehaviourError } from "./behaviour.js";
import { type Instances, normaliseHost } from "./instances.js";
import { type Answer, parseJsonBody } from "./service.js";

export const CONTROL_PREFIX = "/.mock/";

/** The HTTP twin of configure()/requests()/reset(), for people driving the app by hand; answers on any Host. */
export function control(method: string, path: string, rawBody: string, instances: Instances): Answer {
  const rest = path.slice(CONTROL_PREFIX.length).replace(/\/+$/, "");
  if (rest === "reset" && method === "POST") {
    instances.reset();
    return { status: 200, json: { reset: true } };
  }
  const m = /^instances\/([^/]+)(\/requests)?$/.exec(rest);
  const host = m?.[1] ? normaliseHost(m[1]) : undefined;
  if (host && m?.[2] && method === "GET") return { status: 200, json: instances.requests(host) };
  if (host && !m?.[2] && method === "GET") return { status: 200, json: { host, behaviour: instances.behaviour(host) } };
  if (host && !m?.[2] && method === "POST") {
    const body = parseJsonBody(rawBody);
    if (!body.ok) return error(400, "InvalidRequestBody", "The body must be a JSON object (a partial instance behaviour).");
    try {
      return { status: 200, json: { host, behaviour: instances.configure(host, body.value) } };
    } catch (e) {
      if (e instanceof BehaviourError) return error(400, "InvalidRequestBody", e.message);
      throw e;
    }
  }
  return error(
    404,
    "NotFound",
    `No control route ${method} ${path}. Routes: POST /.mock/instances/<host>, GET /.mock/instances/<host>, GET /.mock/instances/<host>/requests, POST /.mock/reset.`,
  );
}

function error(status: number, code: string, message: string): Answer {
  return { status, json: { error: { code, message } } };
}
