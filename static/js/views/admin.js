// Admin pages: the audit log, API tokens, the cluster.

import { ApiError, api, me } from "../api.js";
import { exactTime, h, replace, timeEl } from "../dom.js";
import {
  badge,
  busy,
  button,
  card,
  confirmAction,
  emptyState,
  field,
  flash,
  pageHead,
  setFieldError,
  showError,
  table,
} from "../ui.js";

const AUDIT_PAGE = 100;

function needsAdmin(main, what) {
  replace(
    main,
    pageHead({ title: what }),
    emptyState(
      "Admins only",
      `The ${what.toLowerCase()} needs the admin scope. Ask an admin for access.`,
      h("a", { class: "btn", href: "#/apps", text: "Back to apps" }),
    ),
  );
}

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
        ? h(
            "div",
            { class: "load-more" },
            button("Load older entries", async (event) => {
              const older = (
                await busy(event.currentTarget, () =>
                  api("GET", query(entries[entries.length - 1].id)),
                )
              ).entries;
              more = older.length === AUDIT_PAGE;
              entries = entries.concat(older);
              render();
            }),
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

/** #/tokens */
export async function tokensView(main) {
  if (!me.admin) return needsAdmin(main, "Tokens");
  let tokens = (await api("GET", "/tokens")).tokens;

  const name = field("Token name", {
    placeholder: "ci-deploy",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
  });
  const scopes = field("Scopes", {
    placeholder: "read:checkout write:checkout",
    autocomplete: "off",
    spellcheck: "false",
    hint: "Space-separated: admin, read:APP (read and watch), write:APP (edit, publish, roll back).",
  });
  const create = button("Create token", null, { kind: "primary", type: "submit" });
  const secretBox = h("div", {});
  const form = h(
    "form",
    { class: "form-grid", novalidate: true },
    name.wrap,
    scopes.wrap,
    h("div", { class: "form-actions span-2" }, create),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(name, "");
    setFieldError(scopes, "");
    const body = {
      name: name.input.value.trim(),
      scopes: scopes.input.value.split(/[\s,]+/).filter(Boolean),
    };
    try {
      const created = await busy(create, () => api("POST", "/tokens", body));
      name.input.value = "";
      scopes.input.value = "";
      showSecret(created);
      tokens = (await api("GET", "/tokens")).tokens;
      render();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.code === "invalid_scope") setFieldError(scopes, error.message);
      else if (error.status === 400 || error.status === 409) setFieldError(name, error.message);
      else showError(error, "Could not create the token");
    }
  });

  function showSecret(created) {
    const secret = field(`Secret of ${created.name}`, {
      value: created.token,
      readonly: true,
      class: "mono",
      spellcheck: "false",
    });
    const copied = h("span", { class: "copied", role: "status" });
    const copy = button(
      "Copy",
      async () => {
        secret.input.select();
        let done = false;
        try {
          await navigator.clipboard.writeText(created.token);
          done = true;
        } catch {
          // No clipboard API (permission, insecure origin): copy the selection instead.
          done = document.execCommand("copy");
        }
        copied.textContent = done ? "Copied." : "Selected: press Ctrl+C to copy.";
      },
      { kind: "primary" },
    );
    replace(
      secretBox,
      h(
        "div",
        { class: "secret-panel" },
        h("p", {
          class: "strong",
          text: `Token ${created.name} created. Copy the secret now: it is shown once and stored only as a hash.`,
        }),
        h("div", { class: "secret-row" }, secret.wrap, copy, copied),
        button("Done", () => replace(secretBox), { small: true }),
      ),
    );
    secret.input.focus();
    secret.input.select();
  }

  const listBox = h("div", {});
  const listTitle = h("h2", { class: "card-title" });
  const render = () => {
    listTitle.textContent = `API tokens (${tokens.filter((t) => !t.revoked_at).length} active)`;
    if (!tokens.length) {
      replace(
        listBox,
        emptyState(
          "No API tokens yet",
          "Create one for each service or pipeline that reads or changes config, with the narrowest scopes it needs.",
        ),
      );
      return;
    }
    const sorted = tokens
      .slice()
      .sort((a, b) => (a.revoked_at ? 1 : 0) - (b.revoked_at ? 1 : 0) || b.id - a.id);
    replace(
      listBox,
      table(
        [
          { label: "Name", cell: (t) => h("strong", { text: t.name }) },
          {
            label: "Scopes",
            cell: (t) =>
              h(
                "span",
                { class: "chips" },
                t.scopes.map((s) => h("code", { class: "chip chip-static", text: s })),
              ),
          },
          { label: "Created by", cell: (t) => h("span", { text: t.owner }) },
          { label: "Created", cell: (t) => timeEl(t.created_at) },
          {
            label: "Status",
            cell: (t) =>
              t.revoked_at
                ? h("span", {}, badge("revoked", "danger"), " ", timeEl(t.revoked_at))
                : badge("active", "ok"),
          },
          {
            label: "Actions",
            cls: "col-actions",
            cell: (t) =>
              t.revoked_at
                ? h("span", { class: "muted", text: "—" })
                : button("Revoke", () => revoke(t), {
                    small: true,
                    kind: "ghost-danger",
                    "aria-label": `Revoke ${t.name}`,
                  }),
          },
        ],
        sorted,
        { caption: "API tokens", rowAttrs: (t) => ({ class: t.revoked_at ? "row-muted" : null }) },
      ),
    );
  };

  async function revoke(token) {
    const ok = await confirmAction({
      title: `Revoke ${token.name}?`,
      body: h("p", {
        text: `Every replica refuses ${token.name} from now on, and its open WebSockets are closed. Services using it stop getting config updates.`,
      }),
      confirmText: "Revoke",
      danger: true,
      action: async () => {
        await api("DELETE", `/tokens/${token.id}`);
      },
    });
    if (ok) {
      flash(`Token ${token.name} revoked.`, "success");
      tokens = (await api("GET", "/tokens")).tokens;
      render();
    }
  }

  render();
  replace(
    main,
    pageHead({
      title: "Tokens",
      subtitle:
        "API tokens for services, scripts and pipelines. Operators sign in with a password instead.",
    }),
    card("New token", [], form, secretBox),
    h("section", { class: "card" }, h("div", { class: "card-head" }, listTitle), listBox),
  );
}

