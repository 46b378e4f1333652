// Users (admins only): the list, creating one with roles per app, changing roles, disabling
// and enabling, resetting a password, deleting.

import { ApiError, api, me, seg } from "../api.js";
import { h, replace, timeEl, uid } from "../dom.js";
import {
  badge,
  busy,
  button,
  confirmAction,
  dialogActions,
  dialogAlert,
  emptyState,
  field,
  flash,
  needsAdmin,
  openDialog,
  pageHead,
  setAlert,
  setFieldError,
  showError,
  table,
} from "../ui.js";

const ROLES = ["viewer", "editor", "publisher", "owner"];
const ANY_APP = "*";

function appLabel(app) {
  return app === ANY_APP ? "every app" : app;
}

/** A labelled checkbox; returns { wrap, input }. */
function checkbox(label, { checked = false, hint } = {}) {
  const id = uid("c");
  const input = h("input", { id, type: "checkbox", checked });
  const wrap = h(
    "div",
    { class: "check" },
    input,
    h("label", { for: id, text: label }),
    hint ? h("p", { class: "hint", text: hint }) : null,
  );
  return { wrap, input };
}

/**
 * The roles of one user as editable rows (app, role, remove) plus "Add role". apps: the app
 * names to choose from. value() gives {APP: ROLE}.
 */
function rolesEditor(apps, initial) {
  const rows = h("ul", { class: "role-rows", "aria-label": "Roles" });
  const error = h("p", { class: "field-error", hidden: true });
  const choices = [ANY_APP, ...apps.filter((a) => a !== ANY_APP)];

  function addRow(app, role) {
    const appId = uid("role-app");
    const roleId = uid("role");
    const appSelect = h(
      "select",
      { id: appId, class: "role-app" },
      choices.map((a) => h("option", { value: a, text: appLabel(a), selected: a === app })),
    );
    if (app && !choices.includes(app)) {
      // A role on an app that was deleted since: still shown, so that saving keeps or drops it
      // knowingly.
      appSelect.append(h("option", { value: app, text: app, selected: true }));
    }
    appSelect.value = app || choices[0];
    const roleSelect = h(
      "select",
      { id: roleId, class: "role-name" },
      ROLES.map((r) => h("option", { value: r, text: r })),
    );
    roleSelect.value = role || "viewer";
    const line = h(
      "li",
      { class: "role-row" },
      h("label", { for: appId, class: "sr-only", text: "App" }),
      appSelect,
      h("label", { for: roleId, class: "sr-only", text: "Role" }),
      roleSelect,
      button("Remove", () => line.remove(), { small: true, kind: "ghost-danger" }),
    );
    rows.append(line);
    return appSelect;
  }

  for (const [app, role] of Object.entries(initial || {})) addRow(app, role);
  const add = button("Add role", () => addRow(null, "viewer").focus(), { small: true });
  const wrap = h(
    "fieldset",
    { class: "field roles-field" },
    h("legend", { text: "Roles per app" }),
    h("p", {
      class: "hint",
      text: "viewer reads; editor edits drafts; publisher publishes and sees secrets; owner also manages envs. “every app” applies where no app-specific role is set.",
    }),
    rows,
    add,
    error,
  );

  return {
    wrap,
    /** {APP: ROLE}; a second row for the same app is an error shown under the rows. */
    value() {
      const roles = {};
      for (const line of rows.querySelectorAll(".role-row")) {
        const app = line.querySelector(".role-app").value;
        if (app in roles) throw new Error(`${appLabel(app)} has two roles; keep one.`);
        roles[app] = line.querySelector(".role-name").value;
      }
      return roles;
    },
    setError(message) {
      error.textContent = message || "";
      error.hidden = !message;
    },
  };
}

function rolesCell(user) {
  const entries = Object.entries(user.roles || {});
  if (user.admin) return h("span", { class: "muted", text: "admin: everything" });
  if (!entries.length) return h("span", { class: "muted", text: "no roles" });
  return h(
    "ul",
    { class: "chips role-chips" },
    entries.map(([app, role]) =>
      h("li", { class: "chip chip-static" }, h("span", { text: appLabel(app) }), `: ${role}`),
    ),
  );
}

