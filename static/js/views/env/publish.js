// Releases made on this page: the publish and roll-back dialogs, and the record of our own
// versions so that the live channel does not announce them as someone else's.

import { api } from "../../api.js";
import { h, plural } from "../../dom.js";
import { live } from "../../live.js";
import { confirmAction, diffCounts, diffMaps, diffSummary, diffView, flash } from "../../ui.js";
import { secretKeys } from "./secrets.js";

// The frame of our own release can arrive before the HTTP answer, so a release in flight is
// awaited before deciding whose it was.
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

/** Whether this page made that version (waits for a release of ours still in flight). */
export async function isOwnRelease(app, env, version) {
  const inFlight = ownPending.get(`${app}/${env}`);
  if (inFlight) await inFlight.catch(() => null);
  return ownVersions.has(`${app}/${env}/${version}`);
}

/** Ask for a comment, show what a publish of the draft changes, publish; resolves to the release or null. */
export async function publishDialog(ctx, diff) {
  const { app, env, base } = ctx;
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
        diffView(diff, {
          emptyText: "The draft equals the latest release: nothing to publish.",
          secrets: ctx.secretKeys?.(),
        }),
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
  }
  return release;
}

/** Show what rolling back to target changes for clients and in the draft, then roll back. */
export async function rollbackDialog(ctx, target) {
  const { app, env, base } = ctx;
  const [release, latest, draftDiff, secrets] = await Promise.all([
    api("GET", `${base}/releases/${target}`),
    ctx.latest ? api("GET", `${base}/releases/${ctx.latest}`) : Promise.resolve({ items: {} }),
    api("GET", `${base}/diff`),
    secretKeys(base),
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
        diffView(change, {
          emptyText: `v${target} has the same items as v${ctx.latest}.`,
          secrets,
        }),
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
}
