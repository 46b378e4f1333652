// The draft's items table: rows shown or edited in place, the filter, saving with conflict
// handling, deleting.

import { ApiError, api, me, seg } from "../../api.js";
import { h, replace } from "../../dom.js";
import {
  badge,
  busy,
  button,
  confirmAction,
  emptyState,
  field,
  flash,
  secretValue,
  setFieldError,
  showError,
} from "../../ui.js";
import { deleteItem, putItem } from "./item-requests.js";
import { conflictNotice, editRow, viewRow } from "./item-rows.js";

const COLUMNS = ["Key", "Value", "Comment", "Last editor", "Updated", "Actions"];

/**
 * The table of state.items, tagged by state.diff. reload() fetches both again; refreshDiff()
 * only the diff; openAdd() opens the add form (from the empty state).
 */
export function itemsTable(ctx, state, { reload, refreshDiff, openAdd }) {
  const { app, env, base } = ctx;
  const mayEdit = me.may(app, "edit");
  const editing = new Map();
  let rows = new Map();

  const filter = field("Filter items", {
    type: "search",
    placeholder: "Key, value or comment",
    autocomplete: "off",
    spellcheck: "false",
  });
  filter.wrap.classList.add("field-inline");
  filter.input.addEventListener("input", applyFilter);
  const box = h("div", {});
  const count = h("span", { class: "count" });

  function tagFor(key) {
    if (key in (state.diff.added || {})) return badge("new", "added");
    if (key in (state.diff.changed || {})) return badge("changed", "changed");
    return null;
  }

  function renderTags() {
    for (const [key, row] of rows) {
      const slot = row.querySelector(".key-tag");
      if (slot) replace(slot, tagFor(key));
    }
  }

  function applyFilter() {
    const q = filter.input.value.trim().toLowerCase();
    let shown = 0;
    for (const item of state.items) {
      const row = rows.get(item.key);
      if (!row) continue;
      const match =
        !q ||
        editing.has(item.key) ||
        item.key.toLowerCase().includes(q) ||
        // A secret's value is not searched: a row kept or hidden would tell what it holds.
        (!item.secret && (item.value ?? "").toLowerCase().includes(q)) ||
        (item.comment || "").toLowerCase().includes(q);
      row.hidden = !match;
      if (match) shown += 1;
    }
    const empty = box.querySelector(".filter-empty");
    if (empty) empty.hidden = shown > 0 || !state.items.length;
  }

  function buildRow(item) {
    const draft = editing.get(item.key);
    if (!draft) {
      return viewRow(
        item,
        tagFor(item.key),
        mayEdit ? { onEdit: () => startEdit(item.key), onDelete: () => confirmDelete(item) } : null,
      );
    }
    return editRow(item, draft, tagFor(item.key), {
      onSave: (parts) => saveEdit(item.key, draft, parts),
      onCancel: () => stopEdit(item.key),
    });
  }

  /** Update the rows in place: a row being edited keeps its inputs, caret and focus. */
  function updateRows(tbody) {
    const old = rows;
    rows = new Map();
    let prev = null;
    for (const item of state.items) {
      let row = old.get(item.key);
      const keep = row && editing.has(item.key) && row.classList.contains("editing");
      if (!keep) {
        const fresh = buildRow(item);
        if (row) row.replaceWith(fresh);
        row = fresh;
      }
      const ref = prev ? prev.nextSibling : tbody.firstChild;
      if (row !== ref) tbody.insertBefore(row, ref);
      rows.set(item.key, row);
      prev = row;
    }
    for (const [key, row] of old) if (!rows.has(key)) row.remove();
    renderTags();
  }

  function buildTable() {
    rows = new Map();
    const body = h("tbody", {});
    for (const item of state.items) {
      const row = buildRow(item);
      rows.set(item.key, row);
      body.append(row);
    }
    replace(
      box,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table items-table" },
          h("caption", { class: "sr-only", text: `Draft items of ${app}/${env}` }),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              COLUMNS.map((label) =>
                h("th", {
                  scope: "col",
                  text: label,
                  class: label === "Actions" ? "col-actions" : null,
                }),
              ),
            ),
          ),
          body,
        ),
      ),
      h(
        "div",
        { class: "filter-empty", hidden: true },
        emptyState("No item matches the filter", "Clear the filter to see every item."),
      ),
    );
  }

  function render() {
    count.textContent = state.items.length ? `(${state.items.length})` : "";
    filter.wrap.hidden = !state.items.length;
    for (const key of editing.keys()) {
      if (!state.items.some((i) => i.key === key)) editing.delete(key);
    }
    if (!state.items.length) {
      rows = new Map();
      replace(
        box,
        emptyState(
          "This draft has no items yet",
          mayEdit
            ? "Add the first key and value. Nothing reaches clients until you publish."
            : "An editor of this app adds its keys and values here.",
          mayEdit ? button("Add item", () => openAdd(), { kind: "primary" }) : null,
        ),
      );
      return;
    }
    const tbody = box.querySelector("tbody");
    if (tbody) updateRows(tbody);
    else buildTable();
    applyFilter();
  }

  function replaceRow(key) {
    const item = state.items.find((i) => i.key === key);
    const old = rows.get(key);
    if (!item || !old) {
      render();
      return null;
    }
    const row = buildRow(item);
    old.replaceWith(row);
    rows.set(key, row);
    return row;
  }

  function startEdit(key) {
    const item = state.items.find((i) => i.key === key);
    if (!item) return;
    // A secret this user may not read is edited blind: the field starts empty.
    editing.set(key, {
      value: item.value ?? "",
      comment: item.comment || "",
      secret: Boolean(item.secret),
      revision: item.revision,
    });
    const row = replaceRow(key);
    if (row?.focusValue) row.focusValue();
  }

  function stopEdit(key) {
    editing.delete(key);
    const row = replaceRow(key);
    if (row) {
      const btn = row.querySelector("button");
      if (btn) btn.focus();
    }
  }

  async function saveEdit(key, draft, { fields, conflictBox, saveBtn }) {
    for (const f of Object.values(fields)) setFieldError(f, "");
    replace(conflictBox);
    const hidden = state.items.find((i) => i.key === key)?.value === null;
    if (hidden && draft.value === "") {
      // Saving a blank over a value this user cannot see would erase it unseen.
      setFieldError(
        fields.value,
        "Type the new value: the current one is hidden from you, and saving would replace it.",
      );
      fields.value.input.focus();
      return;
    }
    try {
      const saved = await busy(saveBtn, () =>
        putItem(
          base,
          key,
          { value: draft.value, comment: draft.comment, secret: draft.secret },
          draft.revision,
        ),
      );
      editing.delete(key);
      state.items = state.items.map((i) => (i.key === key ? saved : i));
      replaceRow(key);
      flash(`Saved “${key}”.`, "success", { timeout: 4000 });
      await refreshDiff();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 412) await showConflict(key, draft, conflictBox);
      else if (error.status === 400 || error.status === 413) {
        const target = /comment/.test(error.code) ? fields.comment : fields.value;
        setFieldError(target, error.message);
        target.input.focus();
      } else showError(error, `Could not save ${key}`);
    }
  }

  async function showConflict(key, draft, conflictBox) {
    let theirs = null;
    try {
      theirs = await api("GET", `${base}/items/${seg(key)}`);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
    replace(
      conflictBox,
      conflictNotice(key, theirs, {
        onUseTheirs: async () => {
          editing.delete(key);
          await reload();
        },
        onKeepMine: async () => {
          draft.revision = theirs ? theirs.revision : null;
          const form = rows.get(key)?.querySelector("form");
          if (form) form.requestSubmit();
        },
      }),
    );
    if (theirs) {
      const item = state.items.find((i) => i.key === key);
      if (item) Object.assign(item, theirs);
    }
  }

  async function confirmDelete(item) {
    const ok = await confirmAction({
      title: `Delete ${item.key}?`,
      body: h(
        "div",
        { class: "stack" },
        h(
          "p",
          {},
          "This removes ",
          h("code", { class: "key", text: item.key }),
          " from the draft of ",
          h("strong", { text: `${app}/${env}` }),
          ". Clients keep the published value until you publish.",
        ),
        item.secret || item.value === null
          ? secretValue(item.value, { cls: "value-removed", label: item.key })
          : h("pre", { class: "value value-removed", text: item.value }),
      ),
      confirmText: "Delete",
      danger: true,
      action: async () => {
        try {
          await deleteItem(base, item);
        } catch (error) {
          if (error instanceof ApiError && error.status === 412) {
            throw new Error(
              `Someone else changed ${item.key} meanwhile; it was not deleted. Close this dialog to see their value.`,
            );
          }
          throw error;
        }
      },
    });
    if (ok) {
      editing.delete(item.key);
      flash(`Deleted “${item.key}” from the draft.`, "success", { timeout: 4000 });
    }
    await reload();
  }

  return { box, filter: filter.wrap, count, render, renderTags };
}