function newUserForm(apps, { onCreated, onCancel }) {
  const name = field("User name", {
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
    placeholder: "alice",
    hint: "Lower-case letters, digits, and _ . - (up to 64).",
  });
  const password = field("Password", {
    type: "password",
    autocomplete: "new-password",
    maxlength: 1024,
    hint: "10 characters or more. Tell the user in person; they can change it on their account page.",
  });
  const admin = checkbox("Admin", { hint: "Admins may do everything, on every app." });
  const roles = rolesEditor(apps, {});
  const alert = dialogAlert();
  const submit = button("Create user", null, { kind: "primary", type: "submit" });
  const form = h(
    "form",
    { class: "form-grid", novalidate: true, "aria-label": "New user" },
    name.wrap,
    password.wrap,
    h("div", { class: "span-2" }, admin.wrap),
    h("div", { class: "span-2" }, roles.wrap),
    h("div", { class: "span-2" }, alert),
    h("div", { class: "form-actions span-2" }, button("Cancel", onCancel), submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(name, "");
    setFieldError(password, "");
    roles.setError("");
    setAlert(alert, "");
    const body = {
      name: name.input.value.trim(),
      password: password.input.value,
      admin: admin.input.checked,
    };
    if (!body.name) {
      setFieldError(name, "Give the user a name.");
      name.input.focus();
      return;
    }
    try {
      body.roles = roles.value();
    } catch (error) {
      roles.setError(error.message);
      return;
    }
    try {
      const user = await busy(submit, () => api("POST", "/users", body));
      onCreated(user);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.code === "invalid_password") setFieldError(password, error.message);
      else if (error.code === "invalid_role") roles.setError(error.message);
      else if (error.code === "invalid_name" || error.code === "exists")
        setFieldError(name, error.message);
      else setAlert(alert, error.message);
    }
  });
  return { form, focus: () => name.input.focus() };
}

function editRolesDialog(user, apps) {
  return openDialog({
    title: `Roles of ${user.name}`,
    wide: true,
    build(root, close) {
      const admin = checkbox("Admin", {
        checked: user.admin,
        hint: "Admins may do everything, on every app.",
      });
      const roles = rolesEditor(apps, user.roles);
      const alert = dialogAlert();
      const save = button("Save roles", null, { kind: "primary", type: "submit" });
      const form = h(
        "form",
        { class: "stack", novalidate: true },
        admin.wrap,
        roles.wrap,
        alert,
        dialogActions(close, save),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        roles.setError("");
        setAlert(alert, "");
        let body;
        try {
          body = { admin: admin.input.checked, roles: roles.value() };
        } catch (error) {
          roles.setError(error.message);
          return;
        }
        try {
          close(await busy(save, () => api("PATCH", `/users/${seg(user.name)}`, body)));
        } catch (error) {
          if (error instanceof ApiError && error.code === "invalid_role")
            roles.setError(error.message);
          else setAlert(alert, error.message || String(error));
        }
      });
      root.append(form);
    },
  });
}

function resetPasswordDialog(user) {
  return openDialog({
    title: `Reset the password of ${user.name}`,
    build(root, close) {
      const password = field("New password", {
        type: "password",
        autocomplete: "new-password",
        maxlength: 1024,
        hint: "10 characters or more. Their sessions end; tell them the new password in person.",
      });
      const alert = dialogAlert();
      const save = button("Reset password", null, { kind: "primary", type: "submit" });
      const form = h(
        "form",
        { class: "stack", novalidate: true },
        password.wrap,
        alert,
        dialogActions(close, save),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        setFieldError(password, "");
        setAlert(alert, "");
        try {
          await busy(save, () =>
            api("PUT", `/users/${seg(user.name)}/password`, { password: password.input.value }),
          );
          close(true);
        } catch (error) {
          if (error instanceof ApiError && error.code === "invalid_password") {
            setFieldError(password, error.message);
            password.input.focus();
          } else setAlert(alert, error.message || String(error));
        }
      });
      root.append(form);
    },
  });
}

