/**
 * Who a stored name stands for. Tokens carry a user as its id — Entra: the object id (`oid`), a GUID in
 * lower case. A GUID names the same user in any case, so where a person wrote one (an owner, a party) it
 * is compared, and kept, in lower case: an owner written in capitals is still the owner when separation
 * of duties asks whether the approver has a stake, and a holder written so still never reviews their own
 * access. Any other name (a team, a mail address, a development user) is compared as written.
 */
const GUID_ANY_CASE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isGuid = (v: string): boolean => GUID_ANY_CASE.test(v);

/** The name as tokens would carry it: a GUID in lower case, anything else unchanged. */
export const canonicalUser = (v: string): string => (isGuid(v) ? v.toLowerCase() : v);

/** Whether two stored or token names are the same user (false when either is missing). */
export const sameUser = (a: string | undefined, b: string | undefined): boolean => a !== undefined && b !== undefined && canonicalUser(a) === canonicalUser(b);
