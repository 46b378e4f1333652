// One env: the draft (items, badge, publish), history (releases, view, compare, roll back),
// and the live channel that keeps the page current when someone publishes elsewhere.

import { ApiError, api, envPath, seg } from "../api.js";
import { exactTime, h, plural, replace, timeEl, uid } from "../dom.js";
import { live } from "../live.js";
import {
  badge,
  busy,
  button,
  card,
  cell,
  confirmAction,
  diffCounts,
  diffMaps,
  diffSummary,
  diffView,
  emptyState,
  field,
  flash,
  pageHead,
  setFieldError,
  showError,
  table,
} from "../ui.js";
import { envHref } from "./apps.js";

const HISTORY_PAGE = 50;
// Our own publishes: the live channel reports them too, without a notice. The frame can
// arrive before the HTTP answer, so a publish in flight is awaited before deciding.
const ownVersions = new Set();
const ownPending = new Map();

async function ownRelease(app, env, request) {
  const key = `${app}/${env}`;
  const pending = request();
  ownPending.set(key, pending);
  try {
    const created = await pending;
    ownVersions.add(`${key}/${created.version}`);
    live.seen(app, env, created.version);
    return created;
  } finally {
    if (ownPending.get(key) === pending) ownPending.delete(key);
  }
}

function liveIndicator() {
  const dot = h("span", { class: "live-dot", "aria-hidden": "true" });
  const text = h("span", { class: "live-text" });
  const el = h(
    "span",
    { class: "live", title: "Updates from other operators arrive here as they happen" },
    dot,
    text,
  );
  const stop = live.onState((state) => {
    el.dataset.state = state;
    text.textContent =
      state === "live" ? "Live" : state === "offline" ? "Offline, retrying…" : "Connecting…";
  });
  return { el, stop };
}

function tabs(label, entries) {
  return h(
    "nav",
    { class: "tabs", "aria-label": label },
    entries.map(([text, href, current]) =>
      h("a", { class: "tab", href, text, "aria-current": current ? "page" : null }),
    ),
  );
}

/** "." and ".." cannot be sent as URL path segments (browsers resolve them). */
function addressable(key) {
  return key !== "." && key !== "..";
}

/** #/apps/APP/ENV[/history | /releases/V | /compare/A/B] */
export async function envView(main, params) {
  const { app, env, section } = params;
  const base = envPath(app, env);
  const [info, firstDiff] = await Promise.all([
    api("GET", `/apps/${seg(app)}`),
    api("GET", `${base}/diff`),
  ]);
  if (!info.envs.includes(env))
    throw new ApiError(404, "not_found", `env ${env} of app ${app} not found`);

  const indicator = liveIndicator();
  const sectionBody = h("div", { class: "section-body" });
  const ctx = { app, env, base, info, latest: firstDiff.base_version, refresh: async () => {} };

  replace(
    main,
    pageHead({
      crumbs: [
        ["Apps", "#/apps"],
        [app, `#/apps/${seg(app)}`],
        [env, null],
      ],
      title: `${app} / ${env}`,
      extra: indicator.el,
    }),
    h(
      "div",
      { class: "env-bar" },
      info.envs.length > 1
        ? tabs(
            "Envs",
            info.envs.map((e) => [
              e,
              envHref(app, e, section === "history" ? "history" : ""),
              e === env,
            ]),
          )
        : null,
      tabs("Sections", [
        ["Draft", envHref(app, env), section === "draft"],
        ["History", envHref(app, env, "history"), section !== "draft"],
      ]),
    ),
    sectionBody,
  );

  const stopWatch = live.watch(app, env, ctx.latest ?? 0, async (frame) => {
    ctx.latest = frame.version;
    const inFlight = ownPending.get(`${app}/${env}`);
    if (inFlight) await inFlight.catch(() => null);
    if (ownVersions.has(`${app}/${env}/${frame.version}`)) return;
    let detail = null;
    try {
      detail = await api("GET", `${base}/releases/${frame.version}`);
    } catch {
      detail = null;
    }
    const who = detail ? detail.author : "someone";
    const what = detail?.rollback_of
      ? `rolled back ${app}/${env} to v${detail.rollback_of}`
      : `published ${app}/${env}`;
    const note = detail?.comment ? `: “${detail.comment}”.` : ".";
    flash(`${who} ${what} as v${frame.version}${note} The page is up to date.`, "live", {
      title: `New release v${frame.version}.`,
      timeout: 15000,
    });
    await ctx.refresh({ fromLive: true });
  });

  if (section === "draft") await draftSection(sectionBody, ctx, firstDiff);
  else if (section === "history") await historySection(sectionBody, ctx);
  else if (section === "release") await releaseSection(sectionBody, ctx, Number(params.a));
  else if (section === "compare")
    await compareSection(sectionBody, ctx, Number(params.a), Number(params.b));

  return () => {
    stopWatch();
    indicator.stop();
  };
}

