// The rows of the draft's items table, as shown and as edited, and the conflict notice of a
// save refused with 412. Builders only: the table (items.js) owns the state and the requests.

import { h, timeEl, uid } from "../../dom.js";
import { button, cell, checkbox, secretBadge, secretValue } from "../../ui.js";

const keyCell = (item, tag) =>
  cell(
    "col-key",
    "Key",
    h("code", { class: "key", text: item.key }),
    item.secret ? secretBadge() : null,
    h("span", { class: "key-tag" }, tag),
  );

/** A value as shown: a secret masked (or hidden from this reader), else the text. */
function valueCell(item) {
  if (item.secret || item.value === null)
    return cell("col-value", "Value", secretValue(item.value, { label: item.key }));
  return cell(
    "col-value",
    "Value",
    h("pre", { class: "value", text: item.value }),
    item.value === "" ? h("span", { class: "muted", text: "(empty)" }) : null,
  );
}
const editorCell = (item) =>
  cell("col-editor", "Last editor", h("span", { class: "editor", text: item.updated_by }));
const timeCell = (item) => cell("col-time", "Updated", timeEl(item.updated_at));

/** A row as shown, with Edit and Delete when handlers are given (the user may edit). */
export function viewRow(item, tag, handlers) {
  const editBtn = handlers
    ? button("Edit", handlers.onEdit, { small: true, "aria-label": `Edit ${item.key}` })
    : null;
  const delBtn = handlers
    ? button("Delete", handlers.onDelete, {
        small: true,
        kind: "ghost-danger",
        "aria-label": `Delete ${item.key}`,
      })
    : null;
  return h(
    "tr",
    { dataset: { key: item.key } },
    keyCell(item, tag),
    valueCell(item),
    cell(
      "col-comment",
      "Comment",
      item.comment ? h("span", { text: item.comment }) : h("span", { class: "muted", text: "—" }),
    ),
    editorCell(item),
    timeCell(item),
    cell("col-actions", "Actions", h("div", { class: "row-actions" }, editBtn, delBtn)),
  );
}

/**
 * A row being edited; typing updates draft ({ value, comment, secret, revision }); a secret
 * this reader may not see (value null) is edited blind. Ctrl+Enter or Save
 * calls onSave({ fields, conflictBox, saveBtn }); Escape or Cancel calls onCancel. The row
 * has focusValue() to put the caret at the end of the value.
 */
export function editRow(item, draft, tag, { onSave, onCancel }) {
  const valueId = uid("v");
  const commentId = uid("c");
  const value = h("textarea", {
    id: valueId,
    class: "mono",
    rows: Math.min(8, Math.max(2, (draft.value ?? "").split("\n").length)),
    value: draft.value,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: item.value === null ? "Write-only: type the new value" : null,
    "aria-describedby": `${valueId}-error`,
  });
  const secret = checkbox("Secret", {
    checked: draft.secret,
    hint:
      item.value === null
        ? "Hidden from your role: saving overwrites it with what you type."
        : null,
  });
  secret.wrap.classList.add("row-secret");
  const comment = h("input", {
    id: commentId,
    type: "text",
    value: draft.comment,
    maxlength: 1000,
    "aria-describedby": `${commentId}-error`,
  });
  // The shape of ui.js's field(), so that setFieldError applies.
  const errorOf = (id) => h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const fields = {
    value: { input: value, error: errorOf(valueId) },
    comment: { input: comment, error: errorOf(commentId) },
  };
  const conflictBox = h("div", { class: "conflict-box" });
  const saveBtn = button("Save", null, {
    kind: "primary",
    small: true,
    type: "submit",
    "aria-label": `Save ${item.key}`,
  });
  const cancelBtn = button("Cancel", onCancel, { small: true });
  const formId = uid("edit");
  const form = h("form", { id: formId, class: "row-form", novalidate: true });
  value.setAttribute("form", formId);
  comment.setAttribute("form", formId);
  saveBtn.setAttribute("form", formId);
  value.addEventListener("input", () => {
    draft.value = value.value;
  });
  comment.addEventListener("input", () => {
    draft.comment = comment.value;
  });
  secret.input.setAttribute("form", formId);
  secret.input.addEventListener("change", () => {
    draft.secret = secret.input.checked;
  });
  value.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    if (event.key === "Escape") onCancel();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSave({ fields, conflictBox, saveBtn });
  });
  const row = h(
    "tr",
    { class: "editing", dataset: { key: item.key } },
    keyCell(item, tag),
    cell(
      "col-value",
      "Value",
      h("label", { for: valueId, class: "sr-only", text: `Value of ${item.key}` }),
      value,
      fields.value.error,
      secret.wrap,
      conflictBox,
    ),
    cell(
      "col-comment",
      "Comment",
      h("label", { for: commentId, class: "sr-only", text: `Comment on ${item.key}` }),
      comment,
      fields.comment.error,
    ),
    editorCell(item),
    timeCell(item),
    cell("col-actions", "Actions", form, h("div", { class: "row-actions" }, cancelBtn, saveBtn)),
  );
  row.focusValue = () => {
    value.focus();
    value.setSelectionRange(value.value.length, value.value.length);
  };
  return row;
}

/** Why a save was refused: their value (or that it was deleted), and the two ways on. */
export function conflictNotice(key, theirs, { onUseTheirs, onKeepMine }) {
  return h(
    "div",
    { class: "conflict", role: "alert" },
    h("p", { class: "strong", text: "Conflict: not saved." }),
    theirs
      ? h(
          "p",
          {},
          `${theirs.updated_by} changed ${key} `,
          timeEl(theirs.updated_at),
          " while you were editing. Their value:",
        )
      : h("p", { text: `${key} was deleted by someone else while you were editing.` }),
    theirs && (theirs.secret || theirs.value === null)
      ? secretValue(theirs.value, { cls: "value-theirs", label: `their value of ${key}` })
      : null,
    theirs && !theirs.secret && theirs.value !== null
      ? h("pre", { class: "value value-theirs", text: theirs.value })
      : null,
    h(
      "div",
      { class: "row-actions" },
      button(theirs ? "Use their version" : "Discard my edit", onUseTheirs, { small: true }),
      button(theirs ? "Overwrite with mine" : "Save mine as new", onKeepMine, {
        small: true,
        kind: "danger",
      }),
    ),
  );
}
