// Writes of one draft item: by its URL, or by PATCH for the keys a URL cannot carry.

import { api, seg } from "../../api.js";

/** "." and ".." cannot be sent as URL path segments (browsers resolve them). */
function addressable(key) {
  return key !== "." && key !== "..";
}

/** Set an item (If-Match revision, or create only); resolves to the saved item. */
export async function putItem(base, key, value, comment, revision, createOnly = false) {
  if (!addressable(key)) {
    const result = await api("PATCH", `${base}/items`, { set: { [key]: value } });
    return result.items.find((i) => i.key === key);
  }
  return api(
    "PUT",
    `${base}/items/${seg(key)}`,
    { value, comment },
    { ifMatch: revision, createOnly },
  );
}

/** Delete an item at the revision shown. */
export async function deleteItem(base, item) {
  if (addressable(item.key)) {
    await api("DELETE", `${base}/items/${seg(item.key)}`, undefined, { ifMatch: item.revision });
  } else {
    await api("PATCH", `${base}/items`, { delete: [item.key] });
  }
}
