// The draft of one env: its status against the latest release, the items, adding, publishing.
// Edits by other operators appear while the page is open: it polls the items (cheap) every
// couple of seconds while visible, and fetches the diff only when they changed.

import { ApiError, api, me } from "../../api.js";
import { h, plural, replace } from "../../dom.js";
import { live } from "../../live.js";
import { sessionEnded } from "../../session.js";
import { badge, button, diffCounts, diffSummary, secretValue, showError } from "../../ui.js";
import { importDialog } from "./import.js";
import { addItemPanel } from "./item-form.js";
import { itemsTable } from "./items.js";
import { releaseDialog, reviewDraft } from "./publish.js";
import { rememberSecrets } from "./secrets.js";

/** The badge and the sentence that say how the draft stands against the latest release. */
function draftStanding(diff, approvals, gray) {
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
      text: gray
        ? `${diffSummary(diff)} since gray release v${diff.base_version}, which only its rule's instances get.`
        : `${diffSummary(diff)} since v${diff.base_version}. Clients still get v${diff.base_version} until ${approvals ? "a release request is approved" : "you publish"}.`,
    };
  }
  if (gray && gray.version === diff.base_version) {
    return {
      dirty,
      badge: badge(`Matches gray v${diff.base_version}`, "warn"),
      text: `The draft equals gray release v${diff.base_version}: the instances its rule takes have it, everyone else keeps v${gray.main_version}.`,
    };
  }
  return {
    dirty,
    badge: badge(`Matches v${diff.base_version}`, "ok"),
    text: `The draft equals the latest release, v${diff.base_version}. Clients have it.`,
  };
}

const POLL_MS = 2000;

/** What identifies a draft's content: every key at its revision. */
function draftSignature(items) {
  return items
    .map((i) => `${i.key}@${i.revision}`)
    .sort()
    .join("\n");
}

const byKey = (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** The items deleted from the draft that the latest release still has. */
function removedNote(diff, secrets) {
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
          value === null || secrets.has(key)
            ? secretValue(value, { cls: "value-inline", label: key })
            : h("span", {
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
  const mayEdit = me.may(app, "edit");
  const mayPublish = me.may(app, "publish");
  const state = { items: [], diff: firstDiff };

  const statusBox = h("div", { class: "draft-status" });
  const removedBox = h("div", {});
  const table = itemsTable(ctx, state, { reload, refreshDiff, openAdd: () => adder.open() });
  const adder = addItemPanel(ctx, state, { onAdded: reload });
  // The diff has no secret flag: the publish dialog masks the keys the draft says are secret.
  ctx.secretKeys = () => rememberSecrets(base, state.items);
  const importButton = mayEdit
    ? button("Import", async () => {
        if (await importDialog(ctx, state)) await reload();
      })
    : null;

  async function load() {
    const [items, diff] = await Promise.all([
      api("GET", `${base}/items`),
      api("GET", `${base}/diff`),
    ]);
    state.items = items.items.slice().sort(byKey);
    state.diff = diff;
    ctx.latest = diff.base_version;
    if (diff.base_version) live.seen(app, env, diff.base_version);
  }

  function renderStatus() {
    const approvals = ctx.settings.approval_required;
    const standing = draftStanding(state.diff, approvals, ctx.rollout.state.gray);
    replace(
      statusBox,
      h(
        "div",
        { class: "draft-status-text" },
        standing.badge,
        approvals
          ? badge("Approval required", "muted", {
              title: "Releases of this env go through a release request that a publisher approves",
            })
          : null,
        h("span", { class: "draft-status-detail", text: standing.text }),
      ),
      releaseActions(standing),
    );
    replace(removedBox, removedNote(state.diff, ctx.secretKeys()));
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

  /** Publish, or in an env with approvals request a release (admins: also an emergency publish). */
  function releaseActions(standing) {
    const actions = (...buttons) => h("div", { class: "draft-status-actions" }, buttons);
    const gray = ctx.rollout.state.gray;
    if (gray && mayPublish) {
      // A publish is refused (gray_active) until the gray release is promoted or abandoned.
      return actions(
        h("span", {
          class: "muted draft-status-note",
          text: `Gray release v${gray.version} is active: promote or abandon it before publishing again.`,
        }),
        button("Publish", null, { kind: "primary", disabled: true }),
      );
    }
    if (ctx.settings.approval_required) {
      if (!mayEdit)
        return h("span", { class: "muted draft-status-note", text: "You may view this draft." });
      return actions(
        me.admin
          ? button("Emergency publish", () => openRelease("emergency"), {
              kind: "ghost-danger",
              disabled: !standing.dirty,
            })
          : null,
        button("Request release", () => openRelease("request"), {
          kind: "primary",
          disabled: !standing.dirty,
        }),
      );
    }
    if (!mayPublish) {
      return h("span", {
        class: "muted draft-status-note",
        text: mayEdit ? "A publisher of this app publishes the draft." : "You may view this draft.",
      });
    }
    return actions(
      standing.dirty && state.diff.base_version
        ? button("Review changes", () => openRelease("publish"), { small: false })
        : null,
      button("Publish", () => openRelease("publish"), {
        kind: "primary",
        disabled: !standing.dirty,
      }),
    );
  }

  async function openRelease(mode) {
    let review;
    try {
      review = await reviewDraft(ctx);
    } catch (error) {
      showError(error, "Could not load the changes");
      return;
    }
    state.diff = review.diff;
    renderStatus();
    const made = await releaseDialog(ctx, mode, review, { onDraftMoved: () => reload() });
    // The dialog may have learnt that approvals were turned on: the buttons follow.
    renderStatus();
    if (!made) return;
    if (mode === "request") await ctx.refreshPendingCount().catch(() => null);
    else await reload();
  }

  /** Bring the page up to date when someone else changed the draft; keeps rows being edited. */
  async function poll() {
    if (document.hidden || sessionEnded()) return;
    const before = state.items;
    const items = (await api("GET", `${base}/items`)).items;
    if (state.items !== before || draftSignature(items) === draftSignature(state.items)) return;
    const diff = await api("GET", `${base}/diff`);
    if (state.items !== before) return;
    state.items = items.slice().sort(byKey);
    state.diff = diff;
    renderStatus();
    table.render();
  }

  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await poll();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) stopped = true;
      else if (!(error instanceof ApiError)) throw error;
    } finally {
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    }
  };
  ctx.stop = () => {
    stopped = true;
    clearTimeout(timer);
  };

  ctx.refresh = reload;
  ctx.onGray = () => renderStatus();
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
        h(
          "div",
          { class: "card-actions" },
          table.filter,
          importButton,
          mayEdit ? adder.openButton : null,
        ),
      ),
      table.box,
      removedBox,
    ),
  );
  renderStatus();
  table.render();
  if (!stopped) timer = setTimeout(tick, POLL_MS);
}
