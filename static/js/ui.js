// Shared pieces: messages, dialogs, empty states, field errors, the diff view.

import { append, clear, h, plural, replace, uid } from "./dom.js";

const alerts = () => document.getElementById("alerts");
const statusRegion = () => document.getElementById("status");

/**
 * Show a message. Errors go to the role="alert" region and stay until dismissed or the
 * next navigation; other kinds go to the role="status" region and fade after a while.
 */
export function flash(message, kind = "error", { title, timeout } = {}) {
  const region = kind === "error" ? alerts() : statusRegion();
  const banner = h(
    "div",
    { class: `banner banner-${kind}` },
    h(
      "div",
      { class: "banner-text" },
      title ? h("strong", { text: title }) : null,
      title ? " " : null,
      message,
    ),
  );
  const dismiss = h("button", {
    type: "button",
    class: "btn btn-ghost btn-small",
    text: "Dismiss",
    onclick: () => banner.remove(),
  });
  banner.append(dismiss);
  region.append(banner);
  // Keep the stack short: the newest messages matter, older ones would cover the page.
  while (region.children.length > 3) region.firstElementChild.remove();
  const wait = timeout ?? (kind === "error" ? 0 : 8000);
  if (wait > 0) setTimeout(() => banner.remove(), wait);
  return banner;
}

/** Remove error messages (on navigation). */
export function clearAlerts() {
  clear(alerts());
}

/** Show an API error in the alert region. */
export function showError(error, prefix) {
  const text = error?.message ? error.message : String(error);
  return flash(prefix ? `${prefix}: ${text}` : text, "error");
}

/** An empty state: what is missing and what to do next. */
export function emptyState(title, text, ...actions) {
  return h(
    "div",
    { class: "empty" },
    h("p", { class: "empty-title", text: title }),
    text ? h("p", { class: "empty-text", text }) : null,
    actions.length ? h("div", { class: "empty-actions" }, actions) : null,
  );
}

/** The page an operator without the admin scope sees instead of an admin page. */
export function needsAdmin(main, what) {
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

/** A labelled form field; returns { wrap, input, error, id }. */
export function field(label, { type = "text", multiline = false, hint, ...attrs } = {}) {
  const id = uid("f");
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const input = multiline
    ? h("textarea", { id, rows: attrs.rows || 3, ...attrs })
    : h("input", { id, type, ...attrs });
  input.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const wrap = h(
    "div",
    { class: "field" },
    h("label", { for: id, text: label }),
    input,
    hint ? h("p", { class: "hint", id: hintId, text: hint }) : null,
    error,
  );
  return { wrap, input, error, id };
}

/** A labelled checkbox with an optional hint; returns { wrap, input }. */
export function checkbox(label, { checked = false, hint, ...attrs } = {}) {
  const id = uid("c");
  const hintId = hint ? `${id}-hint` : null;
  const input = h("input", { id, type: "checkbox", checked, "aria-describedby": hintId, ...attrs });
  const wrap = h(
    "div",
    { class: "check" },
    input,
    h("label", { for: id, text: label }),
    hint ? h("p", { class: "hint", id: hintId, text: hint }) : null,
  );
  return { wrap, input };
}

/** Show or clear a validation message next to a field. */
export function setFieldError(f, message) {
  if (message) {
    f.error.textContent = message;
    f.error.hidden = false;
    f.error.setAttribute("role", "alert");
    f.input.setAttribute("aria-invalid", "true");
  } else {
    f.error.textContent = "";
    f.error.hidden = true;
    f.error.removeAttribute("role");
    f.input.removeAttribute("aria-invalid");
  }
}

/** A button with visible text. */
export function button(
  text,
  onclick,
  { kind = "", small = false, type = "button", ...attrs } = {},
) {
  const classes = ["btn", kind ? `btn-${kind}` : "", small ? "btn-small" : ""].filter(Boolean);
  return h("button", { type, class: classes.join(" "), text, onclick, ...attrs });
}

/** Disable a button while an action runs; re-enable after. */
export async function busy(btn, action) {
  const wasDisabled = btn.disabled;
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    btn.disabled = wasDisabled;
    btn.removeAttribute("aria-busy");
  }
}

