// Releases made on this page: the publish and release request dialogs, approving a request,
// and the record of our own versions so that the live channel does not announce them
// as someone else's.

import { ApiError, api } from "../../api.js";
import { h, plural, replace } from "../../dom.js";
import { live } from "../../live.js";
import {
  busy,
  button,
  dialogActions,
  dialogAlert,
  diffCounts,
  diffSummary,
  diffView,
  field,
  flash,
  openDialog,
  setAlert,
  setFieldError,
} from "../../ui.js";
import { grayChoice } from "./gray-rule.js";
import { ruleText } from "./rollout.js";

// The frame of our own release can arrive before the HTTP answer, so a release in flight is
// awaited before deciding whose it was.
const ownVersions = new Set();
const ownPending = new Map();

/** Make a release as this page's own (not announced as someone else's); resolves to it. */
export async function ownRelease(app, env, request) {
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
        const from = current.diff.base_version;
        intro.textContent = target?.gray()
          ? mode === "request"
            ? `Changes since v${from} (${diffSummary(current.diff)}). Another publisher of the app reviews them and the rule; once approved only the instances the rule takes get them, everyone else keeps v${from} until it is promoted.`
            : `Changes since v${from} (${diffSummary(current.diff)}). Only the instances the rule takes get them, as v${next}; everyone else keeps v${from} until you promote it.`
          : m.intro(current.diff, next);
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
      // A gray release needs a release for everyone else to keep.
      const target = current.diff.base_version
        ? grayChoice(ctx, (gray) => {
            ok.textContent = !gray
              ? m.confirm
              : mode === "request"
                ? "Request gray release"
                : "Start gray release";
            show();
          })
        : null;
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
        target ? target.el : null,
        comment.wrap,
        alert,
        dialogActions(close, ok),
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
        const emergency = mode === "emergency" ? { emergency: true } : {};
        const rule = target?.gray() ? (target.editor()?.rule() ?? {}) : null;
        if (rule && !Object.keys(rule).length) {
          setAlert(alert, "Choose who gets the gray release: labels, instances or a percent.");
          return;
        }
        try {
          const made = await busy(ok, () =>
            mode === "request"
              ? api("POST", `${base}/release-requests`, rule ? { ...body, gray: rule } : body)
              : ownRelease(app, env, () =>
                  rule
                    ? api("POST", `${base}/gray`, { ...body, rule, ...emergency })
                    : api("POST", `${base}/releases`, { ...body, ...emergency }),
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
  } else if (result?.gray) {
    flash(
      `Started gray release v${result.version} of ${app}/${env} to ${ruleText(result.gray.rule)}.`,
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
