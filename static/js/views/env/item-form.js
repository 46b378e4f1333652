// The "Add item" panel of the draft.

import { ApiError, me } from "../../api.js";
import { h, replace } from "../../dom.js";
import { busy, button, checkbox, field, flash, setFieldError, showError } from "../../ui.js";
import { putItem } from "./item-requests.js";

/** The hint under the Secret checkbox: who reads the value back, for this user. */
export function secretHint(app) {
  return me.may(app, "see_secrets")
    ? "Stored encrypted. Viewers and editors see it as hidden; you see it masked until you reveal it."
    : "Write-only for you: stored encrypted, and after saving you see it as hidden. Publishers, owners and admins can read it.";
}

/** The panel and its header button; open() shows the form. onAdded runs after a save. */
export function addItemPanel(ctx, state, { onAdded }) {
  const panel = h("div", { class: "card card-form", hidden: true });
  const openButton = button("Add item", () => open(), { kind: "primary" });

  function open() {
    const key = field("Key", {
      required: true,
      autocomplete: "off",
      spellcheck: "false",
      maxlength: 255,
      placeholder: "db.url",
      class: "mono",
      hint: "Letters, digits and _ . : / - (case-sensitive).",
    });
    const value = field("Value", {
      multiline: true,
      rows: 3,
      class: "mono",
      spellcheck: "false",
      autocomplete: "off",
    });
    const comment = field("Comment", { maxlength: 1000, placeholder: "Why this value (optional)" });
    const secret = checkbox("Secret", { hint: secretHint(ctx.app) });
    const save = button("Save", null, { kind: "primary", type: "submit" });
    const form = h(
      "form",
      { class: "form-grid", novalidate: true, "aria-label": "Add item" },
      key.wrap,
      comment.wrap,
      h("div", { class: "span-2" }, value.wrap),
      h("div", { class: "span-2" }, secret.wrap),
      h(
        "div",
        { class: "form-actions span-2" },
        button("Cancel", () => {
          panel.hidden = true;
          openButton.focus();
        }),
        save,
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      for (const f of [key, value, comment]) setFieldError(f, "");
      const k = key.input.value.trim();
      if (!k) {
        setFieldError(key, "Type a key.");
        key.input.focus();
        return;
      }
      if (state.items.some((i) => i.key === k)) {
        setFieldError(key, `“${k}” is already in the draft; edit it in the table instead.`);
        key.input.focus();
        return;
      }
      const fields = {
        value: value.input.value,
        comment: comment.input.value,
        secret: secret.input.checked,
      };
      try {
        await busy(save, () => putItem(ctx.base, k, fields, null, true));
        // The typed secret leaves the page with the form.
        value.input.value = "";
        flash(`Added “${k}”${fields.secret ? " as a secret" : ""}.`, "success", { timeout: 4000 });
        panel.hidden = true;
        replace(panel);
        await onAdded();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.status === 412)
          setFieldError(key, `“${k}” was just added by someone else; reload to see it.`);
        else if (error.code === "invalid_key" || error.status === 404 || error.status === 405)
          setFieldError(key, error.message);
        else if (/comment/.test(error.code)) setFieldError(comment, error.message);
        else if (error.status === 400 || error.status === 413) setFieldError(value, error.message);
        else showError(error, `Could not add ${k}`);
      }
    });
    replace(panel, h("h2", { class: "card-title", text: "Add item" }), form);
    panel.hidden = false;
    key.input.focus();
  }

  return { panel, openButton, open };
}
