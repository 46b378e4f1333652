// API tokens: create (the secret shown once), list, revoke.

import { ApiError, api, me } from "../api.js";
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
  needsAdmin,
  pageHead,
  setFieldError,
  showError,
  table,
} from "../ui.js";

/** Show a new token's secret once in box, with Copy and Done. */
function showSecret(box, created) {
  const secret = field(`Secret of ${created.name}`, {
    value: created.token,
    readonly: true,
    class: "mono",
    spellcheck: "false",
  });
  const copied = h("span", { class: "copied", role: "status" });
  const copy = button(
    "Copy",
    async () => {
      secret.input.select();
      let done = false;
      try {
        await navigator.clipboard.writeText(created.token);
        done = true;
      } catch {
        // No clipboard API (permission, insecure origin): copy the selection instead.
        done = document.execCommand("copy");
      }
      copied.textContent = done ? "Copied." : "Selected: press Ctrl+C to copy.";
    },
    { kind: "primary" },
  );
  replace(
    box,
    h(
      "div",
      { class: "secret-panel" },
      h("p", {
        class: "strong",
        text: `Token ${created.name} created. Copy the secret now: it is shown once and stored only as a hash.`,
      }),
      h("div", { class: "secret-row" }, secret.wrap, copy, copied),
      button("Done", () => replace(box), { small: true }),
    ),
  );
  secret.input.focus();
  secret.input.select();
}

/** #/tokens */
export async function tokensView(main) {
  if (!me.admin) return needsAdmin(main, "Tokens");
  let tokens = (await api("GET", "/tokens")).tokens;

  const name = field("Token name", {
    placeholder: "ci-deploy",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
  });
  const scopes = field("Scopes", {
    placeholder: "read:checkout write:checkout",
    autocomplete: "off",
    spellcheck: "false",
    hint: "Space-separated: admin, read:APP (read and watch), write:APP (edit, publish, roll back).",
  });
  const create = button("Create token", null, { kind: "primary", type: "submit" });
  const secretBox = h("div", {});
  const form = h(
    "form",
    { class: "form-grid", novalidate: true },
    name.wrap,
    scopes.wrap,
    h("div", { class: "form-actions span-2" }, create),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(name, "");
    setFieldError(scopes, "");
    const body = {
      name: name.input.value.trim(),
      scopes: scopes.input.value.split(/[\s,]+/).filter(Boolean),
    };
    try {
      const created = await busy(create, () => api("POST", "/tokens", body));
      name.input.value = "";
      scopes.input.value = "";
      showSecret(secretBox, created);
      await reload();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.code === "invalid_scope") setFieldError(scopes, error.message);
      else if (error.status === 400 || error.status === 409) setFieldError(name, error.message);
      else showError(error, "Could not create the token");
    }
  });

  const listBox = h("div", {});
  const listTitle = h("h2", { class: "card-title" });
  const render = () => {
    listTitle.textContent = `API tokens (${tokens.filter((t) => !t.revoked_at).length} active)`;
    if (!tokens.length) {
      replace(
        listBox,
        emptyState(
          "No API tokens yet",
          "Create one for each service or pipeline that reads or changes config, with the narrowest scopes it needs.",
        ),
      );
      return;
    }
    const sorted = tokens
      .slice()
      .sort((a, b) => (a.revoked_at ? 1 : 0) - (b.revoked_at ? 1 : 0) || b.id - a.id);
    replace(
      listBox,
      table(
        [
          { label: "Name", cell: (t) => h("strong", { text: t.name }) },
          {
            label: "Scopes",
            cell: (t) =>
              h(
                "span",
                { class: "chips" },
                t.scopes.map((s) => h("code", { class: "chip chip-static", text: s })),
              ),
          },
          { label: "Created by", cell: (t) => h("span", { text: t.owner }) },
          { label: "Created", cell: (t) => timeEl(t.created_at) },
          {
            label: "Status",
            cell: (t) =>
              t.revoked_at
                ? h("span", {}, badge("revoked", "danger"), " ", timeEl(t.revoked_at))
                : badge("active", "ok"),
          },
          {
            label: "Actions",
            cls: "col-actions",
            cell: (t) =>
              t.revoked_at
                ? h("span", { class: "muted", text: "—" })
                : button("Revoke", () => revoke(t), {
                    small: true,
                    kind: "ghost-danger",
                    "aria-label": `Revoke ${t.name}`,
                  }),
          },
        ],
        sorted,
        { caption: "API tokens", rowAttrs: (t) => ({ class: t.revoked_at ? "row-muted" : null }) },
      ),
    );
  };

  async function revoke(token) {
    const ok = await confirmAction({
      title: `Revoke ${token.name}?`,
      body: h("p", {
        text: `Every replica refuses ${token.name} from now on, and its open WebSockets are closed. Services using it stop getting config updates.`,
      }),
      confirmText: "Revoke",
      danger: true,
      action: async () => {
        await api("DELETE", `/tokens/${token.id}`);
      },
    });
    if (ok) {
      flash(`Token ${token.name} revoked.`, "success");
      await reload();
    }
  }

  async function reload() {
    tokens = (await api("GET", "/tokens")).tokens;
    render();
  }

  render();
  replace(
    main,
    pageHead({
      title: "Tokens",
      subtitle:
        "API tokens for services, scripts and pipelines. Operators sign in with a password instead.",
    }),
    card("New token", [], form, secretBox),
    h("section", { class: "card" }, h("div", { class: "card-head" }, listTitle), listBox),
  );
}
