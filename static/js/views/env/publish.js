// Releases made on this page: the publish, release request and roll-back dialogs, approving a
// request, and the record of our own versions so that the live channel does not announce them
// as someone else's.

import { ApiError, api, me } from "../../api.js";
import { h, plural, replace, uid } from "../../dom.js";
import { live } from "../../live.js";
import {
  busy,
  button,
  confirmAction,
  dialogAlert,
  diffCounts,
  diffMaps,
  diffSummary,
  diffView,
  field,
  flash,
  openDialog,
  setAlert,
  setFieldError,
} from "../../ui.js";
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

/**
 * What the user reviews before releasing the draft: its revision, then its diff. Read in this
 * order so that an edit in between makes the release answer draft_changed rather than
 * release something the user did not see.
 */
export async function reviewDraft(ctx) {
  const settings = await api("GET", ctx.base);
  const diff = await api("GET", `${ctx.base}/diff`);
  return { diff, revision: settings.draft_revision };
}

// The three ways the draft leaves this page: published, requested, or published in an
// emergency (an admin, past the approval an env requires).
const MODES = {
  publish: {
    title: (app, env) => `Publish ${app}/${env}`,
    intro: (diff, next) =>
      diff.base_version
        ? `Changes since v${diff.base_version} (${diffSummary(diff)}). Clients get them as v${next} right away.`
        : `The first release, v1, with ${plural(diffCounts(diff).added, "item")}. Clients get it right away.`,
    comment: "Release comment",
    placeholder: "What changes and why",
    confirm: "Publish",
  },
  request: {
    title: (app, env) => `Request a release of ${app}/${env}`,
    intro: (diff) =>
      `${diff.base_version ? `Changes since v${diff.base_version} (${diffSummary(diff)})` : `The first release, with ${plural(diffCounts(diff).added, "item")}`}. Another publisher of the app reviews exactly these changes and approves or rejects them; clients get nothing until then.`,
    comment: "Why (the approver reads this)",
    placeholder: "What changes and why",
    confirm: "Request release",
    required: "Say what changes and why: the approver decides on it.",
  },
  emergency: {
    title: (app, env) => `Emergency publish of ${app}/${env}`,
    intro: (diff, next) =>
      `This skips the approval ${diff.base_version ? `and publishes the changes since v${diff.base_version} (${diffSummary(diff)})` : "and publishes the first release"} as v${next} right away. It is audited as an emergency release; pending requests of this env become stale.`,
    comment: "Reason for the emergency",
    placeholder: "What broke and why it cannot wait",
    confirm: "Publish now",
    required: "Say why this cannot wait for an approval.",
    danger: true,
  },
};

/**
 * Show what a release of the draft changes, ask for a comment and release it as `mode`
 * (publish, request or emergency). When the draft moved since it was read (draft_changed),
 * the dialog shows the new changes and says so; nothing is sent until the user confirms
 * again. Resolves to the release (or the request) made, or null.
 */
export async function releaseDialog(ctx, mode, review, { onDraftMoved } = {}) {
  const { app, env, base } = ctx;
  const m = MODES[mode];
  let current = review;
  const result = await openDialog({
    title: m.title(app, env),
    wide: true,
    build(root, close) {
      const intro = h("p", { class: "muted" });
      const diffBox = h("div", { class: "dialog-diff" });
      const alert = dialogAlert();
      const show = () => {
        const next = (current.diff.base_version || 0) + 1;
        intro.textContent = m.intro(current.diff, next);
        replace(
          diffBox,
          diffView(current.diff, {
            emptyText: "The draft equals the latest release: nothing to publish.",
            secrets: ctx.secretKeys?.(),
          }),
        );
      };
      const comment = field(m.comment, {
        multiline: true,
        rows: 2,
        placeholder: m.placeholder,
        maxlength: 1000,
        required: m.required ? true : null,
      });
      comment.input.addEventListener("input", () => setFieldError(comment, null));
      const ok = button(m.confirm, null, { kind: m.danger ? "danger" : "primary", type: "submit" });
      const form = h(
        "form",
        { class: "stack", novalidate: true },
        mode === "emergency"
          ? h("p", {
              class: "banner banner-warn",
              text: "Approvals are on for this env. Use this only when the release cannot wait; otherwise request a release.",
            })
          : null,
        intro,
        diffBox,
        comment.wrap,
        alert,
        h(
          "div",
          { class: "dialog-actions" },
          button("Cancel", () => close(null)),
          ok,
        ),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const text = comment.input.value.trim();
        setFieldError(comment, m.required && !text ? m.required : null);
        if (m.required && !text) {
          comment.input.focus();
          return;
        }
        setAlert(alert, null);
        const body = { comment: comment.input.value, draft_revision: current.revision };
        try {
          const made = await busy(ok, () =>
            mode === "request"
              ? api("POST", `${base}/release-requests`, body)
              : ownRelease(app, env, () =>
                  api("POST", `${base}/releases`, {
                    ...body,
                    ...(mode === "emergency" ? { emergency: true } : {}),
                  }),
                ),
          );
          close(made);
        } catch (error) {
          if (error instanceof ApiError && error.code === "draft_changed") {
            current = await reviewDraft(ctx);
            show();
            setAlert(
              alert,
              "The draft changed while you were reviewing it (someone else edited it). The changes above are the current ones: check them, then confirm again.",
            );
            if (onDraftMoved) onDraftMoved(current.diff);
            return;
          }
          if (error instanceof ApiError && error.code === "approval_required") {
            // An owner turned approvals on since the page was loaded.
            ctx.setSettings(await api("GET", base));
            setAlert(
              alert,
              "Approvals were turned on for this env: releases now need an approved request. Cancel, then use Request release.",
            );
            return;
          }
          setAlert(alert, error.message || String(error));
        }
      });
      show();
      root.append(form);
    },
  });
  if (result && mode === "request") {
    flash(
      `Release request #${result.id} for ${app}/${env} sent. A publisher of ${app} approves it under Requests.`,
      "success",
    );
  } else if (result) {
    flash(
      `${mode === "emergency" ? "Emergency release: published" : "Published"} ${app}/${env} v${result.version}${result.comment ? `: “${result.comment}”` : ""}.`,
      "success",
    );
  }
  return result;
}

