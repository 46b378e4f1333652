// Rolling back from this page: what it changes for clients and in the draft, then the
// rollback itself, or in an env with approvals a release request for it.

import { api, me } from "../../api.js";
import { h, uid } from "../../dom.js";
import {
  busy,
  button,
  confirmAction,
  dialogActions,
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
import { ownRelease } from "./publish.js";
import { secretKeys } from "./secrets.js";

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

/** What clients will see change when v`next` copies v`target`: a heading and the diff. */
function clientChange(ctx, next, target, change, secrets) {
  return [
    h("h3", {
      class: "sub-title",
      text: `What clients will see change (v${ctx.latest} → v${next})`,
    }),
    h(
      "div",
      { class: "dialog-diff" },
      diffView(change, { emptyText: `v${target} has the same items as v${ctx.latest}.`, secrets }),
    ),
  ];
}

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
      ...clientChange(ctx, next, target, change, secrets),
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
        ...clientChange(ctx, next, target, change, secrets),
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
        dialogActions(close, ok),
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
