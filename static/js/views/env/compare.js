// Comparing two releases: the From/To bar (on the history and on the comparison itself) and
// the comparison page.

import { api } from "../../api.js";
import { h, replace, timeEl, uid } from "../../dom.js";
import { compareHref, releaseHref } from "../../links.js";
import { button, diffMaps, diffSummary, diffView } from "../../ui.js";
import { secretKeys } from "./secrets.js";

/**
 * The From/To form that opens the comparison of two releases, in the order chosen.
 * setReleases(releases, latest) fills both lists and hides the bar below two releases; a
 * version still listed stays selected, else From is `from` or the one before the newest,
 * and To is `to` or the newest.
 */
export function compareBar(ctx, { from, to } = {}) {
  const fromSel = h("select", { id: uid("from") });
  const toSel = h("select", { id: uid("to") });
  const form = h(
    "form",
    { class: "compare-bar", novalidate: true, hidden: true },
    h(
      "div",
      { class: "field field-inline" },
      h("label", { for: fromSel.id, text: "From" }),
      fromSel,
    ),
    h("div", { class: "field field-inline" }, h("label", { for: toSel.id, text: "To" }), toSel),
    button("Compare", null, { type: "submit" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const a = Number(fromSel.value);
    const b = Number(toSel.value);
    if (a && b) window.location.hash = compareHref(ctx.app, ctx.env, a, b);
  });

  function select(sel, releases, wanted, fallback) {
    const listed = (v) => releases.some((r) => String(r.version) === String(v));
    sel.value = String(listed(wanted) ? wanted : fallback);
  }

  function setReleases(releases, latest) {
    form.hidden = releases.length < 2;
    if (!releases.length) return;
    const keepFrom = fromSel.value || from;
    const keepTo = toSel.value || to;
    replace(
      fromSel,
      releases.map((r) => h("option", { value: r.version, text: `v${r.version}` })),
    );
    replace(
      toSel,
      releases.map((r) =>
        h("option", {
          value: r.version,
          text: `v${r.version}${r.version === latest ? " (latest)" : ""}`,
        }),
      ),
    );
    select(fromSel, releases, keepFrom, (releases[1] || releases[0]).version);
    select(toSel, releases, keepTo, releases[0].version);
  }

  return { el: form, setReleases };
}

/** #/apps/APP/ENV/compare/A/B: what changes going from release a to release b. */
export async function compareSection(root, ctx, a, b) {
  const { app, env, base } = ctx;
  const [left, right, list, secrets] = await Promise.all([
    api("GET", `${base}/releases/${a}`),
    api("GET", `${base}/releases/${b}`),
    api("GET", `${base}/releases?limit=200`),
    secretKeys(base),
  ]);
  const bar = compareBar(ctx, { from: a, to: b });
  bar.setReleases(list.releases, ctx.latest);
  const diff = {
    ...diffMaps(left.items, right.items),
    secret_keys: [...(left.secret_keys ?? []), ...(right.secret_keys ?? [])],
  };
  const side = (r) =>
    h(
      "div",
      { class: "compare-side" },
      h("a", { class: "version", href: releaseHref(app, env, r.version), text: `v${r.version}` }),
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
        h("div", { class: "card-actions" }, bar.el),
      ),
      h(
        "div",
        { class: "compare-head" },
        side(left),
        h("span", { class: "compare-arrow", "aria-hidden": "true", text: "→" }),
        side(right),
      ),
      h("p", { class: "muted", text: `Going from v${a} to v${b}: ${diffSummary(diff)}.` }),
      diffView(diff, { emptyText: `v${a} and v${b} have the same items.`, secrets }),
    ),
  );
}
