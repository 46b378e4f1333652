// The apps list (filter, create) and one app (envs, add env, delete).

import { ApiError, api, me, seg } from "../api.js";
import { h, plural, replace } from "../dom.js";
import { envHref } from "../links.js";
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
} from "../ui.js";

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
      actions: me.admin ? [newBtn] : [],
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
    card(`Envs (${info.envs.length})`, [], envList, me.may(app, "manage") ? addForm : null),
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
