// One app's "Existing clients" card: how Apollo, Spring Cloud Config and Nacos clients
// read it, and its anonymous read (a warning while on; owners turn it on and off).

import { api, me, seg } from "../api.js";
import { h } from "../dom.js";
import { badge, button, card, confirmAction, flash } from "../ui.js";

const ANONYMOUS_WARNING =
  "Anonymous read is on: anyone who can reach this server reads this app's config through the Apollo, Spring Cloud Config and Nacos APIs, without a credential (never its secret items).";

/** The banner shown at the top of an app's page while its anonymous read is on. */
export function anonymousReadWarning(info) {
  if (!info.anonymous_read) return null;
  return h(
    "p",
    { class: "banner banner-warn", role: "status", "data-testid": "anonymous-read-warning" },
    h("span", { class: "banner-text", text: ANONYMOUS_WARNING }),
  );
}

/** The card; `reload` redraws the app's page after a change. */
export function clientsCard(app, info, reload) {
  const owner = me.may(app, "manage");
  const turnOn = () =>
    confirmAction({
      title: `Let clients read ${app} without a credential?`,
      body: h(
        "div",
        { class: "stack" },
        h("p", {
          text: "Apollo, Spring Cloud Config and Nacos clients that send no credential will read every env of this app. Its secret items are never sent to them. The change is audited.",
        }),
        h("p", {
          class: "muted",
          text: "Prefer a read token per service: anyone who can reach the server can read an app with anonymous read.",
        }),
      ),
      confirmText: "Turn on anonymous read",
      danger: true,
      action: () => api("PATCH", `/apps/${seg(app)}`, { anonymous_read: true }),
    }).then((done) => {
      if (done) {
        flash(`Anonymous read of ${app} is on.`, "success");
        reload();
      }
    });
  const turnOff = () =>
    confirmAction({
      title: `Require a credential to read ${app}?`,
      body: h("p", {
        text: "Clients that send no credential get the protocol's 401 or 403 from now on.",
      }),
      confirmText: "Require a credential",
      action: () => api("PATCH", `/apps/${seg(app)}`, { anonymous_read: false }),
    }).then((done) => {
      if (done) {
        flash(`${app} needs a credential again.`, "success");
        reload();
      }
    });
  const state = info.anonymous_read
    ? badge("anonymous read on", "warn", { "data-testid": "anonymous-read-state" })
    : badge("credential required", "ok", { "data-testid": "anonymous-read-state" });
  const toggle = !owner
    ? null
    : info.anonymous_read
      ? button("Require a credential", turnOff)
      : button("Allow anonymous read…", turnOn, { kind: "danger" });
  return card(
    "Existing clients",
    [],
    h(
      "div",
      { class: "danger-row" },
      h(
        "div",
        {},
        h("p", {}, "Apollo, Spring Cloud Config and Nacos clients: ", state),
        h("p", {
          class: "muted",
          text: "They read with an API token that has read access to this app (see docs/compat.md for each client's settings).",
        }),
      ),
      toggle,
    ),
  );
}