/**
 * The "Load older ..." button under a list: fetchOlder() runs while the button is busy, then
 * onLoaded(its result).
 */
export function loadMore(text, fetchOlder, onLoaded) {
  return h(
    "div",
    { class: "load-more" },
    button(text, async (event) => onLoaded(await busy(event.currentTarget, fetchOlder))),
  );
}

/**
 * A modal dialog. build(dialog, close) fills the dialog; close(value) resolves the promise.
 * Escape or "Cancel" resolves with null.
 */
export function openDialog({ title, wide = false, build }) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const dialog = h("dialog", {
      class: `dialog${wide ? " dialog-wide" : ""}`,
      "aria-labelledby": titleId,
    });
    let done = false;
    const opener = document.activeElement;
    const close = (value) => {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      // Back to the button that opened the dialog, when it is still on the page.
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(value);
    };
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(null);
    });
    append(dialog, h("h2", { id: titleId, class: "dialog-title", text: title }));
    const body = h("div", { class: "dialog-body" });
    dialog.append(body);
    document.body.append(dialog);
    build(body, close);
    dialog.showModal();
    const first = dialog.querySelector("[autofocus], textarea, input, select");
    if (first) first.focus();
  });
}

/** A dialog-local error region. */
export function dialogAlert() {
  return h("div", { class: "alert-region", role: "alert" });
}

/** Put an error message in a dialog-local alert region. */
export function setAlert(region, message) {
  clear(region);
  if (message) region.append(h("p", { class: "banner banner-error", text: message }));
}

/**
 * Ask before doing something. Options: confirmText, danger, typed (a word to type first),
 * comment (a label: adds a comment field), body (nodes). Resolves to
 * { comment } when confirmed, null otherwise. action(values) runs inside the dialog; an
 * error it throws is shown there and the dialog stays open.
 */
export function confirmAction({
  title,
  body,
  confirmText,
  danger = false,
  typed,
  comment,
  action,
  wide,
}) {
  return openDialog({
    title,
    wide,
    build(root, close) {
      const alert = dialogAlert();
      const form = h("form", { class: "stack", novalidate: true });
      append(form, body || null);
      let typedField = null;
      let commentField = null;
      if (typed) {
        typedField = field(`Type ${typed} to confirm`, {
          autocomplete: "off",
          spellcheck: "false",
        });
        form.append(typedField.wrap);
      }
      if (comment) {
        commentField = field(comment.label || "Comment", {
          multiline: true,
          rows: 2,
          placeholder: comment.placeholder || "",
          maxlength: 1000,
        });
        form.append(commentField.wrap);
      }
      const ok = button(confirmText, null, { kind: danger ? "danger" : "primary", type: "submit" });
      const cancel = button("Cancel", () => close(null));
      if (typedField) {
        ok.disabled = true;
        typedField.input.addEventListener("input", () => {
          ok.disabled = typedField.input.value !== typed;
        });
      }
      form.append(alert, h("div", { class: "dialog-actions" }, cancel, ok));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (typedField && typedField.input.value !== typed) return;
        const values = { comment: commentField ? commentField.input.value : "" };
        if (!action) {
          close(values);
          return;
        }
        try {
          const result = await busy(ok, () => action(values));
          close(result === undefined ? values : result);
        } catch (error) {
          setAlert(alert, error.message || String(error));
        }
      });
      root.append(form);
    },
  });
}

/** Counts of a diff: { added, changed, removed }. */
export function diffCounts(diff) {
  return {
    added: Object.keys(diff.added || {}).length,
    changed: Object.keys(diff.changed || {}).length,
    removed: Object.keys(diff.removed || {}).length,
  };
}

/** "2 added · 1 changed · 1 removed". */
export function diffSummary(diff) {
  const c = diffCounts(diff);
  const parts = [];
  if (c.added) parts.push(`${c.added} added`);
  if (c.changed) parts.push(`${c.changed} changed`);
  if (c.removed) parts.push(`${c.removed} removed`);
  return parts.length ? parts.join(" · ") : "no changes";
}

