// The apps list (filter, create) and one app (envs, add env, delete).

import { ApiError, api, me, seg } from "../api.js";
import { h, plural, replace, uid } from "../dom.js";
import { envHref } from "../links.js";
import {
  badge,
  busy,
  button,
  card,
  checkbox,
  confirmAction,
  dialogAlert,
  emptyState,
  field,
  flash,
  openDialog,
  pageHead,
  setAlert,
  setFieldError,
  showError,
} from "../ui.js";
import { anonymousReadWarning, clientsCard } from "./app-clients.js";

function splitEnvs(text) {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

function newAppForm(onCreated, onCancel) {
  const name = field("App name", {
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
    placeholder: "checkout-service",
    hint: "Lower-case letters, digits, and _ . - (up to 64).",
  });
  const description = field("Description", {
    maxlength: 1000,
    placeholder: "What this app is (optional)",
  });
  const envs = field("Envs", {
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "dev, staging, prod",
    hint: "Comma- or space-separated. Leave empty for one env named default.",
  });
  const submit = button("Create app", null, { kind: "primary", type: "submit" });
  const form = h(
    "form",
    { class: "form-grid", novalidate: true },
    name.wrap,
    envs.wrap,
    h("div", { class: "span-2" }, description.wrap),
    h("div", { class: "form-actions span-2" }, button("Cancel", onCancel), submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(name, "");
    setFieldError(envs, "");
    const body = {
      name: name.input.value.trim(),
      description: description.input.value.trim(),
      envs: splitEnvs(envs.input.value),
    };
    if (!body.name) {
      setFieldError(name, "Give the app a name.");
      name.input.focus();
      return;
    }
    try {
      const app = await busy(submit, () => api("POST", "/apps", body));
      onCreated(app);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const msg = error.message;
      if (/env name|env names|envs per app/.test(msg)) setFieldError(envs, msg);
      else if (/description/.test(msg)) setFieldError(description, msg);
      else if (error.code === "invalid_name" || error.code === "exists" || error.status === 403)
        setFieldError(name, msg);
      else showError(error, "Could not create the app");
    }
  });
  return { form, focus: () => name.input.focus() };
}

/** "3 added, 1 changed" of one env in an import answer. */
function envOutcome(outcome) {
  const parts = [];
  if (outcome.added.length) parts.push(`${outcome.added.length} added`);
  if (outcome.changed.length) parts.push(`${outcome.changed.length} changed`);
  return parts.length ? parts.join(", ") : "unchanged";
}

/** The outcome of an app import: per env, the keys added and changed. */
function importOutcome(answer) {
  const envs = Object.entries(answer.envs).sort(([a], [b]) => a.localeCompare(b));
  return h(
    "div",
    { class: "stack import-outcome", role: "status" },
    h("p", { class: "strong", text: `Imported ${answer.app}: ${plural(envs.length, "env")}.` }),
    h(
      "ul",
      { class: "import-envs" },
      envs.map(([env, outcome]) =>
        h(
          "li",
          { dataset: { env } },
          h("a", { href: envHref(answer.app, env), text: env }),
          `: ${envOutcome(outcome)}`,
          outcome.added.length || outcome.changed.length
            ? [
                " (",
                h("span", {
                  class: "import-keys",
                  text: [...outcome.added, ...outcome.changed].join(", "),
                }),
                ")",
              ]
            : null,
        ),
      ),
    ),
  );
}

/** Import an app from an export document (admin); resolves to true when something was imported. */
function importAppDialog() {
  return openDialog({
    title: "Import app",
    build(root, close) {
      let imported = false;
      const alert = dialogAlert();
      const fileId = uid("file");
      const fileInput = h("input", { id: fileId, type: "file", accept: ".json,application/json" });
      const modeName = uid("mode");
      const option = (value, label, hint, checked) => {
        const id = uid("m");
        return h(
          "div",
          { class: "check import-mode" },
          h("input", { id, type: "radio", name: modeName, value, checked }),
          h("label", { for: id, text: label }),
          h("p", { class: "hint", text: hint }),
        );
      };
      const result = h("div", {});
      const submit = button("Import", null, { kind: "primary", type: "submit" });
      const cancel = button("Cancel", () => close(imported));
      const form = h(
        "form",
        { class: "stack", novalidate: true },
        h("p", {
          class: "muted",
          text: "An export document (APP-export.json, from an app's page): its envs and every draft item.",
        }),
        h(
          "div",
          { class: "field" },
          h("label", { for: fileId, text: "Export document" }),
          h("div", { class: "import-file" }, fileInput),
        ),
        h(
          "fieldset",
          { class: "field import-modes" },
          h("legend", { text: "Mode" }),
          option("create", "Create", "A new app of the document's name.", true),
          option(
            "merge",
            "Merge",
            "Into the existing app: sets the document's items in each env's draft, creates missing envs, deletes nothing.",
            false,
          ),
        ),
        alert,
        result,
        h("div", { class: "dialog-actions" }, cancel, submit),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        setAlert(alert, "");
        replace(result);
        const file = fileInput.files?.[0];
        if (!file) {
          setAlert(alert, "Pick an export document first.");
          fileInput.focus();
          return;
        }
        const mode = form.querySelector(`input[name="${modeName}"]:checked`).value;
        try {
          const text = await file.text();
          const answer = await busy(submit, () =>
            api("POST", `/apps/import?mode=${mode}`, text, { contentType: "application/json" }),
          );
          imported = true;
          replace(result, importOutcome(answer));
          cancel.textContent = "Close";
          submit.hidden = true;
          flash(`Imported app ${answer.app}.`, "success");
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          const hint =
            error.code === "exists"
              ? " Choose Merge to import into it."
              : error.status === 404 && mode === "merge"
                ? " Choose Create to make it."
                : "";
          setAlert(
            alert,
            `${error.status === 413 ? "Too large to import: " : ""}${error.message}${hint}`,
          );
        }
      });
      root.append(form);
    },
  });
}