// ---------------------------------------------------------------- draft

async function draftSection(root, ctx, firstDiff) {
  const { app, env, base } = ctx;
  const state = { items: [], diff: firstDiff, editing: new Map(), rows: new Map() };

  const statusBox = h("div", { class: "draft-status" });
  const filter = field("Filter items", {
    type: "search",
    placeholder: "Key, value or comment",
    autocomplete: "off",
    spellcheck: "false",
  });
  filter.wrap.classList.add("field-inline");
  const addPanel = h("div", { class: "card card-form", hidden: true });
  const tableBox = h("div", {});
  const removedBox = h("div", {});
  const countEl = h("span", { class: "count" });
  const addBtn = button("Add item", () => openAdd(), { kind: "primary" });

  async function load() {
    const [items, diff] = await Promise.all([
      api("GET", `${base}/items`),
      api("GET", `${base}/diff`),
    ]);
    state.items = items.items.slice().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    state.diff = diff;
    ctx.latest = diff.base_version;
    if (diff.base_version) live.seen(app, env, diff.base_version);
  }

  async function refreshDiff() {
    state.diff = await api("GET", `${base}/diff`);
    renderStatus();
    renderTags();
  }

  function renderStatus() {
    const d = state.diff;
    const c = diffCounts(d);
    const dirty = c.added + c.changed + c.removed > 0;
    const publishBtn = button("Publish", () => openPublish(), {
      kind: "primary",
      disabled: !dirty,
    });
    let badgeEl;
    let text;
    if (!d.base_version) {
      badgeEl = badge(dirty ? "Unpublished changes" : "Empty draft", dirty ? "warn" : "muted");
      text = dirty
        ? `Never published. Publishing makes release v1 with ${plural(c.added, "item")}.`
        : "Never published, and the draft is empty. Add items, then publish.";
    } else if (dirty) {
      badgeEl = badge("Unpublished changes", "warn");
      text = `${diffSummary(d)} since v${d.base_version}. Clients still get v${d.base_version} until you publish.`;
    } else {
      badgeEl = badge(`Matches v${d.base_version}`, "ok");
      text = `The draft equals the latest release, v${d.base_version}. Clients have it.`;
    }
    replace(
      statusBox,
      h(
        "div",
        { class: "draft-status-text" },
        badgeEl,
        h("span", { class: "draft-status-detail", text }),
      ),
      h(
        "div",
        { class: "draft-status-actions" },
        dirty && d.base_version
          ? button("Review changes", () => openPublish(), { small: false })
          : null,
        publishBtn,
      ),
    );
    renderRemoved();
  }

  function renderRemoved() {
    const removed = Object.entries(state.diff.removed || {});
    if (!removed.length) {
      replace(removedBox);
      return;
    }
    replace(
      removedBox,
      h(
        "div",
        { class: "removed-note" },
        h("p", {
          class: "strong",
          text: `Deleted from the draft, still published in v${state.diff.base_version}:`,
        }),
        h(
          "ul",
          { class: "removed-list" },
          removed.map(([key, value]) =>
            h(
              "li",
              {},
              h("code", { class: "key key-removed", text: key }),
              " ",
              h("span", {
                class: "muted value-inline",
                text: value.length > 80 ? `${value.slice(0, 80)}…` : value,
              }),
            ),
          ),
        ),
      ),
    );
  }

  function tagFor(key) {
    if (key in (state.diff.added || {})) return badge("new", "added");
    if (key in (state.diff.changed || {})) return badge("changed", "changed");
    return null;
  }

  function renderTags() {
    for (const [key, row] of state.rows) {
      const slot = row.querySelector(".key-tag");
      if (slot) replace(slot, tagFor(key));
    }
  }

  function applyFilter() {
    const q = filter.input.value.trim().toLowerCase();
    let shown = 0;
    for (const item of state.items) {
      const row = state.rows.get(item.key);
      if (!row) continue;
      const match =
        !q ||
        state.editing.has(item.key) ||
        item.key.toLowerCase().includes(q) ||
        item.value.toLowerCase().includes(q) ||
        (item.comment || "").toLowerCase().includes(q);
      row.hidden = !match;
      if (match) shown += 1;
    }
    const empty = tableBox.querySelector(".filter-empty");
    if (empty) empty.hidden = shown > 0 || !state.items.length;
  }

  function viewRow(item) {
    const editBtn = button("Edit", () => startEdit(item.key), {
      small: true,
      "aria-label": `Edit ${item.key}`,
    });
    const delBtn = button("Delete", () => deleteItem(item), {
      small: true,
      kind: "ghost-danger",
      "aria-label": `Delete ${item.key}`,
    });
    return h(
      "tr",
      { dataset: { key: item.key } },
      cell(
        "col-key",
        "Key",
        h("code", { class: "key", text: item.key }),
        h("span", { class: "key-tag" }, tagFor(item.key)),
      ),
      cell(
        "col-value",
        "Value",
        h("pre", { class: "value", text: item.value === "" ? "" : item.value }),
        item.value === "" ? h("span", { class: "muted", text: "(empty)" }) : null,
      ),
      cell(
        "col-comment",
        "Comment",
        item.comment ? h("span", { text: item.comment }) : h("span", { class: "muted", text: "—" }),
      ),
      cell("col-editor", "Last editor", h("span", { class: "editor", text: item.updated_by })),
      cell("col-time", "Updated", timeEl(item.updated_at)),
      cell("col-actions", "Actions", h("div", { class: "row-actions" }, editBtn, delBtn)),
    );
  }

  function editRow(item, draft) {
    const valueId = uid("v");
    const commentId = uid("c");
    const value = h("textarea", {
      id: valueId,
      class: "mono",
      rows: Math.min(8, Math.max(2, draft.value.split("\n").length)),
      value: draft.value,
      "aria-describedby": `${valueId}-error`,
    });
    const comment = h("input", {
      id: commentId,
      type: "text",
      value: draft.comment,
      maxlength: 1000,
      "aria-describedby": `${commentId}-error`,
    });
    const valueError = h("p", { class: "field-error", id: `${valueId}-error`, hidden: true });
    const commentError = h("p", { class: "field-error", id: `${commentId}-error`, hidden: true });
    const conflictBox = h("div", { class: "conflict-box" });
    const saveBtn = button("Save", null, {
      kind: "primary",
      small: true,
      type: "submit",
      "aria-label": `Save ${item.key}`,
    });
    const cancelBtn = button("Cancel", () => stopEdit(item.key), { small: true });
    const formId = uid("edit");
    const form = h("form", { id: formId, class: "row-form", novalidate: true });
    value.setAttribute("form", formId);
    comment.setAttribute("form", formId);
    value.addEventListener("input", () => (draft.value = value.value));
    comment.addEventListener("input", () => (draft.comment = comment.value));
    value.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
      if (event.key === "Escape") stopEdit(item.key);
    });
    const fields = {
      value: { input: value, error: valueError },
      comment: { input: comment, error: commentError },
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveEdit(item.key, draft, fields, conflictBox, saveBtn);
    });
    const row = h(
      "tr",
      { class: "editing", dataset: { key: item.key } },
      cell(
        "col-key",
        "Key",
        h("code", { class: "key", text: item.key }),
        h("span", { class: "key-tag" }, tagFor(item.key)),
      ),
      cell(
        "col-value",
        "Value",
        h("label", { for: valueId, class: "sr-only", text: `Value of ${item.key}` }),
        value,
        valueError,
        conflictBox,
      ),
      cell(
        "col-comment",
        "Comment",
        h("label", { for: commentId, class: "sr-only", text: `Comment on ${item.key}` }),
        comment,
        commentError,
      ),
      cell("col-editor", "Last editor", h("span", { class: "editor", text: item.updated_by })),
      cell("col-time", "Updated", timeEl(item.updated_at)),
      cell("col-actions", "Actions", form, h("div", { class: "row-actions" }, cancelBtn, saveBtn)),
    );
    saveBtn.setAttribute("form", formId);
    row.focusValue = () => {
      value.focus();
      value.setSelectionRange(value.value.length, value.value.length);
    };
    return row;
  }

  function buildRow(item) {
    const draft = state.editing.get(item.key);
    return draft ? editRow(item, draft) : viewRow(item);
  }

  function renderTable() {
    countEl.textContent = state.items.length ? `(${state.items.length})` : "";
    filter.wrap.hidden = !state.items.length;
    for (const key of state.editing.keys()) {
      if (!state.items.some((i) => i.key === key)) state.editing.delete(key);
    }
    const tbody = tableBox.querySelector("tbody");
    if (state.items.length && tbody) {
      // Update in place: a row being edited keeps its inputs, caret and focus.
      const old = state.rows;
      state.rows = new Map();
      let prev = null;
      for (const item of state.items) {
        let row = old.get(item.key);
        const keep = row && state.editing.has(item.key) && row.classList.contains("editing");
        if (!keep) {
          const fresh = buildRow(item);
          if (row) row.replaceWith(fresh);
          row = fresh;
        }
        const ref = prev ? prev.nextSibling : tbody.firstChild;
        if (row !== ref) tbody.insertBefore(row, ref);
        state.rows.set(item.key, row);
        prev = row;
      }
      for (const [key, row] of old) if (!state.rows.has(key)) row.remove();
      renderTags();
      applyFilter();
      return;
    }
    state.rows = new Map();
    if (!state.items.length) {
      replace(
        tableBox,
        emptyState(
          "This draft has no items yet",
          "Add the first key and value. Nothing reaches clients until you publish.",
          button("Add item", () => openAdd(), { kind: "primary" }),
        ),
      );
      return;
    }
    const body = h("tbody", {});
    for (const item of state.items) {
      const row = buildRow(item);
      state.rows.set(item.key, row);
      body.append(row);
    }
    replace(
      tableBox,
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
              ["Key", "Value", "Comment", "Last editor", "Updated", "Actions"].map((label) =>
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
    applyFilter();
  }

  function replaceRow(key) {
    const item = state.items.find((i) => i.key === key);
    const old = state.rows.get(key);
    if (!item || !old) {
      renderTable();
      return null;
    }
    const row = buildRow(item);
    old.replaceWith(row);
    state.rows.set(key, row);
    return row;
  }

  function startEdit(key) {
    const item = state.items.find((i) => i.key === key);
    if (!item) return;
    state.editing.set(key, {
      value: item.value,
      comment: item.comment || "",
      revision: item.revision,
    });
    const row = replaceRow(key);
    if (row?.focusValue) row.focusValue();
  }

  function stopEdit(key) {
    state.editing.delete(key);
    const row = replaceRow(key);
    if (row) {
      const btn = row.querySelector("button");
      if (btn) btn.focus();
    }
  }

  function showFieldError(fields, error) {
    const target = /comment/.test(error.code) ? fields.comment : fields.value;
    target.error.textContent = error.message;
    target.error.hidden = false;
    target.error.setAttribute("role", "alert");
    target.input.setAttribute("aria-invalid", "true");
    target.input.focus();
  }

  function clearFieldErrors(fields) {
    for (const f of Object.values(fields)) {
      f.error.hidden = true;
      f.error.textContent = "";
      f.error.removeAttribute("role");
      f.input.removeAttribute("aria-invalid");
    }
  }

  async function putItem(key, value, comment, revision, createOnly = false) {
    if (!addressable(key)) {
      const result = await api("PATCH", `${base}/items`, { set: { [key]: value } });
      return result.items.find((i) => i.key === key);
    }
    return api(
      "PUT",
      `${base}/items/${seg(key)}`,
      { value, comment },
      { ifMatch: revision, createOnly },
    );
  }

  async function saveEdit(key, draft, fields, conflictBox, saveBtn) {
    clearFieldErrors(fields);
    replace(conflictBox);
    try {
      const saved = await busy(saveBtn, () =>
        putItem(key, draft.value, draft.comment, draft.revision),
      );
      state.editing.delete(key);
      state.items = state.items.map((i) => (i.key === key ? saved : i));
      replaceRow(key);
      flash(`Saved “${key}”.`, "success", { timeout: 4000 });
      await refreshDiff();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 412) await showConflict(key, draft, conflictBox);
      else if (error.status === 400 || error.status === 413) showFieldError(fields, error);
      else showError(error, `Could not save ${key}`);
    }
  }

  async function showConflict(key, draft, box) {
    let theirs = null;
    try {
      theirs = await api("GET", `${base}/items/${seg(key)}`);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
    const useTheirs = button(
      theirs ? "Use their version" : "Discard my edit",
      async () => {
        state.editing.delete(key);
        await reload();
      },
      { small: true },
    );
    const keepMine = button(
      theirs ? "Overwrite with mine" : "Save mine as new",
      async () => {
        draft.revision = theirs ? theirs.revision : null;
        const row = state.rows.get(key);
        const form = row?.querySelector("form");
        if (form) form.requestSubmit();
      },
      { small: true, kind: "danger" },
    );
    replace(
      box,
      h(
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
        theirs ? h("pre", { class: "value value-theirs", text: theirs.value }) : null,
        h("div", { class: "row-actions" }, useTheirs, keepMine),
      ),
    );
    if (theirs) {
      const item = state.items.find((i) => i.key === key);
      if (item) Object.assign(item, theirs);
    }
  }

  async function deleteItem(item) {
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
        h("pre", { class: "value value-removed", text: item.value }),
      ),
      confirmText: "Delete",
      danger: true,
      action: async () => {
        try {
          if (addressable(item.key)) {
            await api("DELETE", `${base}/items/${seg(item.key)}`, undefined, {
              ifMatch: item.revision,
            });
          } else {
            await api("PATCH", `${base}/items`, { delete: [item.key] });
          }
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
    if (!ok) {
      await reload();
      return;
    }
    state.editing.delete(item.key);
    flash(`Deleted “${item.key}” from the draft.`, "success", { timeout: 4000 });
    await reload();
  }

  function openAdd() {
    const key = field("Key", {
      required: true,
      autocomplete: "off",
      spellcheck: "false",
      maxlength: 255,
      placeholder: "db.url",
      class: "mono",
      hint: "Letters, digits and _ . : / - (case-sensitive).",
    });
    const value = field("Value", { multiline: true, rows: 3, class: "mono", spellcheck: "false" });
    const comment = field("Comment", { maxlength: 1000, placeholder: "Why this value (optional)" });
    const save = button("Save", null, { kind: "primary", type: "submit" });
    const form = h(
      "form",
      { class: "form-grid", novalidate: true },
      key.wrap,
      comment.wrap,
      h("div", { class: "span-2" }, value.wrap),
      h(
        "div",
        { class: "form-actions span-2" },
        button("Cancel", () => {
          addPanel.hidden = true;
          addBtn.focus();
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
      try {
        await busy(save, () => putItem(k, value.input.value, comment.input.value, null, true));
        flash(`Added “${k}”.`, "success", { timeout: 4000 });
        addPanel.hidden = true;
        await reload();
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
    replace(addPanel, h("h2", { class: "card-title", text: "Add item" }), form);
    addPanel.hidden = false;
    key.input.focus();
  }

  async function openPublish() {
    let diff;
    try {
      diff = await api("GET", `${base}/diff`);
    } catch (error) {
      showError(error, "Could not load the changes");
      return;
    }
    state.diff = diff;
    renderStatus();
    const c = diffCounts(diff);
    const next = (diff.base_version || 0) + 1;
    const release = await confirmAction({
      title: `Publish ${app}/${env}`,
      wide: true,
      body: h(
        "div",
        { class: "stack" },
        h("p", {
          class: "muted",
          text: diff.base_version
            ? `Changes since v${diff.base_version} (${diffSummary(diff)}). Clients get them as v${next} right away.`
            : `The first release, v1, with ${plural(c.added, "item")}. Clients get it right away.`,
        }),
        h(
          "div",
          { class: "dialog-diff" },
          diffView(diff, { emptyText: "The draft equals the latest release: nothing to publish." }),
        ),
      ),
      comment: { label: "Release comment", placeholder: "What changes and why" },
      confirmText: "Publish",
      action: async ({ comment }) => {
        return ownRelease(app, env, () => api("POST", `${base}/releases`, { comment }));
      },
    });
    if (release) {
      flash(
        `Published ${app}/${env} v${release.version}${release.comment ? `: “${release.comment}”` : ""}.`,
        "success",
      );
      await reload();
    }
  }

  async function reload() {
    await load();
    renderStatus();
    renderTable();
  }

  ctx.refresh = reload;

  filter.input.addEventListener("input", applyFilter);
  await load();
  replace(
    root,
    statusBox,
    addPanel,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { class: "card-title" }, "Items ", countEl),
        h("div", { class: "card-actions" }, filter.wrap, addBtn),
      ),
      tableBox,
      removedBox,
    ),
  );
  renderStatus();
  renderTable();
}

// ---------------------------------------------------------------- history

function rollbackDialog(ctx, target) {
  const { app, env, base } = ctx;
  return (async () => {
    const [release, latest, draftDiff] = await Promise.all([
      api("GET", `${base}/releases/${target}`),
      ctx.latest ? api("GET", `${base}/releases/${ctx.latest}`) : Promise.resolve({ items: {} }),
      api("GET", `${base}/diff`),
    ]);
    const change = diffMaps(latest.items, release.items);
    const dirty = diffCounts(draftDiff);
    const lose = dirty.added + dirty.changed + dirty.removed;
    const next = (ctx.latest || 0) + 1;
    const result = await confirmAction({
      title: `Roll back ${app}/${env} to v${target}?`,
      wide: true,
      body: h(
        "div",
        { class: "stack" },
        h("p", {
          text: `This publishes v${next} with the items of v${target}, and resets the draft to them. Clients get it right away.`,
        }),
        lose
          ? h("p", {
              class: "banner banner-warn",
              text: `The draft has unpublished changes (${diffSummary(draftDiff)}); rolling back discards them.`,
            })
          : null,
        h("h3", {
          class: "sub-title",
          text: `What clients will see change (v${ctx.latest} → v${next})`,
        }),
        h(
          "div",
          { class: "dialog-diff" },
          diffView(change, { emptyText: `v${target} has the same items as v${ctx.latest}.` }),
        ),
      ),
      comment: { label: "Comment", placeholder: `Roll back to v${target}` },
      confirmText: "Roll back",
      danger: true,
      action: async ({ comment }) => {
        const created = await ownRelease(app, env, () =>
          api("POST", `${base}/releases/${target}/rollback`, {
            comment: comment || `Roll back to v${target}`,
          }),
        );
        ctx.latest = created.version;
        return created;
      },
    });
    if (result) flash(`Rolled back ${app}/${env} to v${target} as v${result.version}.`, "success");
    return result;
  })();
}

async function historySection(root, ctx) {
  const { app, env, base } = ctx;
  let releases = [];
  let more = false;

  const fromSel = h("select", { id: uid("from") });
  const toSel = h("select", { id: uid("to") });
  const compareBtn = button("Compare", () => {
    const a = Number(fromSel.value);
    const b = Number(toSel.value);
    if (a && b)
      window.location.hash = `${envHref(app, env)}/compare/${Math.min(a, b)}/${Math.max(a, b)}`;
  });
  const compareBar = h(
    "form",
    { class: "compare-bar", novalidate: true },
    h(
      "div",
      { class: "field field-inline" },
      h("label", { for: fromSel.id, text: "From" }),
      fromSel,
    ),
    h("div", { class: "field field-inline" }, h("label", { for: toSel.id, text: "To" }), toSel),
    compareBtn,
  );
  compareBar.addEventListener("submit", (event) => {
    event.preventDefault();
    compareBtn.click();
  });
  const listBox = h("div", {});

  async function load(before) {
    const query = before ? `?limit=${HISTORY_PAGE}&before=${before}` : `?limit=${HISTORY_PAGE}`;
    const page = (await api("GET", `${base}/releases${query}`)).releases;
    more = page.length === HISTORY_PAGE;
    return page;
  }

  function fillSelects() {
    const keepFrom = fromSel.value;
    const keepTo = toSel.value;
    replace(
      fromSel,
      releases.map((r) => h("option", { value: r.version, text: `v${r.version}` })),
    );
    replace(
      toSel,
      releases.map((r) =>
        h("option", {
          value: r.version,
          text: `v${r.version}${r.version === ctx.latest ? " (latest)" : ""}`,
        }),
      ),
    );
    fromSel.value =
      keepFrom || String(releases.length > 1 ? releases[1].version : releases[0].version);
    toSel.value = keepTo || String(releases[0].version);
  }

  function render() {
    if (!releases.length) {
      compareBar.hidden = true;
      replace(
        listBox,
        emptyState(
          "Nothing published yet",
          "Releases appear here once you publish the draft. Clients get nothing from this env until then.",
          h("a", { class: "btn btn-primary", href: envHref(app, env), text: "Go to the draft" }),
        ),
      );
      return;
    }
    compareBar.hidden = releases.length < 2;
    fillSelects();
    const latest = releases[0].version;
    replace(
      listBox,
      table(
        [
          {
            label: "Version",
            cls: "col-version",
            cell: (r) =>
              h(
                "span",
                { class: "version-cell" },
                h("a", {
                  class: "version",
                  href: `${envHref(app, env)}/releases/${r.version}`,
                  text: `v${r.version}`,
                }),
                r.version === latest ? badge("latest", "ok") : null,
                r.rollback_of ? badge(`rollback of v${r.rollback_of}`, "muted") : null,
              ),
          },
          {
            label: "Comment",
            cell: (r) =>
              r.comment
                ? h("span", { text: r.comment })
                : h("span", { class: "muted", text: "No comment" }),
          },
          { label: "Author", cell: (r) => h("span", { text: r.author }) },
          { label: "Published", cell: (r) => timeEl(r.created_at) },
          {
            label: "Actions",
            cls: "col-actions",
            cell: (r) =>
              h(
                "div",
                { class: "row-actions" },
                h("a", {
                  class: "btn btn-small",
                  href: `${envHref(app, env)}/releases/${r.version}`,
                  text: "View",
                  "aria-label": `View v${r.version}`,
                }),
                r.version !== latest
                  ? button(
                      "Roll back",
                      async () => {
                        if (await rollbackDialog(ctx, r.version)) await reload();
                      },
                      { small: true, "aria-label": `Roll back to v${r.version}` },
                    )
                  : null,
              ),
          },
        ],
        releases,
        {
          caption: `Releases of ${app}/${env}`,
          rowAttrs: (r) => ({ dataset: { version: r.version } }),
        },
      ),
      more
        ? h(
            "div",
            { class: "load-more" },
            button("Load older releases", async (event) => {
              const older = await busy(event.currentTarget, () =>
                load(releases[releases.length - 1].version),
              );
              releases = releases.concat(older);
              render();
            }),
          )
        : null,
    );
  }

  async function reload() {
    releases = await load();
    if (releases.length) ctx.latest = releases[0].version;
    render();
  }
  ctx.refresh = reload;

  await reload();
  replace(root, card("Releases", [compareBar], listBox));
}

async function releaseSection(root, ctx, version) {
  const { app, env, base } = ctx;
  const release = await api("GET", `${base}/releases/${version}`);
  const box = h("div", {});

  const render = () => {
    const isLatest = release.version === ctx.latest;
    const entries = Object.entries(release.items).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    replace(
      box,
      h(
        "section",
        { class: "card" },
        h(
          "div",
          { class: "card-head" },
          h(
            "h2",
            { class: "card-title" },
            `Release v${release.version} `,
            isLatest ? badge("latest", "ok") : null,
            release.rollback_of ? badge(`rollback of v${release.rollback_of}`, "muted") : null,
          ),
          h(
            "div",
            { class: "card-actions" },
            h("a", { class: "btn", href: envHref(app, env, "history"), text: "All releases" }),
            !isLatest && ctx.latest
              ? h("a", {
                  class: "btn",
                  href: `${envHref(app, env)}/compare/${release.version}/${ctx.latest}`,
                  text: `Compare with v${ctx.latest}`,
                })
              : null,
            !isLatest
              ? button(
                  "Roll back",
                  async () => {
                    if (await rollbackDialog(ctx, release.version))
                      window.location.hash = envHref(app, env, "history");
                  },
                  { kind: "danger" },
                )
              : null,
          ),
        ),
        h(
          "dl",
          { class: "meta" },
          h("div", {}, h("dt", { text: "Author" }), h("dd", { text: release.author })),
          h("div", {}, h("dt", { text: "Published" }), h("dd", {}, exactTime(release.created_at))),
          h(
            "div",
            {},
            h("dt", { text: "Comment" }),
            h("dd", { text: release.comment || "No comment" }),
          ),
          h(
            "div",
            {},
            h("dt", { text: "Checksum" }),
            h("dd", {}, h("code", { class: "checksum", text: release.checksum })),
          ),
        ),
        entries.length
          ? table(
              [
                {
                  label: "Key",
                  cls: "col-key",
                  cell: ([k]) => h("code", { class: "key", text: k }),
                },
                {
                  label: "Value",
                  cls: "col-value",
                  cell: ([, v]) => h("pre", { class: "value", text: v }),
                },
              ],
              entries,
              { caption: `Items of v${release.version}` },
            )
          : emptyState("This release has no items", "Clients reading it get an empty config."),
      ),
    );
  };
  ctx.refresh = async () => render();
  render();
  replace(root, box);
}

async function compareSection(root, ctx, a, b) {
  const { app, env, base } = ctx;
  const [left, right, list] = await Promise.all([
    api("GET", `${base}/releases/${a}`),
    api("GET", `${base}/releases/${b}`),
    api("GET", `${base}/releases?limit=200`),
  ]);
  const fromSel = h(
    "select",
    { id: uid("from") },
    list.releases.map((r) => h("option", { value: r.version, text: `v${r.version}` })),
  );
  const toSel = h(
    "select",
    { id: uid("to") },
    list.releases.map((r) => h("option", { value: r.version, text: `v${r.version}` })),
  );
  fromSel.value = String(a);
  toSel.value = String(b);
  const go = () => {
    window.location.hash = `${envHref(app, env)}/compare/${fromSel.value}/${toSel.value}`;
  };
  const bar = h(
    "form",
    { class: "compare-bar", novalidate: true },
    h(
      "div",
      { class: "field field-inline" },
      h("label", { for: fromSel.id, text: "From" }),
      fromSel,
    ),
    h("div", { class: "field field-inline" }, h("label", { for: toSel.id, text: "To" }), toSel),
    button("Compare", null, { type: "submit" }),
  );
  bar.addEventListener("submit", (event) => {
    event.preventDefault();
    go();
  });
  const diff = diffMaps(left.items, right.items);
  const side = (r) =>
    h(
      "div",
      { class: "compare-side" },
      h("a", {
        class: "version",
        href: `${envHref(app, env)}/releases/${r.version}`,
        text: `v${r.version}`,
      }),
      h("span", { class: "muted" }, ` by ${r.author}, `, timeEl(r.created_at)),
      r.comment ? h("p", { class: "compare-comment", text: r.comment }) : null,
    );
  ctx.refresh = async () => {};
  replace(
    root,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { class: "card-title", text: `Compare v${a} → v${b}` }),
        h("div", { class: "card-actions" }, bar),
      ),
      h(
        "div",
        { class: "compare-head" },
        side(left),
        h("span", { class: "compare-arrow", "aria-hidden": "true", text: "→" }),
        side(right),
      ),
      h("p", { class: "muted", text: `Going from v${a} to v${b}: ${diffSummary(diff)}.` }),
      diffView(diff, { emptyText: `v${a} and v${b} have the same items.` }),
    ),
  );
}
