// The release requests of one env: the pending ones with their diffs and the decisions a user
// may take on them, and the decided ones below. Requests and decisions by others appear while
// the page is open: it reads the lists every couple of seconds while the tab is visible.

import { ApiError, api, me } from "../../api.js";
import { h, replace, timeEl } from "../../dom.js";
import { envHref, releaseHref } from "../../links.js";
import { sessionEnded } from "../../session.js";
import {
  badge,
  button,
  card,
  confirmAction,
  diffSummary,
  diffView,
  emptyState,
  flash,
  table,
} from "../../ui.js";
import { approveRequest } from "./publish.js";
import { ruleText } from "./rollout.js";
import { secretKeys } from "./secrets.js";

/** At most this many pending requests are listed (and counted on the tab). */
export const PENDING_LIMIT = 200;
const DECIDED_LIMIT = 50;
const POLL_MS = 2000;

const STATUS_BADGES = {
  pending: "warn",
  approved: "ok",
  rejected: "danger",
  withdrawn: "muted",
  stale: "muted",
};

/** A user as the audit names them ("user:alice") shown as their name; tokens and cli as is. */
function actorName(actor) {
  if (!actor) return "—";
  return actor.startsWith("user:") ? actor.slice("user:".length) : actor;
}

const isMine = (request) => request.author === `user:${me.name}`;

/** Ids and statuses: what tells that the lists changed. */
function signature(pending, decided) {
  return [...pending, ...decided].map((r) => `${r.id}:${r.status}`).join(",");
}

/** The messages of a decision that came too late: the request moved on in the meantime. */
function tooLate(ctx, request, error) {
  if (!(error instanceof ApiError)) return null;
  if (error.code === "stale_request") {
    return `Request #${request.id} is stale: ${ctx.app}/${ctx.env} got a release after it was made (it was based on ${request.base_version ? `v${request.base_version}` : "no release"}). Make a new request from the draft.`;
  }
  if (error.code === "request_decided") {
    return `Request #${request.id} was already decided by someone else. The list below is up to date.`;
  }
  return null;
}