/** Compare two {key: value} maps the way the server does. */
export function diffMaps(base, next) {
  const added = {};
  const changed = {};
  const removed = {};
  for (const key of Object.keys(next).sort()) {
    if (!(key in base)) added[key] = next[key];
    else if (base[key] !== next[key]) changed[key] = { old: base[key], new: next[key] };
  }
  for (const key of Object.keys(base).sort()) {
    if (!(key in next)) removed[key] = base[key];
  }
  return { added, changed, removed };
}

const HIDDEN_WHY = "A secret: your role does not see its value (publishers, owners and admins do).";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  return el;
}

/** A small padlock drawn inline (no icon font, no emoji: neither is on every machine). */
function lockIcon() {
  const svg = svgEl("svg", {
    class: "lock-icon",
    viewBox: "0 0 16 16",
    width: 10,
    height: 10,
    "aria-hidden": "true",
    focusable: "false",
  });
  svg.append(
    svgEl("path", {
      d: "M4.5 7V5a3.5 3.5 0 0 1 7 0v2",
      fill: "none",
      stroke: "currentColor",
      "stroke-width": 2,
    }),
    svgEl("rect", { x: 2.5, y: 7, width: 11, height: 8, rx: 1.5, fill: "currentColor" }),
  );
  return svg;
}

/** The lock badge of a secret item. */
export function secretBadge() {
  return h(
    "span",
    { class: "badge badge-secret", title: "Secret: stored encrypted" },
    lockIcon(),
    "secret",
  );
}

/**
 * A secret's value: "hidden" when the reader may not see it (value null), else masked with a
 * Reveal / Hide toggle. The clear value stays in this closure until revealed: never in the
 * DOM while masked, nor in an attribute.
 */
export function secretValue(value, { cls = "", label = "secret" } = {}) {
  if (value === null || value === undefined) {
    return h("span", {
      class: `secret-hidden ${cls}`.trim(),
      title: HIDDEN_WHY,
      text: "hidden",
    });
  }
  const shown = h("span", { class: "secret-shown" });
  let revealed = false;
  const toggle = h("button", {
    type: "button",
    class: "btn btn-ghost btn-small secret-toggle",
    "aria-label": `Reveal ${label}`,
    text: "Reveal",
  });
  const mask = () => {
    replace(
      shown,
      h("span", { class: "secret-mask", "aria-hidden": "true", text: "•••••" }),
      h("span", { class: "sr-only", text: "masked" }),
    );
    revealed = false;
    toggle.textContent = "Reveal";
    toggle.setAttribute("aria-label", `Reveal ${label}`);
  };
  toggle.addEventListener("click", () => {
    if (revealed) {
      mask();
      return;
    }
    replace(
      shown,
      h("pre", { class: `value ${cls}`.trim(), text: value === "" ? "(empty)" : value }),
    );
    revealed = true;
    toggle.textContent = "Hide";
    toggle.setAttribute("aria-label", `Hide ${label}`);
  });
  mask();
  return h("span", { class: "secret-value" }, shown, toggle);
}

function valueBlock(value, cls, key, secrets) {
  if (value === null || secrets?.has(key)) return secretValue(value, { cls, label: key });
  return h("pre", { class: `value ${cls}`, text: value === "" ? "(empty)" : value });
}

/**
 * The diff as a list: added, changed (old and new), removed; values as text. The values of
 * the keys in secrets (a Set), and null values (secrets the reader may not see), are masked.
 */