/** #/users */
export async function usersView(main) {
  if (!me.admin) return needsAdmin(main, "Users");
  const [userData, appData] = await Promise.all([api("GET", "/users"), api("GET", "/apps")]);
  let users = userData.users;
  const apps = appData.apps.map((a) => a.name).sort();

  const newPanel = h("div", { class: "card card-form", hidden: true });
  const listBox = h("div", {});
  const listTitle = h("h2", { class: "card-title" });

  const reload = async () => {
    users = (await api("GET", "/users")).users;
    render();
  };

  const openNew = () => {
    const { form, focus } = newUserForm(apps, {
      onCreated: async (user) => {
        newPanel.hidden = true;
        flash(`User ${user.name} created.`, "success");
        await reload();
      },
      onCancel: () => {
        newPanel.hidden = true;
        newBtn.focus();
      },
    });
    replace(newPanel, h("h2", { class: "card-title", text: "New user" }), form);
    newPanel.hidden = false;
    focus();
  };
  const newBtn = button("New user", openNew, { kind: "primary" });

  const act = async (work, done) => {
    try {
      const result = await work();
      if (result) {
        if (done) flash(done, "success");
        await reload();
      }
    } catch (error) {
      showError(error);
    }
  };

  const setDisabled = (user, disabled) =>
    confirmAction({
      title: disabled ? `Disable ${user.name}?` : `Enable ${user.name}?`,
      body: h("p", {
        text: disabled
          ? `${user.name} cannot sign in while disabled, and their sessions end now. Their roles are kept.`
          : `${user.name} can sign in again with their password.`,
      }),
      confirmText: disabled ? "Disable" : "Enable",
      danger: disabled,
      action: async () => {
        await api("PATCH", `/users/${seg(user.name)}`, { disabled });
      },
    });

  const remove = (user) =>
    confirmAction({
      title: `Delete ${user.name}?`,
      body: h("p", {
        text: `This deletes the user ${user.name} and ends their sessions. Their name stays in the audit log. It cannot be undone.`,
      }),
      confirmText: "Delete",
      danger: true,
      typed: user.name,
      action: async () => {
        await api("DELETE", `/users/${seg(user.name)}`);
      },
    });

  const actions = (user) =>
    h(
      "div",
      { class: "row-actions" },
      button(
        "Roles",
        () => act(() => editRolesDialog(user, apps), `Roles of ${user.name} saved.`),
        {
          small: true,
          "aria-label": `Roles of ${user.name}`,
        },
      ),
      button(
        "Reset password",
        () => act(() => resetPasswordDialog(user), `Password of ${user.name} reset.`),
        { small: true, "aria-label": `Reset the password of ${user.name}` },
      ),
      button(
        user.disabled ? "Enable" : "Disable",
        () =>
          act(
            () => setDisabled(user, !user.disabled),
            `${user.name} ${user.disabled ? "enabled" : "disabled"}.`,
          ),
        {
          small: true,
          "aria-label": `${user.disabled ? "Enable" : "Disable"} ${user.name}`,
        },
      ),
      button("Delete", () => act(() => remove(user), `User ${user.name} deleted.`), {
        small: true,
        kind: "ghost-danger",
        "aria-label": `Delete ${user.name}`,
      }),
    );

  const render = () => {
    const enabled = users.filter((u) => !u.disabled).length;
    listTitle.textContent = `Users (${users.length}${enabled < users.length ? `, ${users.length - enabled} disabled` : ""})`;
    if (!users.length) {
      replace(listBox, emptyState("No users yet", "Create one for each person who edits config."));
      return;
    }
    replace(
      listBox,
      table(
        [
          {
            label: "User",
            cls: "col-user",
            cell: (u) =>
              h(
                "div",
                { class: "user-cell" },
                h("span", { class: "strong user-name", text: u.name }),
                u.name === me.name ? badge("you", "muted") : null,
                u.admin ? badge("admin", "ok") : null,
                u.disabled ? badge("disabled", "danger") : null,
              ),
          },
          { label: "Roles", cls: "col-roles", cell: rolesCell },
          { label: "Last sign-in", cell: (u) => timeEl(u.last_login_at) },
          { label: "Created", cell: (u) => timeEl(u.created_at) },
          { label: "Actions", cls: "col-actions", cell: actions },
        ],
        users,
        {
          caption: "Users",
          rowAttrs: (u) => ({
            "data-user": u.name,
            class: u.disabled ? "row-muted" : null,
          }),
        },
      ),
    );
  };

  replace(
    main,
    pageHead({
      title: "Users",
      subtitle: "People who sign in to this page, and their role on each app.",
      actions: [newBtn],
    }),
    newPanel,
    h("section", { class: "card" }, h("div", { class: "card-head" }, listTitle), listBox),
  );
  render();
}