function label(key) {
  const text = key.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function cellValue(key, value) {
  if (value === null || value === undefined || value === "")
    return h("span", { class: "muted", text: "—" });
  if (typeof value === "boolean")
    return value ? badge("yes", "ok") : h("span", { class: "muted", text: "no" });
  if (
    /_at$|^since$|^started/.test(key) &&
    (typeof value === "number" || typeof value === "string")
  ) {
    const el = timeEl(value);
    el.title = exactTime(value);
    return el;
  }
  if (Array.isArray(value)) return h("span", { text: value.join(", ") });
  if (typeof value === "object") return h("code", { text: JSON.stringify(value) });
  return h("span", { text: String(value) });
}

/** A table of objects whose fields are not fixed (they depend on the coordinator). */
function objectTable(rows, caption, extra = []) {
  const keys = [];
  for (const row of rows)
    for (const key of Object.keys(row)) if (!keys.includes(key)) keys.push(key);
  return table(
    keys
      .map((key) => ({ label: label(key), cell: (row) => cellValue(key, row[key]) }))
      .concat(extra),
    rows,
    { caption },
  );
}

/** #/cluster */
export async function clusterView(main) {
  if (!me.admin) return needsAdmin(main, "Cluster");
  const box = h("div", {});
  const load = async () => {
    const info = await api("GET", "/cluster");
    const standalone = info.mode === "standalone";
    const replicas = (info.replicas || []).map((r) => r);
    const subscribers = (r) => {
      if (typeof r.subscribers === "number") return String(r.subscribers);
      if (r.self) return String(info.subscribers ?? 0);
      return "—";
    };
    const members = info.etcd_members || [];
    const holders = info.lock_holders || [];
    const known = new Set(["mode", "replicas", "etcd_members", "lock_holders", "subscribers"]);
    const other = Object.entries(info).filter(([k]) => !known.has(k));
    replace(
      box,
      standalone
        ? h(
            "div",
            { class: "banner banner-info" },
            h(
              "div",
              { class: "banner-text" },
              h("strong", { text: "Standalone mode." }),
              " This server runs alone, without etcd: publishes are delivered by this process only. Set [etcd] endpoints (or CONFIGCENTER_ETCD_ENDPOINTS) on every replica to run a cluster.",
            ),
          )
        : null,
      h(
        "div",
        { class: "stats" },
        h(
          "div",
          { class: "stat" },
          h("span", { class: "stat-label", text: "Mode" }),
          h("span", { class: "stat-value", text: standalone ? "Standalone" : "Cluster" }),
        ),
        h(
          "div",
          { class: "stat" },
          h("span", { class: "stat-label", text: "Replicas" }),
          h("span", { class: "stat-value", text: String(replicas.length) }),
        ),
        h(
          "div",
          { class: "stat" },
          h("span", { class: "stat-label", text: "etcd members" }),
          h("span", { class: "stat-value", text: standalone ? "—" : String(members.length) }),
        ),
        h(
          "div",
          { class: "stat" },
          h("span", { class: "stat-label", text: "Subscribers here" }),
          h("span", { class: "stat-value", text: String(info.subscribers ?? 0) }),
        ),
      ),
      card(
        `Replicas (${replicas.length})`,
        [],
        replicas.length
          ? objectTable(
              replicas.map(({ subscribers: _s, ...rest }) => rest),
              "Replicas",
              [
                {
                  label: "Subscribers",
                  cell: (r) =>
                    h("span", { text: subscribers(replicas.find((x) => x.id === r.id) || r) }),
                },
              ],
            )
          : emptyState(
              "No replicas registered",
              "Replicas register themselves in etcd when they start.",
            ),
      ),
      card(
        "etcd members",
        [],
        standalone
          ? emptyState(
              "No etcd in standalone mode",
              "Point every replica at the same etcd cluster to share locks and deliver publishes everywhere.",
            )
          : members.length
            ? objectTable(members, "etcd members")
            : emptyState(
                "No etcd member answers",
                "Check that etcd is running and reachable from this replica.",
              ),
      ),
      card(
        "Publish locks held now",
        [],
        holders.length
          ? objectTable(holders, "Publish locks")
          : emptyState(
              "No publish in progress",
              "A lock is held for an env only while it is being published.",
            ),
      ),
      other.length
        ? card("Other details", [], objectTable([Object.fromEntries(other)], "Other details"))
        : null,
    );
  };
  const refresh = button("Refresh", async (event) => {
    try {
      await busy(event.currentTarget, load);
    } catch (error) {
      showError(error, "Could not load the cluster");
    }
  });
  await load();
  replace(
    main,
    pageHead({
      title: "Cluster",
      subtitle: "Replicas, etcd members and subscribers, as this replica sees them.",
      actions: [refresh],
    }),
    box,
  );
}
