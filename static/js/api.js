// The JSON API under /api/v1 with the session cookie; unsafe methods carry the CSRF token.

const meta = document.querySelector('meta[name="csrf-token"]');
// Replaced when the user signs in again in another tab: the token belongs to the session.
let csrfToken = meta ? meta.getAttribute("content") : "";
const sessionEndedListeners = new Set();

/** Run listener() when an API call answers 401 (the session ended elsewhere). */
export function onSessionEnded(listener) {
  sessionEndedListeners.add(listener);
  return () => sessionEndedListeners.delete(listener);
}

/** Use the CSRF token of a new session (signed in again in another tab). */
export function setCsrfToken(token) {
  csrfToken = token;
}

/** A failed API call: HTTP status, the envelope's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Path segment encoding for app, env and item key names. */
export const seg = encodeURIComponent;

/** "/apps/A/envs/E". */
export function envPath(app, env) {
  return `/apps/${seg(app)}/envs/${seg(env)}`;
}

/**
 * Call the API; resolves to the parsed JSON body (null when empty), rejects with ApiError.
 * A 401 means the session ended: the listeners are told (the page stays, with what the user
 * typed) and the call rejects. With contentType, body is text sent as it is (a file).
 */
export async function api(method, path, body, { ifMatch, createOnly, contentType } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  if (ifMatch !== undefined && ifMatch !== null) headers["If-Match"] = `"${ifMatch}"`;
  if (createOnly) headers["If-None-Match"] = "*";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined || contentType ? body : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(
      0,
      "network",
      "The server cannot be reached. Check the connection and try again.",
    );
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.status === 401) {
    for (const listener of sessionEndedListeners) listener();
    throw new ApiError(401, "unauthorized", "Your session has ended. Sign in again.");
  }
  if (!response.ok) {
    const error = data?.error || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `${response.status} ${response.statusText}`,
    );
  }
  return data;
}

/** The signed-in operator, from the page shell. */
export const me = {
  name: document.body.dataset.user || "",
  sessionId: Number(document.body.dataset.session) || null,
  admin: document.body.dataset.admin === "true",
  mode: document.body.dataset.mode || "standalone",
  roles: JSON.parse(document.body.dataset.roles || "{}"),
  rolePermissions: JSON.parse(document.body.dataset.rolePermissions || "{}"),
  /** True when the user has permission (view, edit, publish, see_secrets, manage) on app. */
  may(app, permission) {
    if (this.admin) return true;
    const role = this.roles[app] || this.roles["*"];
    return Boolean(role && (this.rolePermissions[role] || []).includes(permission));
  },
  canWrite(app) {
    return this.may(app, "edit");
  },
};
