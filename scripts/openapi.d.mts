/** The text of openapi.json for a document: keys sorted (schema property names keep their order), trailing newline. */
export function renderOpenApi(doc: unknown): string;
