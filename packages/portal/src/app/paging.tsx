import { Button } from "@fluentui/react-components";
import { useInfiniteQuery, type QueryKey } from "@tanstack/react-query";

/** A page as the API returns it. */
export interface Page<T> {
  items: T[];
  continuationToken?: string | undefined;
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

/** The button under a paged list: shown while the API has more. */
export function LoadMore({ list, label }: { list: { hasMore: boolean; loadingMore: boolean; more: () => void }; label: string }) {
  if (!list.hasMore) return null;
  return (
    <Button onClick={list.more} disabled={list.loadingMore} aria-label={label}>
      {list.loadingMore ? "Loading…" : "Load more"}
    </Button>
  );
}
