import type { Revision } from "../../../../src/domain/publishing/schema.js";

const OUTCOMES: Record<NonNullable<Revision["isolated"]>[number]["outcome"], string> = {
  keptPublished: "did not compile; its last published registry went out instead",
  keptArtifacts: "did not compile; the gateway keeps what it held for it",
  leftOut: "did not compile and was left out (never published)",
};

const MAX_ERROR = 300;

/**
 * What a revision's status alone does not say, in words: why it failed, what a system publish did not
 * ship (staged registry changes, a registry it left out) and a person's revision that is therefore not
 * at the gateway. `listed` is the page the revision is on (revisions refer to each other by id);
 * `projectName` turns a project id into its name where the portal knows it.
 */
export function revisionNotes(r: Revision, listed: readonly Revision[], projectName: (id: string) => string | undefined): string[] {
  const ref = (id: string) => {
    const n = listed.find((x) => x.id === id)?.number;
    return n === undefined ? id : `#${n}`;
  };
  const notes: string[] = [];
  if (r.status === "failed" && r.error) notes.push(`Failed: ${r.error.length > MAX_ERROR ? `${r.error.slice(0, MAX_ERROR)}…` : r.error}`);
  if (r.retry) notes.push(`Retry ${r.retry.attempt} of ${ref(r.retry.of)}`);
  if (r.rollbackOf) notes.push(`Rolls back to ${ref(r.rollbackOf)}`);
  for (const p of r.isolated ?? []) notes.push(`Project ${p.name} ${OUTCOMES[p.outcome]}: ${p.error}`);
  if (r.registryLeftOut) notes.push(`Leaves out the registry of ${ref(r.registryLeftOut)}, which the gateway refused: it waits for a person's publish`);
  const staged = [...(r.staged?.tenant ? ["tenant settings"] : []), ...(r.staged?.projects ?? []).map((id) => `project ${projectName(id) ?? id}`)];
  if (staged.length) notes.push(`Not shipped, waiting for a person's publish: ${staged.join(", ")}`);
  const leftOutBy = listed.find((x) => x.registryLeftOut === r.id);
  // A person's publish that reached the gateway since shipped the registry as it was then, this change included.
  const shippedSince = leftOutBy && listed.some((x) => x.origin === "person" && x.status === "published" && x.number > leftOutBy.number);
  if (leftOutBy && !shippedSince) notes.push(`Not at the gateway: ${ref(leftOutBy.id)} left its registry out after the gateway refused it; publish again`);
  return notes;
}
