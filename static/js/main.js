// The admin page: hash routing between views. Views build the DOM from data as text nodes.

import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";
import "./session.js";
import { clearAlerts, emptyState, pageHead, showError } from "./ui.js";
import { accountView } from "./views/account.js";
import { appsView, appView } from "./views/apps.js";
import { auditView } from "./views/audit.js";
import { clusterView } from "./views/cluster.js";
import { envView } from "./views/env.js";
import { tokensView } from "./views/tokens.js";
import { usersView } from "./views/users.js";

const main = document.getElementById("main");
let cleanup = null;
let generation = 0;
let firstRender = true;

/** Parse "#/a/b?x=1" into { parts: ["a", "b"], query: { x: "1" } }. */
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = ["?"];
  }
  return { parts, query: Object.fromEntries(new URLSearchParams(search)) };
}

const isVersion = (text) => /^\d+$/.test(text || "");

/**
 * #/apps/APP/ENV[/history | /releases/V | /compare/A/B | /instances | /requests | /settings]: a section of
 * the env view.
 */
function resolveEnv(app, env, [section, a, b]) {
  const at = (params, title) => ({
    view: envView,
    params: { app, env, ...params },
    nav: "apps",
    title: `${title}${app}/${env}`,
  });
  if (!section) return at({ section: "draft" }, "");
  if (section === "history" && !a) return at({ section: "history" }, "History · ");
  if (section === "instances" && !a) return at({ section: "instances" }, "Instances · ");
  if (section === "requests" && !a) return at({ section: "requests" }, "Requests · ");
  if (section === "settings" && !a) return at({ section: "settings" }, "Settings · ");
  if (section === "releases" && isVersion(a) && !b)
    return at({ section: "release", a }, `v${a} · `);
  if (section === "compare" && isVersion(a) && isVersion(b)) {
    return at({ section: "compare", a, b }, `v${a} → v${b} · `);
  }
  return null;
}

/** The view of an address, its params, the nav link it belongs to and the page title. */
function resolve({ parts, query }) {
  const [first, ...rest] = parts;
  if (!first || (first === "apps" && rest.length === 0)) {
    return { view: appsView, nav: "apps", title: "Apps" };
  }
  if (first === "apps") {
    const [app, env, ...more] = rest;
    if (!env) return { view: appView, params: { app }, nav: "apps", title: app };
    return resolveEnv(app, env, more);
  }
  if (rest.length) return null;
  if (first === "audit")
    return { view: auditView, params: query, nav: "audit", title: "Audit log" };
  if (first === "tokens") return { view: tokensView, nav: "tokens", title: "Tokens" };
  if (first === "cluster") return { view: clusterView, nav: "cluster", title: "Cluster" };
  if (first === "users") return { view: usersView, nav: "users", title: "Users" };
  if (first === "account") return { view: accountView, nav: "account", title: "Your account" };
  return null;
}

function notFound(message) {
  replace(
    main,
    pageHead({ title: "Not found" }),
    emptyState(
      message || "There is nothing at this address.",
      "It may have been deleted, or the link is mistyped.",
      h("a", { class: "btn btn-primary", href: "#/apps", text: "Go to apps" }),
    ),
  );
}

async function route() {
  generation += 1;
  const mine = generation;
  if (cleanup) {
    try {
      cleanup();
    } catch (error) {
      console.error(error);
    }
    cleanup = null;
  }
  clearAlerts();
  const target = resolve(parseHash());
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (target && link.dataset.nav === target.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = target ? `${target.title} · configcenter` : "Not found · configcenter";
  if (!target) {
    notFound();
    return;
  }
  main.setAttribute("aria-busy", "true");
  try {
    const done = await target.view(main, target.params || {});
    if (mine !== generation) {
      if (typeof done === "function") done();
      return;
    }
    cleanup = typeof done === "function" ? done : null;
    if (!firstRender) {
      const heading = main.querySelector("h1");
      if (heading) heading.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof ApiError && error.status === 404)
      notFound(`${error.message.replace(/^./, (c) => c.toUpperCase())}.`);
    else if (error instanceof ApiError && error.status === 401) return;
    else if (error instanceof ApiError && error.status === 403) {
      replace(
        main,
        pageHead({ title: "No access" }),
        emptyState(
          "Your account may not open this page.",
          "Ask an admin for a role on this app (viewer, editor, publisher or owner), or go back to the apps you can see.",
          h("a", { class: "btn btn-primary", href: "#/apps", text: "Go to apps" }),
        ),
      );
      showError(error);
    } else {
      replace(
        main,
        pageHead({ title: "Something went wrong" }),
        emptyState(
          "This page could not be loaded.",
          "Try again in a moment.",
          h("button", {
            type: "button",
            class: "btn btn-primary",
            text: "Try again",
            onclick: route,
          }),
        ),
      );
      showError(error);
    }
  } finally {
    if (mine === generation) main.removeAttribute("aria-busy");
    firstRender = false;
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => {
  const error = event.reason;
  if (error instanceof ApiError && error.status === 401) return;
  showError(error);
});
route();
