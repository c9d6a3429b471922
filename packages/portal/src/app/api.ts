import { useMemo } from "react";
import { AigovClient, ApiError } from "../../../../src/client/index.js";
import { useConfig } from "./config-context.js";
import { useSession } from "./session.js";

/** The one way to the server: the app's typed client, with the signed-in user's token. */
export function useClient(): AigovClient {
  const { token } = useSession();
  const { apiUrl } = useConfig();
  return useMemo(() => new AigovClient({ endpoint: apiUrl ?? location.origin, token }), [apiUrl, token]);
}

export { describeError, type ProblemText } from "./problem-text.js";
export { ApiError };
