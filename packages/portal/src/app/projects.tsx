import { Field, Select } from "@fluentui/react-components";
import { useEffect } from "react";
import { useNavigate, useParams } from "react-router";
import { useClient } from "./api.js";
import { useAllPages, usePaged } from "./paging.js";
import { LAST_PROJECT } from "./session.js";
import { ErrorBar, Loading } from "./ui.js";

/**
 * Every project the caller can see (the server filters), all pages: what the pickers offer. Its key is under
 * ["projects"], which a new project invalidates (as it does the paged list's).
 */
export function useProjects() {
  const client = useClient();
  return useAllPages(["projects", "all"], () => client.projects.list({ maxPageSize: 100 }));
}

/** The projects the caller can see, a page at a time (with LoadMore): what the project list shows. */
export function usePagedProjects() {
  const client = useClient();
  return usePaged(["projects", "paged"], (token) => client.projects.list({ maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }));
}

/** The project in the URL (/projects/:projectId/…), with a picker that moves to another project's same page. */
export function ProjectPicker({ page }: { page: string }) {
  const { projectId } = useParams();
  const navigate = useNavigate();
  const projects = useProjects();
  // /models, /keys… open the project last picked (App.tsx, ProjectRedirect).
  useEffect(() => {
    if (projectId) sessionStorage.setItem(LAST_PROJECT, projectId);
  }, [projectId]);
  if (projects.isPending) return <Loading label="Loading projects" />;
  if (projects.error) return <ErrorBar error={projects.error} onRetry={() => void projects.refetch()} />;
  return (
    <Field label="Project">
      <Select value={projectId ?? ""} onChange={(_, d) => navigate(`/projects/${d.value}/${page}`)}>
        <option value="" disabled>
          Choose a project
        </option>
        {projects.data.items.map((p) => (
          <option key={p.id} value={p.id}>
            {p.name} ({p.environment})
          </option>
        ))}
      </Select>
    </Field>
  );
}


/**
 * A project chosen in a form (not the URL's): `none` names the empty choice — a scope ("Whole tenant") or,
 * when `required`, a prompt that cannot be picked again.
 */
export function ProjectSelect({ label, value, onChange, none, required = false }: { label: string; value: string; onChange: (id: string) => void; none: string; required?: boolean }) {
  const projects = useProjects();
  return (
    <Field label={label} validationMessage={projects.error ? "projects could not be read" : undefined}>
      <Select value={value} onChange={(_, d) => onChange(d.value)}>
        <option value="" disabled={required}>
          {none}
        </option>
        {(projects.data?.items ?? []).map((p) => (
          <option key={p.id} value={p.id}>
            {p.name}
          </option>
        ))}
      </Select>
    </Field>
  );
}