/** Download the export document of app: APP-export.json; secret values only when asked. */
async function downloadExport(app, includeSecrets) {
  const doc = await api(
    "GET",
    `/apps/${seg(app)}/export${includeSecrets ? "?secrets=include" : ""}`,
  );
  const blob = new Blob([`${JSON.stringify(doc, null, 2)}\n`], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: `${app}-export.json`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked later: the download reads the blob after the click returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The app page's export card (owner); an admin may include the secret values. */
function exportCard(app) {
  const include = me.admin
    ? checkbox("Include secret values", {
        hint: "Admins only. The file then holds every secret of the app in clear.",
      })
    : null;
  const warning = h("p", {
    class: "banner banner-warn",
    hidden: true,
    text: "The downloaded file will hold the secrets in clear: keep it as safe as the secrets themselves, and delete it when done.",
  });
  include?.input.addEventListener("change", () => {
    warning.hidden = !include.input.checked;
  });
  const exportBtn = button("Export", async () => {
    try {
      await busy(exportBtn, () => downloadExport(app, Boolean(include?.input.checked)));
    } catch (error) {
      showError(error, "Could not export");
    }
  });
  return h(
    "section",
    { class: "card export-card" },
    h("div", { class: "card-head" }, h("h2", { class: "card-title", text: "Export" })),
    h(
      "div",
      { class: "export-row" },
      h(
        "div",
        { class: "stack" },
        h("p", {
          class: "muted",
          text: `Every env's draft as one JSON document (${app}-export.json), to import elsewhere. Secret values are null unless included.`,
        }),
        include ? include.wrap : null,
        warning,
      ),
      exportBtn,
    ),
  );
}

/** #/apps */
export async function appsView(main) {
  const data = await api("GET", "/apps");
  const apps = data.apps.slice().sort((a, b) => a.name.localeCompare(b.name));

  const filter = field("Filter apps", {
    type: "search",
    placeholder: "Name, description or env",
    autocomplete: "off",
    spellcheck: "false",
  });
  filter.wrap.classList.add("field-inline");
  const newPanel = h("div", { class: "card card-form", hidden: true });
  const listWrap = h("div", {});

  const openNew = () => {
    const { form, focus } = newAppForm(
      (app) => {
        flash(
          `App ${app.name} created with ${plural(app.envs.length, "env")}: ${app.envs.join(", ")}.`,
          "success",
        );
        window.location.hash = envHref(app.name, app.envs[0]);
      },
      () => {
        newPanel.hidden = true;
        newBtn.focus();
      },
    );
    replace(newPanel, h("h2", { class: "card-title", text: "New app" }), form);
    newPanel.hidden = false;
    focus();
  };
  const newBtn = button("New app", openNew, { kind: "primary" });

  const render = () => {
    const q = filter.input.value.trim().toLowerCase();
    const shown = apps.filter(
      (a) =>
        !q ||
        a.name.includes(q) ||
        (a.description || "").toLowerCase().includes(q) ||
        a.envs.some((e) => e.includes(q)),
    );
    if (!apps.length) {
      replace(
        listWrap,
        emptyState(
          "No apps yet",
          "An app holds the configuration of one service, with an env per stage (dev, staging, prod). Create the first one to start adding items.",
          me.admin ? button("New app", openNew, { kind: "primary" }) : null,
        ),
      );
      return;
    }
    if (!shown.length) {
      replace(
        listWrap,
        emptyState(
          `No app matches “${filter.input.value.trim()}”`,
          "Check the spelling, or clear the filter to see every app.",
          button("Clear filter", () => {
            filter.input.value = "";
            render();
            filter.input.focus();
          }),
        ),
      );
      return;
    }
    replace(
      listWrap,
      h(
        "ul",
        { class: "app-grid", "aria-label": "Apps" },
        shown.map((a) =>
          h(
            "li",
            { class: "app-card" },
            h(
              "div",
              { class: "app-card-head" },
              h("a", { class: "app-name", href: envHref(a.name, a.envs[0]), text: a.name }),
              a.anonymous_read
                ? badge("anonymous read", "warn", {
                    title: "Read without a credential through the Apollo, Spring and Nacos APIs",
                  })
                : null,
              h("a", {
                class: "btn btn-ghost btn-small",
                href: `#/apps/${seg(a.name)}`,
                text: "Settings",
                "aria-label": `Settings of ${a.name}`,
              }),
            ),
            h("p", {
              class: a.description ? "app-desc" : "app-desc muted",
              text: a.description || "No description",
            }),
            h(
              "div",
              { class: "env-chips", "aria-label": `Envs of ${a.name}` },
              a.envs.map((e) => h("a", { class: "chip", href: envHref(a.name, e), text: e })),
            ),
          ),
        ),
      ),
    );
  };
  filter.input.addEventListener("input", render);

  replace(
    main,
    pageHead({
      title: "Apps",
      subtitle: apps.length
        ? `${plural(apps.length, "app")} you can see. Pick an env to edit its draft.`
        : null,
      actions: me.admin
        ? [
            button("Import app", async () => {
              if (await importAppDialog()) await appsView(main);
            }),
            newBtn,
          ]
        : [],
    }),
    newPanel,
    apps.length ? h("div", { class: "toolbar" }, filter.wrap) : null,
    listWrap,
  );
  render();
}

/** #/apps/APP */
export async function appView(main, { app }) {
  const info = await api("GET", `/apps/${seg(app)}`);

  const envName = field("New env name", {
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
    placeholder: "staging",
  });
  const addBtn = button("Add env", null, { kind: "primary", type: "submit" });
  const addForm = h("form", { class: "inline-form", novalidate: true }, envName.wrap, addBtn);
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(envName, "");
    const name = envName.input.value.trim();
    if (!name) {
      setFieldError(envName, "Type a name for the env.");
      envName.input.focus();
      return;
    }
    try {
      await busy(addBtn, () => api("POST", `/apps/${seg(app)}/envs`, { name }));
      flash(`Env ${name} added to ${app}.`, "success");
      await appView(main, { app });
    } catch (error) {
      setFieldError(envName, error.message);
    }
  });

  const envList = h(
    "ul",
    { class: "env-list" },
    info.envs.map((e) =>
      h(
        "li",
        {},
        h("a", { class: "env-link", href: envHref(app, e), text: e }),
        h(
          "span",
          { class: "env-links" },
          h("a", { href: envHref(app, e), text: "Draft" }),
          h("a", { href: envHref(app, e, "history"), text: "History" }),
        ),
      ),
    ),
  );

  const deleteApp = () =>
    confirmAction({
      title: `Delete app ${app}?`,
      body: h(
        "div",
        { class: "stack" },
        h(
          "p",
          {},
          "This deletes ",
          h("strong", { text: app }),
          `, its ${plural(info.envs.length, "env")}, every draft and every release. Clients reading it get 404 from now on. It cannot be undone.`,
        ),
      ),
      confirmText: "Delete",
      danger: true,
      typed: app,
      action: async () => {
        await api("DELETE", `/apps/${seg(app)}`);
      },
    }).then((ok) => {
      if (ok) {
        flash(`App ${app} deleted.`, "success");
        window.location.hash = "#/apps";
      }
    });

  replace(
    main,
    pageHead({
      crumbs: [
        ["Apps", "#/apps"],
        [app, null],
      ],
      title: app,
      subtitle: info.description || "No description.",
      extra: badge(`created ${new Date(info.created_at).toLocaleDateString()}`, "muted"),
    }),
    anonymousReadWarning(info),
    card(`Envs (${info.envs.length})`, [], envList, me.may(app, "manage") ? addForm : null),
    clientsCard(app, info, () => appView(main, { app })),
    me.may(app, "manage") ? exportCard(app) : null,
    me.admin
      ? h(
          "section",
          { class: "card card-danger" },
          h("div", { class: "card-head" }, h("h2", { class: "card-title", text: "Danger zone" })),
          h(
            "div",
            { class: "danger-row" },
            h(
              "div",
              {},
              h("p", { class: "strong", text: "Delete this app" }),
              h("p", {
                class: "muted",
                text: "Removes every env, draft and release. You will be asked to type the app name.",
              }),
            ),
            button("Delete app", deleteApp, { kind: "danger" }),
          ),
        )
      : null,
  );
}
