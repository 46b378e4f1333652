// The audit log: who changed what and when, newest first, filtered by app.

import { api, me } from "../api.js";
import { h, replace, timeEl } from "../dom.js";
import {
  badge,
  button,
  card,
  emptyState,
  field,
  loadMore,
  needsAdmin,
  pageHead,
  table,
} from "../ui.js";

const AUDIT_PAGE = 100;

/** #/audit */
export async function auditView(main, params) {
  if (!me.admin) return needsAdmin(main, "Audit log");
  const appFilter = params.app || "";
  const query = (before) => {
    const q = new URLSearchParams({ limit: String(AUDIT_PAGE) });
    if (appFilter) q.set("app", appFilter);
    if (before) q.set("before", String(before));
    return `/audit?${q}`;
  };
  let entries = (await api("GET", query())).entries;
  let more = entries.length === AUDIT_PAGE;

  const filter = field("App", {
    value: appFilter,
    placeholder: "All apps",
    autocomplete: "off",
    spellcheck: "false",
  });
  filter.wrap.classList.add("field-inline");
  const form = h(
    "form",
    { class: "inline-form", novalidate: true },
    filter.wrap,
    button("Apply", null, { type: "submit" }),
    appFilter ? h("a", { class: "btn btn-ghost", href: "#/audit", text: "Clear" }) : null,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = filter.input.value.trim();
    window.location.hash = value ? `#/audit?app=${encodeURIComponent(value)}` : "#/audit";
  });
  const listBox = h("div", {});

  const render = () => {
    if (!entries.length) {
      replace(
        listBox,
        emptyState(
          appFilter ? `Nothing recorded for ${appFilter}` : "Nothing recorded yet",
          "Every change to apps, drafts, releases and tokens is listed here, newest first.",
        ),
      );
      return;
    }
    replace(
      listBox,
      table(
        [
          { label: "When", cls: "col-time", cell: (e) => timeEl(e.at) },
          { label: "Who", cell: (e) => h("span", { class: "editor", text: e.actor }) },
          {
            label: "Action",
            cell: (e) =>
              badge(
                e.action,
                e.action.endsWith("delete") || e.action.endsWith("revoke")
                  ? "danger"
                  : e.action.startsWith("release")
                    ? "ok"
                    : "muted",
              ),
          },
          { label: "Target", cell: (e) => h("code", { class: "key", text: e.target }) },
          { label: "Summary", cell: (e) => h("span", { text: e.summary }) },
        ],
        entries,
        { caption: "Audit log" },
      ),
      more
        ? loadMore(
            "Load older entries",
            () => api("GET", query(entries[entries.length - 1].id)),
            ({ entries: older }) => {
              more = older.length === AUDIT_PAGE;
              entries = entries.concat(older);
              render();
            },
          )
        : null,
    );
  };
  render();
  replace(
    main,
    pageHead({ title: "Audit log", subtitle: "Who changed what, and when. Newest first." }),
    card(null, [form], listBox),
  );
}
