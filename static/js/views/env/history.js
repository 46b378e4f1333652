// The releases of one env, newest first (gray releases with their rule and status), with
// compare and roll back (or, in an env with approvals, request a rollback).

import { api, me } from "../../api.js";
import { h, replace, timeEl } from "../../dom.js";
import { envHref, releaseHref } from "../../links.js";
import { badge, button, card, emptyState, loadMore, table } from "../../ui.js";
import { compareBar } from "./compare.js";
import { rollbackDialog } from "./rollback.js";
import { ruleText } from "./rollout.js";

const HISTORY_PAGE = 50;
const GRAY_KIND = { active: "warn", promoted: "ok", abandoned: "muted" };

/** #/apps/APP/ENV/history */
export async function historySection(root, ctx) {
  const { app, env, base } = ctx;
  let releases = [];
  let more = false;
  const bar = compareBar(ctx);
  const listBox = h("div", {});
  // With approvals a rollback is a release request, which editors may make too.
  const approvals = Boolean(ctx.settings?.approval_required);
  const mayRollBack = me.may(app, approvals ? "edit" : "publish");

  async function load(before) {
    const query = before ? `?limit=${HISTORY_PAGE}&before=${before}` : `?limit=${HISTORY_PAGE}`;
    const page = (await api("GET", `${base}/releases${query}`)).releases;
    more = page.length === HISTORY_PAGE;
    return page;
  }

  const columns = (latest) => [
    {
      label: "Version",
      cls: "col-version",
      cell: (r) =>
        h(
          "span",
          { class: "version-cell" },
          h("a", {
            class: "version",
            href: releaseHref(app, env, r.version),
            text: `v${r.version}`,
          }),
          r.version === latest ? badge("latest", "ok") : null,
          r.rollback_of ? badge(`rollback of v${r.rollback_of}`, "muted") : null,
          r.gray ? badge(`gray ${r.gray.status}`, GRAY_KIND[r.gray.status] || "muted") : null,
        ),
    },
    {
      label: "Comment",
      cell: (r) => [
        r.comment
          ? h("span", { text: r.comment })
          : h("span", { class: "muted", text: "No comment" }),
        r.gray
          ? h("span", { class: "gray-rule-line", text: `Gray to ${ruleText(r.gray.rule)}` })
          : null,
      ],
    },
    { label: "Author", cell: (r) => h("span", { text: r.author }) },
    { label: "Published", cell: (r) => timeEl(r.created_at) },
    {
      label: "Actions",
      cls: "col-actions",
      cell: (r) =>
        h(
          "div",
          { class: "row-actions" },
          h("a", {
            class: "btn btn-small",
            href: releaseHref(app, env, r.version),
            text: "View",
            "aria-label": `View v${r.version}`,
          }),
          r.version !== latest && mayRollBack
            ? button(
                approvals ? "Request rollback" : "Roll back",
                async () => {
                  if (await rollbackDialog(ctx, r.version)) await reload();
                },
                {
                  small: true,
                  "aria-label": `${approvals ? "Request rollback" : "Roll back"} to v${r.version}`,
                },
              )
            : null,
        ),
    },
  ];

  function render() {
    bar.setReleases(releases, ctx.latest);
    if (!releases.length) {
      replace(
        listBox,
        emptyState(
          "Nothing published yet",
          "Releases appear here once you publish the draft. Clients get nothing from this env until then.",
          h("a", { class: "btn btn-primary", href: envHref(app, env), text: "Go to the draft" }),
        ),
      );
      return;
    }
    replace(
      listBox,
      table(columns(releases[0].version), releases, {
        caption: `Releases of ${app}/${env}`,
        rowAttrs: (r) => ({ dataset: { version: r.version } }),
      }),
      more
        ? loadMore(
            "Load older releases",
            () => load(releases[releases.length - 1].version),
            (older) => {
              releases = releases.concat(older);
              render();
            },
          )
        : null,
    );
  }

  async function reload() {
    releases = await load();
    if (releases.length) ctx.latest = releases[0].version;
    render();
  }
  ctx.refresh = reload;
  ctx.onGray = reload;

  await reload();
  replace(root, card("Releases", [bar.el], listBox));
}
