// Which keys of an env are secret, for the views that show values without a flag (the diff,
// releases, comparisons): the draft's items carry `secret`, releases and diffs do not.

import { ApiError, api } from "../../api.js";

// Keys seen as secret on this page, by env path: a secret deleted from the draft is still
// masked in the diff and the releases that hold it, as long as the page knows it was one.
const known = new Map();

/** Remember the secret keys among a draft's items; returns every secret key known for base. */
export function rememberSecrets(base, items) {
  let keys = known.get(base);
  if (!keys) {
    keys = new Set();
    known.set(base, keys);
  }
  for (const item of items) if (item.secret) keys.add(item.key);
  return new Set(keys);
}

/**
 * The secret keys of an env as far as the page can tell: the draft's flags (read now) and
 * those seen before. A reader who may not read the draft gets the keys seen before; their
 * secret values are null anyway.
 */
export async function secretKeys(base) {
  try {
    const draft = await api("GET", `${base}/items`);
    return rememberSecrets(base, draft.items);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404))
      return rememberSecrets(base, []);
    throw error;
  }
}