export function diffView(diff, { emptyText = "No differences.", secrets: known = null } = {}) {
  // The server names a diff's secret keys; the page may know more (keys it saw as secret).
  const secrets = new Set([...(known ?? []), ...(diff.secret_keys ?? [])]);
  const c = diffCounts(diff);
  if (!c.added && !c.changed && !c.removed) {
    return h("p", { class: "diff-empty", text: emptyText });
  }
  const list = h("div", { class: "diff" });
  const section = (kind, label, count, rows) => {
    if (!count) return;
    list.append(
      h(
        "section",
        { class: `diff-section diff-${kind}` },
        h(
          "h3",
          { class: "diff-heading" },
          h("span", { class: `diff-mark diff-mark-${kind}`, "aria-hidden": "true" }),
          `${label} (${count})`,
        ),
        h("ul", { class: "diff-list" }, rows),
      ),
    );
  };
  section(
    "added",
    "Added",
    c.added,
    Object.entries(diff.added).map(([key, value]) =>
      h(
        "li",
        { class: "diff-row" },
        h("code", { class: "diff-key", text: key }),
        valueBlock(value, "value-added", key, secrets),
      ),
    ),
  );
  section(
    "changed",
    "Changed",
    c.changed,
    Object.entries(diff.changed).map(([key, pair]) =>
      h(
        "li",
        { class: "diff-row" },
        h("code", { class: "diff-key", text: key }),
        h(
          "div",
          { class: "diff-pair" },
          h("span", { class: "diff-label", text: "old" }),
          valueBlock(pair.old, "value-removed", key, secrets),
          h("span", { class: "diff-label", text: "new" }),
          valueBlock(pair.new, "value-added", key, secrets),
        ),
      ),
    ),
  );
  section(
    "removed",
    "Removed",
    c.removed,
    Object.entries(diff.removed).map(([key, value]) =>
      h(
        "li",
        { class: "diff-row" },
        h("code", { class: "diff-key", text: key }),
        valueBlock(value, "value-removed", key, secrets),
      ),
    ),
  );
  return list;
}

/** A small status pill. */
export function badge(text, kind = "muted", attrs = {}) {
  return h("span", { class: `badge badge-${kind}`, text, ...attrs });
}

/** A card with a heading row (title + actions) and a body. */
export function card(title, actions, ...body) {
  return h(
    "section",
    { class: "card" },
    title || actions?.length
      ? h(
          "div",
          { class: "card-head" },
          title ? h("h2", { class: "card-title", text: title }) : h("span"),
          h("div", { class: "card-actions" }, actions || []),
        )
      : null,
    body,
  );
}

/** The page heading with optional breadcrumb, subtitle and actions. */
export function pageHead({ crumbs = [], title, subtitle, actions = [], extra }) {
  return h(
    "div",
    { class: "page-head" },
    crumbs.length
      ? h(
          "nav",
          { class: "crumbs", "aria-label": "Breadcrumb" },
          h(
            "ol",
            {},
            crumbs.map(([label, href]) =>
              h(
                "li",
                {},
                href
                  ? h("a", { href, text: label })
                  : h("span", { "aria-current": "page", text: label }),
              ),
            ),
          ),
        )
      : null,
    h(
      "div",
      { class: "page-title-row" },
      h(
        "div",
        { class: "page-title-wrap" },
        h("h1", { class: "page-title", tabindex: "-1", text: title }),
        extra || null,
      ),
      actions.length ? h("div", { class: "page-actions" }, actions) : null,
    ),
    subtitle ? h("p", { class: "page-subtitle", text: subtitle }) : null,
  );
}

/** A table cell; one wrapper inside so that stacked (phone) rows lay out label and content. */
export function cell(cls, label, ...children) {
  return h("td", { class: cls, "data-label": label }, h("div", { class: "cell" }, children));
}

/** A generic table: columns = [{ label, cell: (row) => node|string, cls }]. */
export function table(columns, rows, { caption, rowAttrs } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table" },
      caption ? h("caption", { class: "sr-only", text: caption }) : null,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((col) => h("th", { scope: "col", class: col.cls || null, text: col.label })),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            rowAttrs ? rowAttrs(row) : {},
            columns.map((col) => cell(col.cls || null, col.label, col.cell(row))),
          ),
        ),
      ),
    ),
  );
}

export { plural };

/** A dialog's buttons: Cancel (closes it with null) and the given ones. */
export function dialogActions(close, ...buttons) {
  return h(
    "div",
    { class: "dialog-actions" },
    button("Cancel", () => close(null)),
    ...buttons,
  );
}
