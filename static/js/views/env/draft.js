// The draft of one env: its status against the latest release, the items, adding, publishing.

import { api } from "../../api.js";
import { h, plural, replace } from "../../dom.js";
import { live } from "../../live.js";
import { badge, button, diffCounts, diffSummary, showError } from "../../ui.js";
import { addItemPanel } from "./item-form.js";
import { itemsTable } from "./items.js";
import { publishDialog } from "./publish.js";

/** The badge and the sentence that say how the draft stands against the latest release. */
function draftStanding(diff) {
  const c = diffCounts(diff);
  const dirty = c.added + c.changed + c.removed > 0;
  if (!diff.base_version) {
    return {
      dirty,
      badge: badge(dirty ? "Unpublished changes" : "Empty draft", dirty ? "warn" : "muted"),
      text: dirty
        ? `Never published. Publishing makes release v1 with ${plural(c.added, "item")}.`
        : "Never published, and the draft is empty. Add items, then publish.",
    };
  }
  if (dirty) {
    return {
      dirty,
      badge: badge("Unpublished changes", "warn"),
      text: `${diffSummary(diff)} since v${diff.base_version}. Clients still get v${diff.base_version} until you publish.`,
    };
  }
  return {
    dirty,
    badge: badge(`Matches v${diff.base_version}`, "ok"),
    text: `The draft equals the latest release, v${diff.base_version}. Clients have it.`,
  };
}

/** The items deleted from the draft that the latest release still has. */
function removedNote(diff) {
  const removed = Object.entries(diff.removed || {});
  if (!removed.length) return null;
  return h(
    "div",
    { class: "removed-note" },
    h("p", {
      class: "strong",
      text: `Deleted from the draft, still published in v${diff.base_version}:`,
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
  );
}

/** #/apps/APP/ENV */
export async function draftSection(root, ctx, firstDiff) {
  const { app, env, base } = ctx;
  const state = { items: [], diff: firstDiff };

  const statusBox = h("div", { class: "draft-status" });
  const removedBox = h("div", {});
  const table = itemsTable(ctx, state, { reload, refreshDiff, openAdd: () => adder.open() });
  const adder = addItemPanel(ctx, state, { onAdded: reload });

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

  function renderStatus() {
    const standing = draftStanding(state.diff);
    replace(
      statusBox,
      h(
        "div",
        { class: "draft-status-text" },
        standing.badge,
        h("span", { class: "draft-status-detail", text: standing.text }),
      ),
      h(
        "div",
        { class: "draft-status-actions" },
        standing.dirty && state.diff.base_version
          ? button("Review changes", () => openPublish(), { small: false })
          : null,
        button("Publish", () => openPublish(), { kind: "primary", disabled: !standing.dirty }),
      ),
    );
    replace(removedBox, removedNote(state.diff));
  }

  async function refreshDiff() {
    state.diff = await api("GET", `${base}/diff`);
    renderStatus();
    table.renderTags();
  }

  async function reload() {
    await load();
    renderStatus();
    table.render();
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
    if (await publishDialog(ctx, diff)) await reload();
  }

  ctx.refresh = reload;
  await load();
  replace(
    root,
    statusBox,
    adder.panel,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { class: "card-title" }, "Items ", table.count),
        h("div", { class: "card-actions" }, table.filter, adder.openButton),
      ),
      table.box,
      removedBox,
    ),
  );
  renderStatus();
  table.render();
}
