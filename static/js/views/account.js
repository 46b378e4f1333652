// The signed-in user's own account: change the password, see and end sessions, sign out
// everywhere.

import { ApiError, api, me, seg } from "../api.js";
import { h, replace, timeEl } from "../dom.js";
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

function rolesSummary() {
  if (me.admin) return "Admin: you may do everything, on every app.";
  const entries = Object.entries(me.roles);
  if (!entries.length) return "No roles yet: ask an admin for a role on the apps you work on.";
  const roles = entries.map(([app, role]) => `${role} on ${app === "*" ? "every app" : app}`);
  return `Your roles: ${roles.join(", ")}.`;
}

function passwordForm(onChanged) {
  const current = field("Current password", {
    type: "password",
    autocomplete: "current-password",
    maxlength: 1024,
  });
  const next = field("New password", {
    type: "password",
    autocomplete: "new-password",
    maxlength: 1024,
    hint: "10 characters or more.",
  });
  const again = field("New password again", {
    type: "password",
    autocomplete: "new-password",
    maxlength: 1024,
  });
  const save = button("Change password", null, { kind: "primary", type: "submit" });
  const form = h(
    "form",
    { class: "form-grid", novalidate: true, "aria-label": "Change password" },
    h("div", { class: "span-2" }, current.wrap),
    next.wrap,
    again.wrap,
    h("div", { class: "form-actions span-2" }, save),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const f of [current, next, again]) setFieldError(f, "");
    if (!current.input.value) {
      setFieldError(current, "Type your current password.");
      current.input.focus();
      return;
    }
    if (next.input.value !== again.input.value) {
      setFieldError(again, "The two new passwords differ.");
      again.input.focus();
      return;
    }
    try {
      await busy(save, () =>
        api("PUT", `/users/${seg(me.name)}/password`, {
          current: current.input.value,
          password: next.input.value,
        }),
      );
      for (const f of [current, next, again]) f.input.value = "";
      await onChanged();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.code === "wrong_password") {
        setFieldError(current, error.message);
        current.input.focus();
      } else if (error.code === "invalid_password") {
        setFieldError(next, error.message);
        next.input.focus();
      } else if (error.status !== 401) showError(error, "Could not change the password");
    }
  });
  return form;
}

/** #/account */
export async function accountView(main) {
  let sessions = (await api("GET", "/sessions")).sessions;
  const listBox = h("div", {});

  const reload = async () => {
    sessions = (await api("GET", "/sessions")).sessions;
    render();
  };

  const signOutHere = () => {
    const form = document.querySelector("form.signout");
    if (form) form.requestSubmit();
  };

  const endOne = async (session) => {
    try {
      await api("DELETE", `/sessions/${session.id}`);
      flash("Session ended.", "success", { timeout: 4000 });
      await reload();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) showError(error);
    }
  };

  const signOutEverywhere = () =>
    confirmAction({
      title: "Sign out everywhere?",
      body: h("p", {
        text: "This ends every session of yours: other browsers and devices, and this one. You will sign in again here.",
      }),
      confirmText: "Sign out everywhere",
      danger: true,
      action: async () => {
        for (const session of sessions) {
          if (session.id === me.sessionId) continue;
          try {
            await api("DELETE", `/sessions/${session.id}`);
          } catch (error) {
            // Ended meanwhile (expired, or by an admin): that is what we wanted.
            if (!(error instanceof ApiError && error.status === 404)) throw error;
          }
        }
        return true;
      },
    }).then((done) => {
      if (done) signOutHere();
    });

  const render = () => {
    if (!sessions.length) {
      replace(listBox, emptyState("No sessions", "Sign in to start one."));
      return;
    }
    replace(
      listBox,
      table(
        [
          {
            label: "Signed in",
            cell: (s) =>
              h(
                "span",
                { class: "session-start" },
                timeEl(s.created_at),
                s.id === me.sessionId ? badge("this session", "ok") : null,
              ),
          },
          { label: "Last used", cell: (s) => timeEl(s.last_used_at) },
          {
            label: "Address",
            cell: (s) => h("code", { class: "address", text: s.address || "—" }),
          },
          { label: "Expires", cell: (s) => timeEl(s.expires_at) },
          {
            label: "Actions",
            cls: "col-actions",
            cell: (s) =>
              s.id === me.sessionId
                ? button("Sign out", signOutHere, { small: true })
                : button("End", (event) => busy(event.currentTarget, () => endOne(s)), {
                    small: true,
                    kind: "ghost-danger",
                    "aria-label": `End the session from ${s.address || "an unknown address"}`,
                  }),
          },
        ],
        sessions,
        { caption: "Your sessions", rowAttrs: (s) => ({ "data-session": String(s.id) }) },
      ),
    );
  };

  replace(
    main,
    pageHead({ title: "Your account", subtitle: `Signed in as ${me.name}. ${rolesSummary()}` }),
    card(
      "Change password",
      [],
      h("p", {
        class: "muted",
        text: "Your other sessions end when the password changes; this one stays.",
      }),
      passwordForm(async () => {
        flash("Password changed. Your other sessions have ended.", "success");
        await reload();
      }),
    ),
    card(
      "Your sessions",
      [button("Sign out everywhere", signOutEverywhere, { kind: "danger", small: true })],
      listBox,
    ),
  );
  render();
}
