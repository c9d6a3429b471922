/** Problems found in the orchestrator (generator) bodies of a workflow file's text. */
export function orchestratorProblems(text: string, name: string): string[];
