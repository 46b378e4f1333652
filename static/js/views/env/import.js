// Importing a file into the draft: paste or pick it, preview what it changes (a dry run), apply.

import { ApiError, api } from "../../api.js";
import { h, replace, uid } from "../../dom.js";
import {
  busy,
  button,
  dialogActions,
  dialogAlert,
  field,
  flash,
  openDialog,
  secretValue,
  setAlert,
} from "../../ui.js";

const FORMATS = [
  ["json", "JSON (one flat object of strings)"],
  ["properties", "Java properties"],
  ["yaml", "YAML (one flat mapping of strings)"],
  ["dotenv", "dotenv (NAME=value lines)"],
];

/** The format a file name suggests, or null. */
export function guessFormat(name) {
  const n = name.toLowerCase();
  if (n.endsWith(".json")) return "json";
  if (n.endsWith(".properties")) return "properties";
  if (n.endsWith(".yaml") || n.endsWith(".yml")) return "yaml";
  if (n.endsWith(".env") || n.startsWith(".env") || n === "env") return "dotenv";
  return null;
}

/**
 * The file's values as far as the page reads them itself (json, and properties or dotenv
 * files without escapes or quoting), to show old → new in the preview; null otherwise. The
 * server parses the file: this only labels what its answer lists.
 */
