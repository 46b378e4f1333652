// Writes of one draft item: by its URL, or by PATCH for the keys a URL cannot carry.

import { api, seg } from "../../api.js";

/** "." and ".." cannot be sent as URL path segments (browsers resolve them). */
function addressable(key) {
  return key !== "." && key !== "..";
}

/**
 * Set an item: { value, comment, secret } (secret undefined keeps the item's flag), at
 * revision (If-Match) or create only; resolves to the saved item.
 */
export async function putItem(base, key, { value, comment, secret }, revision, createOnly = false) {
  const body = secret === undefined ? { value, comment } : { value, comment, secret };
  if (!addressable(key)) {
    // PATCH answers only the keys it changed: the saved item is read back from the draft.
    await api("PATCH", `${base}/items`, { set: { [key]: body } });
    const draft = await api("GET", `${base}/items`);
    return draft.items.find((i) => i.key === key);
  }
  return api("PUT", `${base}/items/${seg(key)}`, body, { ifMatch: revision, createOnly });
}

/** Delete an item at the revision shown. */
export async function deleteItem(base, item) {
  if (addressable(item.key)) {
    await api("DELETE", `${base}/items/${seg(item.key)}`, undefined, { ifMatch: item.revision });
  } else {
    await api("PATCH", `${base}/items`, { delete: [item.key] });
  }
}
