/**
 * Polls until `probe` returns something other than undefined or false, and returns it. The bound is
 * generous on purpose (a slow, shared machine): a way to wait for asynchronous work, not a timing assertion.
 */
export async function until<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what = "condition", ms = 30_000, every = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`not reached in time: ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