function parseLocally(text, format) {
  if (format === "json") {
    try {
      const data = JSON.parse(text);
      if (!data || typeof data !== "object" || Array.isArray(data)) return null;
      return Object.values(data).every((v) => typeof v === "string") ? data : null;
    } catch {
      return null;
    }
  }
  if (format !== "properties" && format !== "dotenv") return null;
  const values = {};
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = raw.trimStart();
    if (!line || line.startsWith("#") || (format === "properties" && line.startsWith("!")))
      continue;
    if (line.includes("\\")) return null;
    if (format === "properties") {
      const m = /^([^=:\s]+)\s*[=:]?\s*(.*)$/.exec(line);
      if (!m) return null;
      values[m[1]] = m[2];
    } else {
      const m = /^(?:export\s+)?([^=\s]+)\s*=\s*(.*)$/.exec(line);
      if (!m || /^["']|\s#/.test(m[2])) return null;
      values[m[1]] = m[2].trimEnd();
    }
  }
  return values;
}

function shownValue(value, key, secret, cls) {
  if (value === undefined) return null;
  if (secret || value === null) return secretValue(value, { cls, label: key });
  return h("pre", { class: `value ${cls}`, text: value === "" ? "(empty)" : value });
}

/** What the dry run says would change, with the values the page knows. */
function previewView(answer, items, parsed) {
  const byKey = new Map(items.map((i) => [i.key, i]));
  const total = answer.added.length + answer.changed.length + answer.removed.length;
  if (!total)
    return h("p", {
      class: "diff-empty",
      text: "The file matches the draft: importing it changes nothing.",
    });
  const list = h("div", { class: "diff import-preview" });
  const section = (kind, label, keys, row) => {
    if (!keys.length) return;
    list.append(
      h(
        "section",
        { class: `diff-section diff-${kind}`, dataset: { section: kind } },
        h(
          "h3",
          { class: "diff-heading" },
          h("span", { class: `diff-mark diff-mark-${kind}`, "aria-hidden": "true" }),
          `${label} (${keys.length})`,
        ),
        h(
          "ul",
          { class: "diff-list" },
          keys.map((key) =>
            h(
              "li",
              { class: "diff-row", dataset: { key } },
              h("code", { class: "diff-key", text: key }),
              row(key, byKey.get(key)),
            ),
          ),
        ),
      ),
    );
  };
  const fileValue = (key) => (parsed && key in parsed ? parsed[key] : undefined);
  section("added", "Would add", answer.added, (key) =>
    shownValue(fileValue(key), key, false, "value-added"),
  );
  section("changed", "Would change", answer.changed, (key, item) => {
    const secret = Boolean(item?.secret);
    const next = fileValue(key);
    return h(
      "div",
      { class: "diff-pair" },
      h("span", { class: "diff-label", text: "old" }),
      shownValue(item ? item.value : undefined, key, secret, "value-removed"),
      next === undefined ? null : h("span", { class: "diff-label", text: "new" }),
      shownValue(next, key, secret, "value-added"),
    );
  });
  section("removed", "Would delete", answer.removed, (key, item) =>
    shownValue(item ? item.value : undefined, key, Boolean(item?.secret), "value-removed"),
  );
  return list;
}

/** "2 added · 1 changed · 1 removed" of an import answer. */
function summary(answer) {
  const parts = [];
  if (answer.added.length) parts.push(`${answer.added.length} added`);
  if (answer.changed.length) parts.push(`${answer.changed.length} changed`);
  if (answer.removed.length) parts.push(`${answer.removed.length} removed`);
  return parts.length ? parts.join(" · ") : "no changes";
}

/** The message for a refused import: the server's own (it names the line), 413 said plainly. */
function refusal(error) {
  if (error.status === 413) return `Too large to import: ${error.message}`;
  return error.message;
}

/**
 * The import dialog of the draft (state.items is the draft the page shows). Nothing is
 * written before Apply; resolves to the import's answer, or null when closed.
 */
export function importDialog(ctx, state) {
  const { app, env, base } = ctx;
  return openDialog({
    title: `Import into ${app}/${env}`,
    wide: true,
    build(root, close) {
      const alert = dialogAlert();
      const fileId = uid("file");
      const fileInput = h("input", {
        id: fileId,
        type: "file",
        accept: ".json,.properties,.yaml,.yml,.env,text/plain,application/json",
      });
      const fileName = h("span", { class: "muted import-file-name" });
      const text = field("File content", {
        multiline: true,
        rows: 6,
        class: "mono",
        spellcheck: "false",
        autocomplete: "off",
        placeholder: "Paste the file here, or pick a file above.",
      });
      const formatId = uid("fmt");
      const format = h(
        "select",
        { id: formatId },
        FORMATS.map(([value, label]) => h("option", { value, text: label })),
      );
      const modeName = uid("mode");
      const modeOption = (value, label, hint, checked) => {
        const id = uid("m");
        return h(
          "div",
          { class: "check import-mode" },
          h("input", { id, type: "radio", name: modeName, value, checked }),
          h("label", { for: id, text: label }),
          h("p", { class: "hint", text: hint }),
        );
      };
      const modes = h(
        "fieldset",
        { class: "field import-modes" },
        h("legend", { text: "Mode" }),
        modeOption("merge", "Merge", "Set the file's keys; every other key stays as it is.", true),
        modeOption(
          "replace",
          "Replace",
          "The draft becomes exactly the file: keys not in the file are deleted from the draft.",
          false,
        ),
      );
      const previewBox = h("div", {
        class: "dialog-diff import-preview-box",
        "aria-live": "polite",
      });
      const previewBtn = button("Preview", null, { type: "submit" });
      const applyBtn = button("Apply", null, { kind: "primary", disabled: true });
      // What the last successful preview was of: Apply writes exactly that, once previewed.
      let previewed = null;

      const mode = () => root.querySelector(`input[name="${modeName}"]:checked`).value;
      const request = () => ({ body: text.input.value, format: format.value, mode: mode() });
      const sameRequest = (a, b) =>
        a && b && a.body === b.body && a.format === b.format && a.mode === b.mode;
      const invalidate = () => {
        previewed = null;
        applyBtn.disabled = true;
        replace(previewBox);
        setAlert(alert, "");
      };
      const send = (req, dryRun) =>
        api(
          "POST",
          `${base}/import?format=${req.format}&mode=${req.mode}${dryRun ? "&dry_run=true" : ""}`,
          req.body,
          { contentType: req.format === "json" ? "application/json" : "text/plain; charset=utf-8" },
        );

      fileInput.addEventListener("change", async () => {
        const file = fileInput.files?.[0];
        if (!file) return;
        invalidate();
        text.input.value = await file.text();
        const guessed = guessFormat(file.name);
        if (guessed) format.value = guessed;
        fileName.textContent = guessed
          ? `Format from the file name: ${guessed}.`
          : "Pick the file's format below.";
      });
      text.input.addEventListener("input", invalidate);
      format.addEventListener("change", invalidate);
      modes.addEventListener("change", invalidate);

      const form = h("form", { class: "stack import-form", novalidate: true });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        invalidate();
        const req = request();
        if (!req.body.trim()) {
          setAlert(alert, "Paste the file's content or pick a file first.");
          text.input.focus();
          return;
        }
        try {
          const answer = await busy(previewBtn, () => send(req, true));
          if (!sameRequest(req, request())) return;
          previewed = req;
          replace(
            previewBox,
            h("p", {
              class: "strong",
              text: `Preview (nothing written yet): ${summary(answer)}.`,
            }),
            previewView(answer, state.items, parseLocally(req.body, req.format)),
          );
          applyBtn.disabled = false;
          previewBox.scrollIntoView({ block: "nearest" });
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          setAlert(alert, refusal(error));
        }
      });
      applyBtn.addEventListener("click", async () => {
        if (!sameRequest(previewed, request())) return;
        try {
          const answer = await busy(applyBtn, () => send(previewed, false));
          const n = answer.added.length + answer.changed.length + answer.removed.length;
          flash(
            n
              ? `Imported into ${app}/${env}: ${summary(answer)}.`
              : `Nothing to import: the draft of ${app}/${env} already holds the file.`,
            "success",
          );
          close(answer);
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          setAlert(alert, refusal(error));
        }
      });

      form.append(
        h(
          "div",
          { class: "field" },
          h("label", { for: fileId, text: "File" }),
          h("div", { class: "import-file" }, fileInput, fileName),
        ),
        text.wrap,
        h(
          "div",
          { class: "import-options" },
          h("div", { class: "field" }, h("label", { for: formatId, text: "Format" }), format),
          modes,
        ),
        alert,
        previewBox,
        dialogActions(close, previewBtn, applyBtn),
      );
      root.append(form);
    },
  });
}
