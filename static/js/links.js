// Hash addresses of the admin page's views (main.js resolves them).

import { seg } from "./api.js";

/** Href of an env's draft, or of one of its sections ("history"). */
export function envHref(app, env, section = "") {
  return `#/apps/${seg(app)}/${seg(env)}${section ? `/${section}` : ""}`;
}

/** Href of one release of an env. */
export function releaseHref(app, env, version) {
  return `${envHref(app, env)}/releases/${version}`;
}

/** Href of the comparison of two releases, from a to b. */
export function compareHref(app, env, a, b) {
  return `${envHref(app, env)}/compare/${a}/${b}`;
}