/** Publish what a release request froze, as this page's own release; resolves to the release. */
export function approveRequest(ctx, request, comment) {
  const { app, env, base } = ctx;
  return ownRelease(app, env, () =>
    api("POST", `${base}/release-requests/${request.id}/approve`, { comment }),
  );
}

/** What rolling back to target changes: for clients, and the draft's changes it discards. */
async function rollbackChange(ctx, target) {
  const { base } = ctx;
  const [release, latest, draftDiff, secrets] = await Promise.all([
    api("GET", `${base}/releases/${target}`),
    ctx.latest ? api("GET", `${base}/releases/${ctx.latest}`) : Promise.resolve({ items: {} }),
    api("GET", `${base}/diff`),
    secretKeys(base),
  ]);
  const dirty = diffCounts(draftDiff);
  return {
    change: diffMaps(latest.items, release.items),
    draftDiff,
    lose: dirty.added + dirty.changed + dirty.removed,
    next: (ctx.latest || 0) + 1,
    secrets,
  };
}

/**
 * Show what rolling back to target changes for clients and in the draft, then roll back. In
 * an env with approvals this makes a release request instead (an admin may roll back at once).
 */
export async function rollbackDialog(ctx, target) {
  if (ctx.settings?.approval_required) return requestRollbackDialog(ctx, target);
  const { app, env, base } = ctx;
  const { change, draftDiff, lose, next, secrets } = await rollbackChange(ctx, target);
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

/** A rollback in an env with approvals: a release request with rollback_to, or (admin) at once. */
async function requestRollbackDialog(ctx, target) {
  const { app, env, base } = ctx;
  const { change, draftDiff, lose, next, secrets } = await rollbackChange(ctx, target);
  const result = await openDialog({
    title: `Request a rollback of ${app}/${env} to v${target}`,
    wide: true,
    build(root, close) {
      const alert = dialogAlert();
      const comment = field("Why (the approver reads this)", {
        multiline: true,
        rows: 2,
        placeholder: `Roll back to v${target} because…`,
        maxlength: 1000,
        required: true,
      });
      comment.input.addEventListener("input", () => setFieldError(comment, null));
      const emergencyId = uid("emergency");
      const emergency = me.admin
        ? h("input", {
            id: emergencyId,
            type: "checkbox",
            "aria-describedby": `${emergencyId}-hint`,
          })
        : null;
      const ok = button("Request rollback", null, { kind: "primary", type: "submit" });
      const explain = h("p", {});
      const showMode = () => {
        const now = emergency?.checked;
        ok.textContent = now ? "Roll back now" : "Request rollback";
        ok.className = `btn ${now ? "btn-danger" : "btn-primary"}`;
        explain.textContent = now
          ? `This publishes v${next} with the items of v${target} right away, without approval, and resets the draft to them. It is audited as an emergency release.`
          : `Asks another publisher to publish v${next} with the items of v${target}; when approved, the draft is reset to them. Clients get nothing until then.`;
      };
      if (emergency) emergency.addEventListener("change", showMode);
      const form = h(
        "form",
        { class: "stack", novalidate: true },
        explain,
        lose
          ? h("p", {
              class: "banner banner-warn",
              text: `The draft has unpublished changes (${diffSummary(draftDiff)}); the rollback discards them when it is released.`,
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
        comment.wrap,
        emergency
          ? h(
              "div",
              { class: "check" },
              emergency,
              h("label", { for: emergencyId, text: "Emergency: roll back now, without approval" }),
              h("p", {
                class: "hint",
                id: `${emergencyId}-hint`,
                text: "Admins only. Pending requests of this env become stale.",
              }),
            )
          : null,
        alert,
        h(
          "div",
          { class: "dialog-actions" },
          button("Cancel", () => close(null)),
          ok,
        ),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const text = comment.input.value.trim();
        setFieldError(comment, text ? null : "Say why: the approver decides on it.");
        if (!text) {
          comment.input.focus();
          return;
        }
        setAlert(alert, null);
        try {
          const made = await busy(ok, async () => {
            if (!emergency?.checked) {
              const request = await api("POST", `${base}/release-requests`, {
                comment: comment.input.value,
                rollback_to: target,
              });
              return { request };
            }
            const release = await ownRelease(app, env, () =>
              api("POST", `${base}/releases/${target}/rollback`, {
                comment: comment.input.value,
                emergency: true,
              }),
            );
            ctx.latest = release.version;
            return { release };
          });
          close(made);
        } catch (error) {
          setAlert(alert, error.message || String(error));
        }
      });
      showMode();
      root.append(form);
    },
  });
  if (result?.request) {
    flash(
      `Rollback request #${result.request.id} for ${app}/${env} sent. A publisher of ${app} approves it under Requests.`,
      "success",
    );
    if (ctx.refreshPendingCount) await ctx.refreshPendingCount().catch(() => null);
    return null;
  }
  if (result?.release) {
    flash(
      `Emergency rollback: ${app}/${env} rolled back to v${target} as v${result.release.version}.`,
      "success",
    );
    return result.release;
  }
  return null;
}
