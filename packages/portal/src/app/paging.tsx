import { Button } from "@fluentui/react-components";
import { useInfiniteQuery, useQuery, type QueryKey } from "@tanstack/react-query";
import type { AigovClient } from "../../../../src/client/index.js";
import { useClient } from "./api.js";

/** A page as the API returns it. */
export interface Page<T> {
  items: T[];
  continuationToken?: string | undefined;
  nextLink?: string | undefined;
}

/**
 * A list the API pages: every page loaded so far as one `items` list, and `more` to load the next. Lists
 * that people act on (keys to revoke, review items to decide) must never stop silently at one page.
 */
export function usePaged<T>(queryKey: QueryKey, page: (continuationToken: string | undefined) => Promise<Page<T>>, options: { enabled?: boolean; refetchInterval?: (items: T[] | undefined) => number | false } = {}) {
  const q = useInfiniteQuery({
    queryKey,
    queryFn: ({ pageParam }) => page(pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.continuationToken,
    ...(options.enabled !== undefined ? { enabled: options.enabled } : {}),
    ...(options.refetchInterval ? { refetchInterval: (query: { state: { data?: { pages: Page<T>[] } | undefined } }) => options.refetchInterval!(query.state.data?.pages.flatMap((p) => p.items)) } : {}),
  });
  return {
    data: q.data ? { items: q.data.pages.flatMap((p) => p.items) } : undefined,
    isPending: q.isPending,
    error: q.error,
    refetch: q.refetch,
    hasMore: q.hasNextPage,
    loadingMore: q.isFetchingNextPage,
    more: () => void q.fetchNextPage(),
  };
}

/**
 * Every item of a list: its first page, then each `nextLink` (through the client, so with its token and
 * endpoint) until a page has none. A link seen twice is an error, not a loop.
 */
export async function listAll<T, P extends Page<T>>(client: Pick<AigovClient, "next">, first: P): Promise<T[]> {
  const items = [...first.items];
  const seen = new Set<string>();
  let page: P | undefined = first;
  while (page.nextLink) {
    if (seen.has(page.nextLink)) throw new Error(`the list's nextLink repeats: ${page.nextLink}`);
    seen.add(page.nextLink);
    page = await client.next(page);
    if (!page) break;
    items.push(...page.items);
  }
  return items;
}

/**
 * A list read whole, for what offers a choice (a picker, a scope chooser): a choice the first page left
 * out could not be made at all. `first` reads the first page; the next ones follow its nextLink.
 */
export function useAllPages<T>(queryKey: QueryKey, first: () => Promise<Page<T>>, options: { enabled?: boolean } = {}) {
  const client = useClient();
  return useQuery({
    queryKey,
    queryFn: async () => ({ items: await listAll<T, Page<T>>(client, await first()) }),
    ...(options.enabled !== undefined ? { enabled: options.enabled } : {}),
  });
}

/** The button under a paged list: shown while the API has more. */
export function LoadMore({ list, label }: { list: { hasMore: boolean; loadingMore: boolean; more: () => void }; label: string }) {
  if (!list.hasMore) return null;
  return (
    <Button onClick={list.more} disabled={list.loadingMore} aria-label={label}>
      {list.loadingMore ? "Loading…" : "Load more"}
    </Button>
  );
}
