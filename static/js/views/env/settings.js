// The settings of one env (owners and admins): approvals on or off, and deleting the env.

import { ApiError, api, me, seg } from "../../api.js";
import { h, replace, uid } from "../../dom.js";
import { badge, busy, card, confirmAction, emptyState, flash, showError } from "../../ui.js";

function approvalText(on) {
  return on
    ? "On: the draft is released by a release request that another publisher approves. Admins keep an emergency publish."
    : "Off: editors' changes go out when a publisher publishes the draft.";
}

/** The approval toggle: a checkbox that saves at once, with what the setting means. */
function approvalCard(ctx) {
  const { app, env, base } = ctx;
  const id = uid("approval");
  const input = h("input", {
    id,
    type: "checkbox",
    checked: ctx.settings.approval_required,
    "aria-describedby": `${id}-hint`,
  });
  const state = h("span", {});
  const hint = h("p", { class: "hint", id: `${id}-hint` });
  const show = () => {
    const on = ctx.settings.approval_required;
    input.checked = on;
    replace(state, badge(on ? "Approvals on" : "Approvals off", on ? "ok" : "muted"));
    hint.textContent = approvalText(on);
  };
  input.addEventListener("change", async () => {
    const wanted = input.checked;
    try {
      const next = await busy(input, () => api("PATCH", base, { approval_required: wanted }));
      ctx.setSettings(next);
      flash(
        wanted
          ? `Approvals are on for ${app}/${env}: releases now need an approved request.`
          : `Approvals are off for ${app}/${env}: publishers publish directly.`,
        "success",
      );
    } catch (error) {
      showError(error, "Could not change the setting");
    }
    show();
  });
  show();
  return card(
    "Approvals",
    [state],
    h(
      "div",
      { class: "check settings-check" },
      input,
      h("label", { for: id, text: "Releases need an approved request" }),
      hint,
    ),
  );
}

/** The danger zone: delete the env after typing its name; the app's last env stays. */
function deleteCard(ctx) {
  const { app, env, base } = ctx;
  const deleteEnv = async () => {
    const done = await confirmAction({
      title: `Delete ${app}/${env}?`,
      body: h("p", {
        text: `This deletes the draft and every release of ${env}. Clients reading it get 404 from now on, and its subscribers are told.`,
      }),
      confirmText: "Delete env",
      danger: true,
      typed: env,
      action: async () => {
        try {
          await api("DELETE", base);
        } catch (error) {
          if (error instanceof ApiError && error.code === "last_env") {
            throw new Error(
              `${env} is the only env of ${app}, and an app keeps at least one. Add another env first, or delete the whole app instead${me.admin ? " (on the app page)" : " (an admin can)"}.`,
            );
          }
          throw error;
        }
      },
    });
    if (done) {
      flash(`Env ${app}/${env} deleted.`, "success");
      window.location.hash = `#/apps/${seg(app)}`;
    }
  };
  return h(
    "section",
    { class: "card card-danger" },
    h("div", { class: "card-head" }, h("h2", { class: "card-title", text: "Danger zone" })),
    h(
      "div",
      { class: "danger-row" },
      h(
        "div",
        {},
        h("p", { class: "strong", text: "Delete this env" }),
        h("p", {
          class: "muted",
          text: "Removes its draft and releases. You will be asked to type the env name.",
        }),
      ),
      h("button", {
        type: "button",
        class: "btn btn-danger",
        text: "Delete env",
        onclick: deleteEnv,
      }),
    ),
  );
}

/** #/apps/APP/ENV/settings */
export async function settingsSection(root, ctx) {
  ctx.refresh = async () => {};
  if (!me.may(ctx.app, "manage")) {
    replace(
      root,
      emptyState(
        "Owners only",
        `The settings of ${ctx.app}/${ctx.env} are changed by an owner of the app or an admin.`,
      ),
    );
    return;
  }
  replace(root, approvalCard(ctx), deleteCard(ctx));
}