/** #/apps/APP/ENV/requests */
export async function requestsSection(root, ctx) {
  const { app, env, base } = ctx;
  const mayPublish = me.may(app, "publish");
  let pending = [];
  let decided = [];
  const pendingBox = h("div", { class: "requests" });
  const decidedBox = h("div", {});
  const pendingCount = h("span", { class: "count" });

  let secrets = new Set();

  async function load() {
    const [open, recent, keys] = await Promise.all([
      api("GET", `${base}/release-requests?status=pending&limit=${PENDING_LIMIT}`),
      api("GET", `${base}/release-requests?limit=${DECIDED_LIMIT}`),
      secretKeys(base),
    ]);
    secrets = keys;
    return { open: open.requests, recent: recent.requests.filter((r) => r.status !== "pending") };
  }

  /** Run a decision from a dialog; a decision that came too late closes it and says why. */
  async function decide(request, run) {
    try {
      return await run();
    } catch (error) {
      const message = tooLate(ctx, request, error);
      if (message === null) throw error;
      return { tooLate: message };
    }
  }

  async function afterDecision(result, success) {
    if (!result) return;
    if (result.tooLate) flash(result.tooLate, "warn", { timeout: 15000 });
    else flash(success(result), "success");
    await reload();
  }

  const approve = async (request) => {
    const next = (ctx.latest || 0) + 1;
    const result = await confirmAction({
      title: `Approve request #${request.id}?`,
      body: h("p", {
        text: request.gray
          ? `This starts gray release ${app}/${env} v${next} as you, with the changes of the request (${diffSummary(request.diff)}), to ${ruleText(request.gray)}: those instances get it right away, everyone else keeps the current release until it is promoted.`
          : `This publishes ${app}/${env} v${next} as you, with the changes of the request (${diffSummary(request.diff)}). Clients get it right away; the release's comment is the request's.`,
      }),
      comment: { label: "Approval comment (optional)", placeholder: "Checked and fine" },
      confirmText: "Approve and publish",
      action: ({ comment }) => decide(request, () => approveRequest(ctx, request, comment)),
    });
    await afterDecision(
      result,
      (release) =>
        `Approved request #${request.id}: ${release.gray ? "started gray release" : "published"} ${app}/${env} v${release.version}.`,
    );
  };

  const reject = async (request) => {
    const result = await confirmAction({
      title: `Reject request #${request.id}?`,
      body: h("p", {
        text: `${actorName(request.author)} sees the request rejected, with your reason. Nothing is published.`,
      }),
      comment: { label: "Reason (optional)", placeholder: "What to change first" },
      confirmText: "Reject",
      danger: true,
      action: ({ comment }) =>
        decide(request, () =>
          api("POST", `${base}/release-requests/${request.id}/reject`, { comment }),
        ),
    });
    await afterDecision(result, () => `Rejected request #${request.id}.`);
  };

  const withdraw = async (request) => {
    const result = await confirmAction({
      title: `Withdraw request #${request.id}?`,
      body: h("p", {
        text: "It stays listed as withdrawn; nothing is published. The draft keeps its changes.",
      }),
      confirmText: "Withdraw",
      action: () =>
        decide(request, async () => {
          await api("DELETE", `${base}/release-requests/${request.id}`);
          return {};
        }),
    });
    await afterDecision(result, () => `Withdrew request #${request.id}.`);
  };

  /** Why this user has no Approve button on a request, if they have none. */
  function noApproveReason(request) {
    if (isMine(request)) {
      return mayPublish
        ? "Your own request: another publisher of this app approves it."
        : `Your request: a publisher of ${app} approves it.`;
    }
    return mayPublish ? null : `A publisher of ${app} approves or rejects it.`;
  }

  function requestCard(request) {
    const titleId = `request-${request.id}-title`;
    const mine = isMine(request);
    const reason = noApproveReason(request);
    const label = (verb) => ({ "aria-label": `${verb} request #${request.id}` });
    return h(
      "article",
      {
        class: "request",
        "aria-labelledby": titleId,
        dataset: { request: request.id, status: request.status },
      },
      h(
        "div",
        { class: "request-head" },
        h(
          "h3",
          { class: "request-title", id: titleId },
          `Request #${request.id}`,
          request.rollback_to ? badge(`rollback to v${request.rollback_to}`, "muted") : null,
          request.gray ? badge("gray release", "warn") : null,
        ),
        h(
          "p",
          { class: "request-meta muted" },
          "by ",
          h("strong", { class: "request-author", text: actorName(request.author) }),
          mine ? " (you)" : null,
          " · ",
          timeEl(request.created_at),
          " · ",
          request.base_version ? `based on v${request.base_version}` : "the first release",
        ),
      ),
      h("p", { class: "request-comment", text: request.comment || "No comment" }),
      request.gray
        ? h("p", {
            class: "gray-rule-line",
            text: `Approving starts a gray release to ${ruleText(request.gray)}; everyone else keeps the current release.`,
          })
        : null,
      h(
        "div",
        { class: "request-diff" },
        diffView(request.diff, { emptyText: "No differences from the latest release.", secrets }),
      ),
      h(
        "div",
        { class: "request-actions" },
        reason ? h("p", { class: "muted request-note", text: reason }) : null,
        h(
          "div",
          { class: "row-actions" },
          mine || me.admin
            ? button("Withdraw", () => withdraw(request), { ...label("Withdraw") })
            : null,
          mayPublish && !mine
            ? button("Reject", () => reject(request), { kind: "ghost-danger", ...label("Reject") })
            : null,
          mayPublish && !mine
            ? button("Approve", () => approve(request), { kind: "primary", ...label("Approve") })
            : null,
        ),
      ),
    );
  }

  const decidedColumns = [
    {
      label: "Request",
      cls: "col-version",
      cell: (r) =>
        h(
          "span",
          { class: "version-cell" },
          h("span", { class: "strong", text: `#${r.id}` }),
          r.rollback_to ? badge(`rollback to v${r.rollback_to}`, "muted") : null,
          r.gray ? badge("gray release", "warn", { title: `To ${ruleText(r.gray)}` }) : null,
        ),
    },
    { label: "Status", cell: (r) => badge(r.status, STATUS_BADGES[r.status] || "muted") },
    {
      label: "Requested by",
      cell: (r) => h("span", {}, actorName(r.author), " · ", timeEl(r.created_at)),
    },
    {
      label: "Comment",
      cls: "col-comment",
      cell: (r) =>
        r.comment
          ? h("span", { text: r.comment })
          : h("span", { class: "muted", text: "No comment" }),
    },
    {
      label: "Decided by",
      cell: (r) =>
        h(
          "span",
          { class: "decision" },
          r.decided_by
            ? h("span", { text: actorName(r.decided_by) })
            : h("span", {
                class: "muted",
                text: r.status === "stale" ? "a release came first" : "—",
              }),
          r.decision_comment
            ? h("span", { class: "muted decision-comment", text: `“${r.decision_comment}”` })
            : null,
        ),
    },
    { label: "Decided", cls: "col-time", cell: (r) => timeEl(r.decided_at) },
    {
      label: "Release",
      cls: "col-version",
      cell: (r) =>
        r.release_version
          ? h("a", {
              class: "version",
              href: releaseHref(app, env, r.release_version),
              text: `v${r.release_version}`,
            })
          : h("span", { class: "muted", text: "—" }),
    },
  ];

  function render() {
    ctx.setPendingCount(pending.length);
    pendingCount.textContent = pending.length ? `(${pending.length})` : "";
    replace(
      pendingBox,
      pending.length
        ? pending.map(requestCard)
        : emptyState(
            "No pending requests",
            ctx.settings.approval_required
              ? "Releases of this env need an approved request: an editor requests one from the draft."
              : "Approvals are off for this env: publishers publish the draft directly.",
            h("a", { class: "btn", href: envHref(app, env), text: "Go to the draft" }),
          ),
    );
    replace(
      decidedBox,
      decided.length
        ? table(decidedColumns, decided, {
            caption: `Decided release requests of ${app}/${env}`,
            rowAttrs: (r) => ({ dataset: { request: r.id, status: r.status } }),
          })
        : h("p", { class: "muted", text: "No request has been decided yet." }),
    );
  }

  async function reload() {
    const { open, recent } = await load();
    pending = open;
    decided = recent;
    render();
  }

  /** Bring the lists up to date when someone else made or decided a request. */
  async function poll() {
    if (document.hidden || sessionEnded()) return;
    const { open, recent } = await load();
    if (stopped || signature(open, recent) === signature(pending, decided)) return;
    pending = open;
    decided = recent;
    render();
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

  ({ open: pending, recent: decided } = await load());
  replace(
    root,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { class: "card-title" }, "Pending requests ", pendingCount),
        h("span", {
          class: "muted",
          text: mayPublish
            ? "Approving publishes exactly what the request shows."
            : `A publisher of ${app} approves or rejects these.`,
        }),
      ),
      pendingBox,
    ),
    card("Decided requests", [], decidedBox),
  );
  render();
  if (!stopped) timer = setTimeout(tick, POLL_MS);
}
