/**
 * A short random wait before a conditional write is tried again (a few milliseconds, growing with the
 * attempts): writers that lost a guard document to one another together would otherwise collide again at
 * once, and under load run out of attempts before the count they retry for can answer.
 */
export const jitter = (attempt: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * Math.min(attempt, 10)));
